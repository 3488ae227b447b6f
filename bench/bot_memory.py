"""The peak memory of the running bot on a big store (bench_queries.py's memory table).

Starts the real bot, ``bot.py run`` in HTTP mode as deployed, on a copy of the benchmark's
store: moto's SQS server on 127.0.0.1 (an empty queue), the fake Slack Web API
(tests/fakes/slack_api.py) by base URL, the signing secret and bot token from the
environment. Then sends it signed ``/voiso`` commands over HTTP, a few at a time, waits
for every answer at its response_url, and reads the process's VmHWM (peak resident set)
from /proc/<pid>/status: once when it has started, once after the answers.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import boto3
from moto.server import ThreadedMotoServer
from slack_sdk.signature import SignatureVerifier

from tests.fakes.slack_api import RESPONSE_URL, FakeSlack

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-signing-secret"
ANALYST, CHANNEL, ALERTS = "UBENCH0001", "CBENCH0001", "CBENCHALRT"
IN_FLIGHT = 4  # commands sent at once: a few analysts at the same time
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/voisobot-bench",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/voisobot-bench"}


@dataclass(frozen=True)
class BotMemory:
    started_kib: int   # VmHWM once the bot listens
    answered_kib: int  # VmHWM after every answer came
    current_kib: int   # VmRSS then
    commands: int
    answered: int
    seconds: float     # sending the commands and waiting for the answers


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/<pid>/status, in KiB (VmHWM: the peak resident set so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} in /proc/{pid}/status")


def measure(store_path: str, commands: list[str], directory: str | None = None,
            channels: tuple[str, ...] = ()) -> BotMemory:
    """Run the bot on ``store_path``, ask ``commands``; ``channels``: the alert channels the
    store's alerts name (so that the delivery job finds them in the fake Slack)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    fake = FakeSlack(channels={CHANNEL, ALERTS, *channels}).start()
    try:
        host, port = moto.get_host_and_port()
        sqs_url = f"http://{host}:{port}"
        queue_url = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1",
                                 aws_access_key_id="bench", aws_secret_access_key="bench"
                                 ).create_queue(QueueName="voiso-bench")["QueueUrl"]
        with tempfile.TemporaryDirectory(prefix="bench-bot-", dir=directory) as home:
            return _run_bot(Path(home), store_path, queue_url, sqs_url, fake, commands)
    finally:
        fake.stop()
        moto.stop()


def _run_bot(home: Path, store_path: str, queue_url: str, sqs_url: str, fake: FakeSlack,
             commands: list[str]) -> BotMemory:
    port = _free_port()
    config_path = home / "config.toml"
    config_path.write_text(
        f'[sqs]\nqueue_url = "{queue_url}"\nendpoint_url = "{sqs_url}"\n'
        f'[store]\npath = "{store_path}"\nretention_days = 3650\n'  # prune nothing of it
        f'[slack]\napi_base_url = "{fake.base_url}"\ndefault_channel = "{ALERTS}"\n'
        f'mode = "http"\n[http]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[access]\nusers = ["{ANALYST}"]\n[ops]\nport = 0\n', encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("VOISO_", "AWS_", "SLACK_")) and key != "PORT"}
    env |= {**FAKE_AWS, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET}
    log_path = home / "bot.log"
    with open(log_path, "wb") as log:
        bot = subprocess.Popen([sys.executable, str(ROOT / "bot.py"), "--config",
                                str(config_path), "run"], cwd=home, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(bot, port, log_path)
        started_kib = status_kib(bot.pid, "VmHWM")
        began = time.monotonic()
        url = f"http://127.0.0.1:{port}/slack/events"
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            answered = sum(pool.map(lambda item: _ask(url, fake, *item), enumerate(commands)))
        seconds = time.monotonic() - began
        memory = BotMemory(started_kib, status_kib(bot.pid, "VmHWM"),
                           status_kib(bot.pid, "VmRSS"), len(commands), answered, seconds)
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(timeout=30)
        except subprocess.TimeoutExpired:
            bot.kill()
            bot.wait()
    return memory


def _ask(url: str, fake: FakeSlack, number: int, text: str, timeout: float = 30.0) -> bool:
    """Send one signed /voiso command; True once its answer reached the response_url."""
    path = f"/response/bench{number}"
    body = urlencode({"token": "legacy", "team_id": "T1", "team_domain": "acme",
                      "channel_id": CHANNEL, "channel_name": "security", "user_id": ANALYST,
                      "user_name": "analyst", "command": "/voiso", "text": text,
                      "api_app_id": "A1", "response_url": f"{fake.url}{path}",
                      "trigger_id": "1.2.3"}).encode()
    stamp = str(int(time.time()))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=stamp,
                                                                          body=body)})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status != 200:
            return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(call.path == path for call in fake.calls_to(RESPONSE_URL)):
            return True
        time.sleep(0.01)
    return False


def _wait_listening(bot: subprocess.Popen, port: int, log_path: Path,
                    timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bot.poll() is not None:
            raise SystemExit(f"bot.py run exited ({bot.returncode}):\n"
                             f"{log_path.read_text(errors='replace')[-3000:]}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"bot.py run did not listen on port {port} within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
