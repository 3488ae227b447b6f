# The Voiso security bot as an image: its wheel in a virtual environment, run by a user
# without privileges, its store on the /data volume, health checked on the ops listener.
#
#   docker build -t voisobot .
#   docker run --env-file voiso.env -v voiso-data:/data voisobot
#
# Configuration comes from the environment (VOISO_<SECTION>__<KEY>, README: Configuration),
# or from /data/config.toml; secrets only from the environment. PYTHON_IMAGE is any Python
# 3.11+ image with venv; the default is Docker's official slim one.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the wheel, from the checkout ------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --quiet --upgrade pip \
 && /opt/build/bin/pip wheel --no-cache-dir --quiet --no-deps --wheel-dir /dist .

# --- run: the wheel and its dependencies, nothing else --------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/voisobot/bin:$PATH \
    VOISO_STORE__PATH=/data/voiso.sqlite3 \
    VOISO_OPS__HOST=0.0.0.0 \
    VOISO_OPS__PORT=9464
COPY --from=build /dist/ /tmp/dist/
RUN python3 -m venv /opt/voisobot \
 && /opt/voisobot/bin/pip install --no-cache-dir --quiet /tmp/dist/*.whl \
 && rm -rf /tmp/dist \
 && groupadd --system --gid 10001 voiso \
 && useradd --system --uid 10001 --gid voiso --home-dir /data --no-create-home voiso \
 && mkdir -p /data \
 && chown voiso:voiso /data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 9464: /healthz, /readyz and /metrics; 3000: /slack/events, in HTTP mode only.
EXPOSE 9464 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["voisobot", "health"]
# SIGTERM stops the bot within seconds, inside the usual 30-second grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["voisobot"]
CMD ["run"]
