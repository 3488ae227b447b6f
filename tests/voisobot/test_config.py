"""config.toml: every kind of error names its key and exits 2; valid files load."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from voisobot import cli, config
from voisobot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"


def sqs_table(**keys) -> str:
    lines = [f'queue_url = "{GOOD_URL}"'] + [f"{k} = {v}" for k, v in keys.items()]
    return "[sqs]\n" + "\n".join(lines) + "\n"


CONFIG_ERRORS = [
    # (case, file text, what the one error line must say)
    ("not_toml", "[sqs\nqueue_url = 1", "not valid TOML"),
    ("ack_min_severity_unknown", sqs_table() + "[alerts]\nack_min_severity = 'urgent'\n",
     "alerts.ack_min_severity: expected one of info, low, medium, high, critical, got 'urgent'"),
    ("alerts_unknown_key", sqs_table() + "[alerts]\nack_min = 'high'\n",
     "alerts.ack_min: unknown key; expected one of ack_min_severity"),
    ("runbooks_not_a_table", "runbooks = 'x'\n" + sqs_table(),
     "runbooks: expected a table [runbooks], got 'x' (a string)"),
    ("runbook_key_not_a_kind", sqs_table() + "[runbooks]\nunauthorized_ip = 'https://w.example'\n",
     'runbooks."unauthorized_ip": unknown key; expected a kind written type/event'),
    ("runbook_plain_http", sqs_table() + "[runbooks]\n'a/b' = 'http://wiki.example/rb'\n",
     'runbooks."a/b": expected an https URL'),
    ("runbook_not_text", sqs_table() + "[runbooks]\n'a/b' = 5\n",
     'runbooks."a/b": expected an https URL such as'),
    ("runbook_with_a_pipe", sqs_table() + "[runbooks]\n'a/b' = 'https://w.example/x|evil'\n",
     'runbooks."a/b": expected an https URL'),
    ("runbook_with_a_space", sqs_table() + "[runbooks]\n'a/b' = 'https://w.example/x y'\n",
     'runbooks."a/b": expected an https URL'),
    ("runbook_with_a_bracket", sqs_table() + "[runbooks]\n'a/b' = 'https://w.example/<x>'\n",
     'runbooks."a/b": expected an https URL'),
    ("runbook_no_host", sqs_table() + "[runbooks]\n'a/b' = 'https:///x'\n",
     'runbooks."a/b": expected an https URL'),
    ("runbook_javascript", sqs_table() + "[runbooks]\n'a/b' = 'javascript:alert(1)'\n",
     'runbooks."a/b": expected an https URL'),
    ("unknown_section", sqs_table() + "[sqss]\n", "unknown section [sqss]"),
    ("unknown_key", sqs_table(wait_time=5), "sqs.wait_time: unknown key; expected one of"),
    ("unknown_store_key", sqs_table() + "[store]\nfile = 'x'\n", "store.file: unknown key"),
    ("no_sqs_section", "[log]\nlevel = 'INFO'\n", "sqs.queue_url: missing"),
    ("no_queue_url", "[sqs]\nwait_time_seconds = 5\n", "sqs.queue_url: missing"),
    ("empty_queue_url", '[sqs]\nqueue_url = ""\n', "sqs.queue_url: expected the queue's URL"),
    ("sqs_not_a_table", 'sqs = "x"\n', "sqs: expected a table [sqs], got 'x' (a string)"),
    ("wait_is_text", sqs_table(wait_time_seconds='"20"'),
     "sqs.wait_time_seconds: expected an integer from 0 to 20, got '20' (a string)"),
    ("wait_is_bool", sqs_table(wait_time_seconds="true"),
     "sqs.wait_time_seconds: expected an integer from 0 to 20, got True (a boolean)"),
    ("wait_too_long", sqs_table(wait_time_seconds=21), "sqs.wait_time_seconds: expected an "
     "integer from 0 to 20, got 21"),
    ("interval_too_short", sqs_table(poll_interval_seconds=0), "sqs.poll_interval_seconds"),
    ("timeout_is_text", sqs_table(request_timeout_seconds='"10s"'),
     "sqs.request_timeout_seconds: expected a number of seconds"),
    ("backoff_inverted", sqs_table(backoff_initial_seconds=10, backoff_max_seconds=5),
     "sqs.backoff_max_seconds: expected at least sqs.backoff_initial_seconds"),
    ("retention_fraction", sqs_table() + "[store]\nretention_days = 1.5\n",
     "store.retention_days: expected a whole number of days"),
    ("retention_zero", sqs_table() + "[store]\nretention_days = 0\n", "store.retention_days"),
    ("store_path_number", sqs_table() + "[store]\npath = 5\n", "store.path: expected a file path"),
    ("log_level_unknown", sqs_table() + "[log]\nlevel = 'LOUD'\n",
     "log.level: expected one of DEBUG, INFO, WARNING, ERROR"),
    ("url_not_sqs", '[sqs]\nqueue_url = "https://example.com/queue"\n',
     "sqs.queue_url: expected an SQS queue URL"),
    ("url_plain_http", '[sqs]\nqueue_url = "http://sqs.eu-west-1.amazonaws.com/123456789012/q"\n',
     "sqs.queue_url: expected an SQS queue URL"),
    ("url_no_scheme", '[sqs]\nqueue_url = "sqs.eu-west-1.amazonaws.com/123456789012/q"\n',
     "sqs.queue_url: expected an SQS queue URL"),
    ("url_short_account", '[sqs]\nqueue_url = "https://sqs.eu-west-1.amazonaws.com/1234/q"\n',
     "sqs.queue_url: expected an SQS queue URL"),
    ("url_is_arn", '[sqs]\nqueue_url = "arn:aws:sqs:eu-west-1:123456789012:q"\n',
     "sqs.queue_url: expected an SQS queue URL"),
    ("url_fifo", f'[sqs]\nqueue_url = "{GOOD_URL}.fifo"\n', "is a FIFO queue"),
    ("region_mismatch", sqs_table(region='"us-east-1"'),
     "sqs.region: 'us-east-1' does not match the queue URL's region 'eu-west-1'"),
    ("region_malformed", sqs_table(region='"Europe"'), "sqs.region: expected an AWS region"),
    ("endpoint_not_http", sqs_table(endpoint_url='"ftp://127.0.0.1"'), "sqs.endpoint_url"),
    ("slack_url_no_slash", sqs_table() + "[slack]\napi_base_url = 'https://slack.com/api'\n",
     "slack.api_base_url: expected an http(s) URL ending in /"),
    ("slack_channel_name", sqs_table() + "[slack]\ndefault_channel = '#security'\n",
     "slack.default_channel: expected a Slack channel ID"),
    ("slack_templates_missing", sqs_table() + "[slack]\ntemplates_dir = 'no/such/dir'\n",
     "slack.templates_dir: expected an existing directory"),
    ("slack_storm_zero", sqs_table() + "[slack]\nstorm_threshold = 0\n",
     "slack.storm_threshold: expected a whole number from 1 to 1000"),
    ("slack_group_by_field", sqs_table() + "[slack]\ngroup_by = ['type', 'password']\n",
     "slack.group_by: expected a list of event fields among"),
    ("severity_level", sqs_table() + '[severity]\n"user/user_added" = "urgent"\n',
     'severity."user/user_added": expected one of info, low, medium, high, critical'),
    ("severity_kind", sqs_table() + '[severity]\nuser_added = "high"\n',
     'severity."user_added": unknown key; expected a kind written type/event'),
    ("route_without_channel", sqs_table() + "[[routes]]\nevent = 'x'\n",
     "routes[0].channel: missing; expected a Slack channel ID"),
    ("route_unknown_key", sqs_table() + "[[routes]]\nchannel = 'C0123ABCD'\nchanel = 'x'\n",
     "routes[0].chanel: unknown key"),
    ("route_min_severity", sqs_table() + "[[routes]]\nchannel = 'C0123ABCD'\n"
     "min_severity = 'severe'\n", "routes[0].min_severity: expected one of info"),
    ("route_group_window", sqs_table() + "[[routes]]\nchannel = 'C0123ABCD'\n"
     "group_window_minutes = -1\n", "routes[0].group_window_minutes: expected a whole number"),
    ("routes_not_array", sqs_table() + "[routes]\nchannel = 'C0123ABCD'\n",
     "routes: expected [[routes]] tables"),
    ("ops_port_too_high", sqs_table() + "[ops]\nport = 70000\n",
     "ops.port: expected a TCP port from 1 to 65535 (0: any free port), got 70000"),
    ("ops_port_text", sqs_table() + "[ops]\nport = '9464'\n", "ops.port: expected a TCP port"),
    ("ops_host_empty", sqs_table() + "[ops]\nhost = ''\n", "ops.host: expected an address"),
    ("ops_outbox_zero", sqs_table() + "[ops]\noutbox_stuck_seconds = 0\n",
     "ops.outbox_stuck_seconds: expected a number of seconds from 1 to 86400, got 0"),
    ("ops_job_text", sqs_table() + "[ops]\njob_stuck_seconds = '15m'\n",
     "ops.job_stuck_seconds: expected a number of seconds from 1 to 86400"),
    ("ops_probe_too_long", sqs_table() + "[ops]\nstore_probe_timeout_seconds = 60\n",
     "ops.store_probe_timeout_seconds: expected a number of seconds from 0.05 to 30"),
    ("ops_unknown_key", sqs_table() + "[ops]\nbind = '0.0.0.0'\n",
     "ops.bind: unknown key; expected one of host, port"),
]


@pytest.mark.parametrize("text, message", [(t, m) for _, t, m in CONFIG_ERRORS],
                         ids=[case for case, _, _ in CONFIG_ERRORS])
def test_config_error_exits_2_with_one_line_naming_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert cli.main(["--config", str(path), "check"], environ={}) == 2  # the file alone
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: ")


def test_missing_config_file_is_named(tmp_path, capsys):
    assert cli.main(["--config", str(tmp_path / "nope.toml"), "run"]) == 2
    assert "nope.toml: cannot read the config file" in capsys.readouterr().err


def test_alerts_and_runbooks_are_read(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(sqs_table() + "[alerts]\nack_min_severity = 'high'\n[runbooks]\n"
                    "'app_login/unauthorized_ip' = 'https://wiki.example/rb?a=1&b=2#c'\n")
    cfg = config.load(path)
    assert cfg.alerts.ack_min_severity == "high"
    assert cfg.runbooks == {"app_login/unauthorized_ip": "https://wiki.example/rb?a=1&b=2#c"}
    assert config.load(tmp_path / "config.toml", {
        "VOISO_RUNBOOKS__USER__USER_ADDED": "https://wiki.example/added"}).runbooks[
        "user/user_added"] == "https://wiki.example/added"
    defaults = config.from_dict({"sqs": {"queue_url": GOOD_URL}})
    assert defaults.alerts.ack_min_severity == "medium" and defaults.runbooks == {}


def test_the_shipped_config_is_valid_and_commented():
    cfg = config.load(ROOT / "config.toml")
    assert cfg.sqs.region == "eu-west-1"
    text = (ROOT / "config.toml").read_text()
    for section, cls in {**config.SECTIONS, "teams": config.TeamsConfig,
                         "teams.bot": config.TeamsBotConfig}.items():
        body = text.split(f"\n[{section}]\n")[1].split("\n[")[0]  # the section's own lines
        for field in (f.name for f in dataclasses.fields(cls) if "expect" in f.metadata):
            line = f"\n{field} = "
            assert line in body, f"{section}.{field} is missing from config.toml"
            before = body.split(line)[0].rstrip().splitlines()[-1]
            assert before.startswith("#"), f"{section}.{field} has no comment above it"


@pytest.mark.parametrize("url, region", [
    ("https://sqs.eu-west-1.amazonaws.com/123456789012/voiso", "eu-west-1"),
    ("https://sqs.us-gov-west-1.amazonaws.com/123456789012/voiso", "us-gov-west-1"),
    ("https://sqs-fips.us-east-2.amazonaws.com/123456789012/voiso", "us-east-2"),
    ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/voiso", "cn-north-1"),
    ("https://ap-southeast-2.queue.amazonaws.com/123456789012/voiso", "ap-southeast-2"),
    ("https://queue.amazonaws.com/123456789012/voiso", "us-east-1"),
])
def test_region_comes_from_the_queue_url(url, region):
    sqs = config.from_dict({"sqs": {"queue_url": url}}).sqs
    assert (sqs.region, sqs.region_from) == (region, "the queue URL")


def test_endpoint_url_admits_a_local_queue_url_and_an_explicit_region():
    cfg = config.from_dict({"sqs": {"queue_url": "http://127.0.0.1:4566/000000000000/q",
                                    "endpoint_url": "http://127.0.0.1:4566",
                                    "region": "eu-central-1"}})
    assert (cfg.sqs.region, cfg.sqs.read_timeout_seconds) == ("eu-central-1", 30.0)
    assert cfg.sqs.region_from == "sqs.region"


def test_loading_leaves_an_unnamed_region_to_the_client_and_reads_no_environment(monkeypatch):
    """A local queue URL names no region: config.load stays pure; sqs.region_of decides."""
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    cfg = config.from_dict({"sqs": {"queue_url": "http://127.0.0.1:4566/000000000000/q",
                                    "endpoint_url": "http://127.0.0.1:4566"}})
    assert (cfg.sqs.region, cfg.sqs.region_from) == ("", "")


def test_a_local_queue_url_without_endpoint_url_is_refused():
    with pytest.raises(ConfigError, match=r"sqs\.queue_url"):
        config.from_dict({"sqs": {"queue_url": "http://127.0.0.1:4566/000000000000/q"}})


def test_relative_store_path_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "etc" / "config.toml"
    path.parent.mkdir()
    path.write_text(sqs_table() + "[store]\npath = 'data/cache.sqlite3'\n")
    assert config.load(path).store_path == tmp_path / "etc" / "data" / "cache.sqlite3"


def test_the_real_command_line_exits_2_on_a_bad_config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(sqs_table(wait_time_seconds=99))
    result = subprocess.run([sys.executable, "bot.py", "--config", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: sqs.wait_time_seconds: expected an integer from 0 to 20, got 99 "
        "(an integer)"]
