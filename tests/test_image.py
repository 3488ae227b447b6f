"""The image, as far as a machine without a container engine can run it: the Dockerfile's
final stage is read (its ENV, USER, WORKDIR, VOLUME, EXPOSE, HEALTHCHECK, ENTRYPOINT and
CMD) and replayed on the wheel installed in a fresh virtual environment, which is what the
image's /opt/voisobot holds. The bot it starts polls a real SQS server, stores an event in
the volume's place, passes the image's health check, and stops cleanly on the image's stop
signal. What cannot be replayed here (the user switch, the base image) is checked as text;
README: Deployment says how the real image was run."""

import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from voisobot import cli, samples

ROOT = Path(__file__).resolve().parents[1]
# One wheel per process: pip builds it in the checkout's build/, so its users share a process.
pytestmark = pytest.mark.xdist_group("wheel")
DOCKERFILE = ROOT / "Dockerfile"


def final_stage() -> dict[str, list[str]]:
    """Instruction -> its arguments, for the stage after the last FROM (continuations
    joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    stage: dict[str, list[str]] = {}
    for line in lines[last_from + 1:]:
        instruction, _, rest = line.partition(" ")
        stage.setdefault(instruction.upper(), []).append(rest.strip())
    return stage


def exec_form(argument: str) -> list[str]:
    """A JSON exec form (["voisobot", "run"]); the shell form is not used for the bot."""
    value = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value)
    return value


def image_env() -> dict[str, str]:
    found = {}
    for argument in final_stage()["ENV"]:
        for pair in shlex.split(argument):
            key, _, value = pair.partition("=")
            found[key] = value
    return found


def command(stage: dict[str, list[str]]) -> list[str]:
    (entrypoint,), (cmd,) = stage["ENTRYPOINT"], stage["CMD"]
    return exec_form(entrypoint) + exec_form(cmd)


def health_check(stage: dict[str, list[str]]) -> list[str]:
    (line,) = stage["HEALTHCHECK"]
    _, _, form = line.partition(" CMD ")
    return exec_form(form)


# --- as text ----------------------------------------------------------------------------------

def test_the_image_runs_the_console_script_as_a_user_without_privileges():
    stage = final_stage()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    argv = command(stage)
    assert scripts[argv[0]] == "voisobot.cli:main"
    assert cli.parse_args(argv[1:]).command == "run"
    (user,) = stage["USER"]
    uid, _, gid = user.partition(":")
    assert int(uid) >= 1000 and int(gid) >= 1000  # numeric: runAsNonRoot can check it
    assert stage["STOPSIGNAL"] == ["SIGTERM"]


def test_the_store_is_on_the_volume_and_the_ops_listener_reachable_from_outside():
    stage, env = final_stage(), image_env()
    (volume,) = [path for argument in stage["VOLUME"] for path in exec_form(argument)]
    assert Path(env["VOISO_STORE__PATH"]).parent == Path(volume) == Path(stage["WORKDIR"][0])
    assert env["VOISO_OPS__HOST"] == "0.0.0.0"  # probes come from outside the container
    assert env["VOISO_OPS__PORT"] in stage["EXPOSE"][0].split()
    assert env["PATH"].startswith("/opt/voisobot/bin:")


def test_the_health_check_asks_the_ops_listener_for_liveness():
    args = cli.parse_args(health_check(final_stage())[1:])
    assert (args.command, args.ready, args.config) == ("health", False, None)


def test_the_build_context_leaves_out_local_state_and_secrets():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for pattern in (".git", ".venv", "*.sqlite3", "*.env", "voiso.env", "tests"):
        assert pattern in ignored, pattern


# --- replayed on the installed wheel ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stored_events(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store, timeout=10) as conn:
        try:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def container_env(installed, tmp_path, moto_server, queue_url) -> tuple[dict[str, str], Path]:
    """The image's environment with its paths mapped onto this machine: /opt/voisobot is
    the installed venv, /data a temp directory, and the ops port a free one (9464 may be in
    use here). What a deployment adds: the queue, SQS's endpoint (moto) and credentials."""
    data = tmp_path / "data"
    data.mkdir()
    env = {key: value.replace("/opt/voisobot", str(installed)).replace("/data", str(data))
           for key, value in image_env().items()}
    env["PATH"] = env["PATH"].replace("$PATH", os.environ["PATH"])
    env["VOISO_OPS__PORT"] = str(free_port())
    env.update({key: os.environ[key] for key in os.environ if key.startswith("AWS_")})
    env.update({"VOISO_SQS__QUEUE_URL": queue_url,
                "VOISO_SQS__ENDPOINT_URL": moto_server["url"],
                "VOISO_SQS__WAIT_TIME_SECONDS": "1", "HOME": str(data)})
    return env, data


def test_the_image_command_stores_events_passes_its_health_check_and_stops_on_sigterm(
        container_env, sqs_admin, queue_url):
    env, data = container_env
    stage = final_stage()
    bot = subprocess.Popen(command(stage), cwd=data, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        def healthy() -> bool:
            return subprocess.run(health_check(stage), cwd=data, env=env, capture_output=True,
                                  timeout=30).returncode == 0

        wait_for(healthy, "the image's health check to pass")
        sqs_admin.send_message(QueueUrl=queue_url, MessageBody=samples.body_text(
            samples.example("app_login/unauthorized_ip")))
        store = Path(env["VOISO_STORE__PATH"])
        assert store.parent == data
        wait_for(lambda: stored_events(store) == 1, "the event in the volume's store")
        bot.send_signal(getattr(signal, stage["STOPSIGNAL"][0]))
        _, err = bot.communicate(timeout=25)  # a container's grace period is 30 s
    finally:
        bot.kill()
    assert bot.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
