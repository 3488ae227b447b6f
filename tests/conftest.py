"""Fixtures: a real SQS server over HTTP (moto), fresh queues, fresh stores, config factories,
and the bot built as a wheel and installed in a fresh virtual environment."""

import json
import logging
import os
import site
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from tests.fakes.atomic_moto import AtomicMotoServer
from tests.fakes.sqs_proxy import SqsFaultProxy
from voisobot import config
from voisobot.store import Store

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",  # never look for an instance role
    "AWS_CONFIG_FILE": "/nonexistent/voisobot-tests",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/voisobot-tests",
}


@pytest.fixture(autouse=True)
def aws_test_env(monkeypatch):
    """Fake credentials only: no test can pick up a developer's real AWS or Slack identity."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "PORT",
                "VOISO_DEMO_CHANNEL", "VOISO_DEMO_TEAMS_URL"):  # never post for real
        monkeypatch.delenv(key, raising=False)
    for key in [key for key in os.environ if key.startswith("VOISO_")]:  # settings, too
        monkeypatch.delenv(key)
    for key, value in TEST_ENV.items():
        monkeypatch.setenv(key, value)
    # A bot a test starts as a process listens for health and metrics on a free port, not
    # on the default 9464, which tests running in parallel (make test) would fight over.
    monkeypatch.setenv("VOISO_OPS__PORT", "0")


@pytest.fixture(scope="session")
def moto_server():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # Each SQS call atomic, as SQS's are: the intake's drain calls from many threads.
    server = AtomicMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield {"server": server, "url": f"http://{host}:{port}", "port": port}
    server.stop()


@pytest.fixture
def sqs_admin(moto_server, aws_test_env):
    """A plain boto3 client playing Voiso's side and the test's eyes on the queue."""
    return boto3.client("sqs", endpoint_url=moto_server["url"], region_name=REGION)


@pytest.fixture
def make_queue(sqs_admin):
    def make(**attributes) -> str:
        name = f"voiso-{uuid.uuid4().hex[:12]}"
        attributes = {key: str(value) for key, value in attributes.items()}
        return sqs_admin.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return make


@pytest.fixture
def queue_url(make_queue):
    return make_queue()


@pytest.fixture
def fault_proxy(moto_server):
    proxy = SqsFaultProxy(moto_server["url"]).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def make_config(tmp_path, moto_server):
    """A validated Config for a queue on the test server, with fast timings (and the
    operations listener on any free port of 127.0.0.1)."""
    def make(queue_url: str, *, endpoint_url: str | None = None, **sqs_overrides) -> config.Config:
        sqs = {"queue_url": queue_url, "endpoint_url": endpoint_url or moto_server["url"],
               "wait_time_seconds": 1, "poll_interval_seconds": 0.1,
               "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5,
               "request_timeout_seconds": 2.0, **sqs_overrides}
        return config.from_dict({"sqs": sqs, "store": {"path": "store.sqlite3"},
                                 "ops": {"port": 0}}, base_dir=tmp_path)
    return make


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store.sqlite3")
    yield store
    store.close()


def audit_rows(store: Store) -> list[dict]:
    """The audit trail (its own file: voisobot/audit.py), oldest first."""
    return [dict(row) for row in store.audit.connection().execute(
        "SELECT * FROM audit ORDER BY id")]


def sqs_message(body: str | dict, message_id: str | None = None) -> dict:
    """A message as ReceiveMessage returns it, for tests that need no network."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {"MessageId": message_id or str(uuid.uuid4()), "ReceiptHandle": uuid.uuid4().hex,
            "Body": text, "Attributes": {"SentTimestamp": "1602324672120"}}


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel pip builds from the checkout, and what the build printed."""
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (found,) = out.glob("voisobot-*.whl")
    return found, build.stdout + build.stderr


@pytest.fixture(scope="session")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; its dependencies are read from this test run's own
    environment (a .pth line), so the test needs no network. The checkout is not on its
    path: the bot it runs is the wheel's."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
         "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (target / "voisobot-test-dependencies.pth").write_text(
        "\n".join(p for p in site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-deps", "--quiet", str(wheel[0])], check=True, timeout=300)
    return venv
