"""``bot.py check`` says in plain words what is wrong with the setup."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from voisobot import check, sqs

ROOT = Path(__file__).resolve().parents[2]


def run_check(cfg) -> tuple[int, str]:
    out = io.StringIO()
    code = check.run(cfg, sqs.make_client(cfg.sqs), out=out)
    return code, out.getvalue()


def test_a_working_setup_passes_and_warns_about_a_missing_dead_letter_queue(queue_url,
                                                                            make_config):
    code, out = run_check(make_config(queue_url))
    assert code == 0 and out.rstrip().endswith("all checks passed")
    assert "queue reachable: 0 message(s) waiting" in out
    assert "warning  no dead-letter queue" in out
    assert "store " in out and "0 event(s)" in out


def test_a_dead_letter_queue_is_reported(sqs_admin, make_queue, make_config):
    dlq = make_queue()
    arn = sqs_admin.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = json.dumps({"deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                         "maxReceiveCount": "5"})
    code, out = run_check(make_config(make_queue(RedrivePolicy=policy)))
    assert code == 0 and "after 5 receives" in out and "warning" not in out


def test_no_credentials(queue_url, make_config, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out = run_check(make_config(queue_url))
    assert code == 1 and "no AWS credentials found: set AWS_ACCESS_KEY_ID" in out


def test_no_such_queue(moto_server, make_config):
    code, out = run_check(make_config(f"{moto_server['url']}/123456789012/no-such-queue"))
    assert code == 1 and "does not exist in region us-east-1: check sqs.queue_url" in out


@pytest.mark.parametrize("fault, says", [
    ("access_denied", "add sqs:GetQueueAttributes to the bot's IAM policy"),
    ("invalid_address", "does not belong to region us-east-1"),
    ("bad_credentials", "AWS rejected the bot's credentials"),
])
def test_queue_problems_are_named(queue_url, make_config, fault_proxy, fault, says):
    fault_proxy.fail("GetQueueAttributes", fault)
    code, out = run_check(make_config(queue_url, endpoint_url=fault_proxy.url))
    assert code == 1 and says in out and "1 problem(s) found" in out


def test_an_unwritable_store_is_named(queue_url, make_config, tmp_path):
    cfg = make_config(queue_url)
    cfg.store_path.mkdir()  # a directory where the file should be
    code, out = run_check(cfg)
    assert code == 1 and "cannot open the store" in out


def test_the_real_command_line(queue_url, moto_server, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'[sqs]\nqueue_url = "{queue_url}"\nendpoint_url = "{moto_server["url"]}"\n')
    result = subprocess.run([sys.executable, "bot.py", "--config", str(path), "check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "queue reachable" in result.stdout
