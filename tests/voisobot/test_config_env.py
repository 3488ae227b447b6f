"""Configuration from the environment: every key as VOISO_<SECTION>__<KEY>, the environment
winning over the file, the file optional, and every error naming the key and the variable."""

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voisobot import cli, config, config_env, demo
from voisobot.errors import ConfigError

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"
OTHER_QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/other"
FILE = f"""[sqs]
queue_url = "{QUEUE}"
wait_time_seconds = 5
poll_interval_seconds = 2.5
[slack]
default_channel = "C0DEFAULT1"
group_by = ["type", "event"]
[severity]
"user/user_added" = "high"
[teams.destinations.soc]
webhook_url_env = "SOC_WEBHOOK_URL"
[[routes]]
channel = "C0SECURITY1"
"""


def load(tmp_path: Path, env: dict[str, str], file: str | None = FILE) -> config.Config:
    """As the command line loads: ./config.toml if there is one, and the environment."""
    path = tmp_path / "config.toml"
    if file is not None:
        path.write_text(file, encoding="utf-8")
    return config.load(path, env, file_optional=True)


def routes_of(cfg) -> list[tuple]:
    return [(r.channel, r.min_severity, r.continue_matching, r.event, r.mute) for r in cfg.routes]


# (case, file or None, environment, what the loaded config shows)
LOADED = [
    ("file_only", FILE, {},
     lambda c: (c.sqs.queue_url, c.sqs.wait_time_seconds, c.slack.default_channel)
     == (QUEUE, 5, "C0DEFAULT1")),
    ("env_only", None, {"VOISO_SQS__QUEUE_URL": QUEUE},
     lambda c: (c.sqs.queue_url, c.sqs.wait_time_seconds, c.sqs.region)
     == (QUEUE, 20, "eu-west-1")),
    ("env_wins", FILE, {"VOISO_SQS__WAIT_TIME_SECONDS": "7", "VOISO_SQS__QUEUE_URL": OTHER_QUEUE},
     lambda c: (c.sqs.queue_url, c.sqs.wait_time_seconds, c.sqs.poll_interval_seconds)
     == (OTHER_QUEUE, 7, 2.5)),
    ("int_for_float", FILE, {"VOISO_SQS__POLL_INTERVAL_SECONDS": "3"},
     lambda c: c.sqs.poll_interval_seconds == 3.0),
    ("float", FILE, {"VOISO_SQS__BACKOFF_MAX_SECONDS": "1.5"},
     lambda c: c.sqs.backoff_max_seconds == 1.5),
    ("string_as_it_is", FILE, {"VOISO_SLACK__DEFAULT_CHANNEL": "C0OTHER01"},
     lambda c: c.slack.default_channel == "C0OTHER01"),
    ("string_that_looks_like_toml", FILE, {"VOISO_SLACK__TEMPLATES_DIR": "."},
     lambda c: c.slack.templates_dir == "."),
    ("empty_string", FILE, {"VOISO_SLACK__DEFAULT_CHANNEL": ""},
     lambda c: c.slack.default_channel == ""),
    ("log_keys", FILE, {"VOISO_LOG__LEVEL": "debug", "VOISO_LOG__FORMAT": "json"},
     lambda c: (c.log.level, c.log.format) == ("DEBUG", "json")),
    ("absolute_store_path", None, {"VOISO_SQS__QUEUE_URL": QUEUE,
                                   "VOISO_STORE__PATH": "/data/voiso.sqlite3"},
     lambda c: c.store_path == Path("/data/voiso.sqlite3")),
    ("list", FILE, {"VOISO_SLACK__GROUP_BY": '["type", "ip"]'},
     lambda c: c.slack.group_by == ("type", "ip")),
    ("list_of_ids", FILE, {"VOISO_ACCESS__USERS": '["U0123ABCD", "W0123ABCD"]'},
     lambda c: c.access.users == ("U0123ABCD", "W0123ABCD")),
    ("empty_list", FILE, {"VOISO_SLACK__GROUP_BY": "[]"}, lambda c: c.slack.group_by == ()),
    ("whole_section", FILE,
     {"VOISO_SQS": f'{{queue_url = "{OTHER_QUEUE}", wait_time_seconds = 3}}'},
     lambda c: (c.sqs.queue_url, c.sqs.wait_time_seconds, c.sqs.poll_interval_seconds)
     == (OTHER_QUEUE, 3, 1.0)),
    ("key_inside_a_whole_section", FILE,
     {"VOISO_SQS": f'{{queue_url = "{OTHER_QUEUE}"}}', "VOISO_SQS__WAIT_TIME_SECONDS": "3"},
     lambda c: (c.sqs.queue_url, c.sqs.wait_time_seconds) == (OTHER_QUEUE, 3)),
    ("teams_destination_added", FILE,
     {"VOISO_TEAMS__DESTINATIONS__SECOPS__WEBHOOK_URL_ENV": "SECOPS_WEBHOOK_URL",
      "VOISO_TEAMS__DEFAULT_DESTINATION": "secops"},
     lambda c: ({n: d.webhook_url_env for n, d in c.teams.destinations.items()},
                c.teams.default_destination)
     == ({"soc": "SOC_WEBHOOK_URL", "secops": "SECOPS_WEBHOOK_URL"}, "secops")),
    ("teams_destination_changed", FILE,
     {"VOISO_TEAMS__DESTINATIONS__SOC__WEBHOOK_URL_ENV": "VOISO_TEAMS_SOC_URL",
      "VOISO_TEAMS_SOC_URL": "https://example.invalid/webhook"},
     lambda c: c.teams.destinations["soc"].webhook_url_env == "VOISO_TEAMS_SOC_URL"),
    ("routes_replace_the_files", FILE,
     {"VOISO_ROUTES": '[{channel = "C0ALERTS01", min_severity = "high", continue = true}, '
                      '{event = ["successful_login", "ip_changed"], mute = true}]'},
     lambda c: routes_of(c) == [("C0ALERTS01", "high", True, ("*",), False),
                                ("", "info", False, ("successful_login", "ip_changed"), True)]),
    ("no_routes", FILE, {"VOISO_ROUTES": "[]"}, lambda c: c.routes == ()),
    ("severity_added", FILE, {"VOISO_SEVERITY__APP_LOGIN__UNAUTHORIZED_IP": "critical"},
     lambda c: c.severity == {"user/user_added": "high",
                              "app_login/unauthorized_ip": "critical"}),
    ("severity_changed", FILE, {"VOISO_SEVERITY__USER__USER_ADDED": "low"},
     lambda c: c.severity == {"user/user_added": "low"}),
    ("severity_whole", FILE, {"VOISO_SEVERITY": '{"allowed_ip/ip_added" = "critical"}'},
     lambda c: c.severity == {"allowed_ip/ip_added": "critical"}),
    ("other_variables_are_no_settings", FILE,
     {"VOISO_DEMO_CHANNEL": "C0DEMO0001", "VOISO_DEMO_TEAMS_URL": "https://x.invalid/"},
     lambda c: c.sqs.queue_url == QUEUE),
    ("other_environment_ignored", FILE, {"PATH": "/bin", "voiso_sqs__wait_time_seconds": "x"},
     lambda c: c.sqs.wait_time_seconds == 5),
]


@pytest.mark.parametrize("file, env, shows", [case[1:] for case in LOADED],
                         ids=[case[0] for case in LOADED])
def test_the_environment_sets_any_key_and_wins_over_the_file(tmp_path, file, env, shows):
    assert shows(load(tmp_path, env, file))


# (case, file or None, environment, the whole error line)
ERRORS = [
    ("not_an_integer", FILE, {"VOISO_SQS__WAIT_TIME_SECONDS": "abc"},
     "VOISO_SQS__WAIT_TIME_SECONDS (sqs.wait_time_seconds): expected an integer from 0 to 20, "
     "got 'abc' (a string)"),
    ("out_of_range", FILE, {"VOISO_SQS__WAIT_TIME_SECONDS": "21"},
     "VOISO_SQS__WAIT_TIME_SECONDS (sqs.wait_time_seconds): expected an integer from 0 to 20, "
     "got 21 (an integer)"),
    ("quoted_number", FILE, {"VOISO_SQS__WAIT_TIME_SECONDS": '"20"'},
     "VOISO_SQS__WAIT_TIME_SECONDS (sqs.wait_time_seconds): expected an integer from 0 to 20, "
     "got '20' (a string)"),
    ("bad_string", FILE, {"VOISO_SLACK__DEFAULT_CHANNEL": "#security"},
     "VOISO_SLACK__DEFAULT_CHANNEL (slack.default_channel): expected a Slack channel ID such as "
     "C0123ABCD, or empty, got '#security' (a string)"),
    ("list_not_in_toml", FILE, {"VOISO_ACCESS__USERS": "U0123ABCD,U0456EFGH"},
     "VOISO_ACCESS__USERS (access.users): expected a list of Slack user IDs such as U0123ABCD, "
     "got 'U0123ABCD,U0456EFGH' (a string)"),
    ("bad_queue_url", None, {"VOISO_SQS__QUEUE_URL": "https://example.com/q"},
     "VOISO_SQS__QUEUE_URL (sqs.queue_url): expected an SQS queue URL like "
     "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso-security, got "
     "'https://example.com/q' (a string)"),
    ("region_mismatch", FILE, {"VOISO_SQS__REGION": "us-east-1"},
     "VOISO_SQS__REGION (sqs.region): 'us-east-1' does not match the queue URL's region "
     "'eu-west-1'; remove sqs.region or set it to 'eu-west-1'"),
    ("backoff_inverted", FILE, {"VOISO_SQS__BACKOFF_MAX_SECONDS": "0.5"},
     "VOISO_SQS__BACKOFF_MAX_SECONDS (sqs.backoff_max_seconds): expected at least "
     "sqs.backoff_initial_seconds (1.0)"),
    ("missing_templates_dir", FILE, {"VOISO_TEAMS__TEMPLATES_DIR": "no-such-dir"},
     "VOISO_TEAMS__TEMPLATES_DIR (teams.templates_dir): expected an existing directory, "
     "got 'no-such-dir' (a string) ({tmp}/no-such-dir)"),
    ("the_files_error_names_the_file", FILE.replace("= 5", "= 99"),
     {"VOISO_SQS__POLL_INTERVAL_SECONDS": "1"},
     "{tmp}/config.toml: sqs.wait_time_seconds: expected an integer from 0 to 20, "
     "got 99 (an integer)"),
    ("unknown_key", FILE, {"VOISO_SQS__WAIT_TIME": "5"},
     "VOISO_SQS__WAIT_TIME (sqs.wait_time): unknown key; expected one of queue_url, region, "
     "endpoint_url, wait_time_seconds, poll_interval_seconds, backoff_initial_seconds, "
     "backoff_max_seconds, request_timeout_seconds, receivers"),
    ("unknown_section", FILE, {"VOISO_SQSS__QUEUE_URL": QUEUE},
     "VOISO_SQSS__QUEUE_URL (sqss.queue_url): unknown section [sqss]; expected one of [sqs], "
     "[store], [log], [slack], [http], [ops], [access], [alerts], [digest], [severity], "
     "[routes], [teams], [confirm], [runbooks]"),
    ("one_underscore", FILE, {"VOISO_SQS_WAIT_TIME_SECONDS": "5"},
     "VOISO_SQS_WAIT_TIME_SECONDS: unknown variable; a setting is VOISO_<SECTION>__<KEY> with "
     "two underscores (e.g. VOISO_SQS__QUEUE_URL), and no "
     "teams.destinations.<name>.webhook_url_env names it; did you mean "
     "VOISO_SQS__WAIT_TIME_SECONDS?"),
    ("unknown_variable", FILE, {"VOISO_QUEUE": QUEUE},
     "VOISO_QUEUE: unknown variable; a setting is VOISO_<SECTION>__<KEY> with two underscores "
     "(e.g. VOISO_SQS__QUEUE_URL), and no teams.destinations.<name>.webhook_url_env names it"),
    ("webhook_variable_no_destination_names", FILE, {"VOISO_TEAMS_SECOPS_URL": "https://x/"},
     "VOISO_TEAMS_SECOPS_URL: unknown variable; a setting is VOISO_<SECTION>__<KEY> with two "
     "underscores (e.g. VOISO_SQS__QUEUE_URL), and no teams.destinations.<name>.webhook_url_env "
     "names it"),
    ("missing_required_key", None, {"VOISO_LOG__LEVEL": "INFO"},
     "{tmp}/config.toml (no such file): sqs.queue_url: missing; expected the queue's URL, e.g. "
     "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso; or set VOISO_SQS__QUEUE_URL"),
    ("missing_destination_key", FILE, {"VOISO_TEAMS__DESTINATIONS__SECOPS": "{}"},
     "VOISO_TEAMS__DESTINATIONS__SECOPS (teams.destinations.secops.webhook_url_env): missing; "
     "expected the name of the environment variable holding the webhook URL, e.g. "
     "VOISO_TEAMS_SECOPS_URL (not a setting's name, VOISO_<SECTION>__<KEY>)"),
    ("webhook_variable_named_like_a_setting", FILE,
     {"VOISO_TEAMS__DESTINATIONS__SOC__WEBHOOK_URL_ENV": "VOISO_SLACK__URL"},
     "VOISO_TEAMS__DESTINATIONS__SOC__WEBHOOK_URL_ENV (teams.destinations.soc.webhook_url_env): "
     "expected the name of the environment variable holding the webhook URL, e.g. "
     "VOISO_TEAMS_SECOPS_URL (not a setting's name, VOISO_<SECTION>__<KEY>), got "
     "'VOISO_SLACK__URL' (a string)"),
    ("bad_destination_name", FILE, {"VOISO_TEAMS__DESTINATIONS": '{"Sec Ops" = {}}'},
     "VOISO_TEAMS__DESTINATIONS (teams.destinations.Sec Ops): expected a name of lower-case "
     "letters, digits, - and _ (at most 40)"),
    ("route_without_channel", FILE, {"VOISO_ROUTES": '[{event = "x"}]'},
     "VOISO_ROUTES (routes[0].channel): missing; expected a Slack channel ID such as C0123ABCD, "
     "teams = [\"<destination>\"], teams_bot = [\"<name>\"], or mute = true"),
    ("route_bad_key", FILE,
     {"VOISO_ROUTES": '[{mute = true}, {channel = "C0123ABCD", chanel = 1}]'},
     "VOISO_ROUTES (routes[1].chanel): unknown key; expected one of channel, type, event, "
     "callcenter, access_group, min_severity, teams, teams_bot, continue, mute, group_by, "
     "group_window_minutes"),
    ("routes_not_an_array", FILE, {"VOISO_ROUTES": '{channel = "C0123ABCD"}'},
     "VOISO_ROUTES (routes): expected [[routes]] tables, got {'channel': 'C0123ABCD'} (a table)"),
    ("routes_not_toml", FILE, {"VOISO_ROUTES": "C0123ABCD"},
     "VOISO_ROUTES (routes): expected [[routes]] tables, got 'C0123ABCD' (a string)"),
    ("route_key_alone", FILE, {"VOISO_ROUTES__0__CHANNEL": "C0123ABCD"},
     "VOISO_ROUTES__0__CHANNEL: routes are set whole: VOISO_ROUTES = a TOML array of inline "
     'tables, e.g. [{channel = "C0123ABCD", min_severity = "high"}]'),
    ("route_to_unknown_destination", FILE, {"VOISO_ROUTES": '[{teams = ["secops"]}]'},
     "VOISO_ROUTES (routes[0].teams): unknown Teams destination 'secops'; expected a name from "
     "[teams.destinations] (soc)"),
    ("severity_level", FILE, {"VOISO_SEVERITY__USER__USER_ADDED": "urgent"},
     'VOISO_SEVERITY__USER__USER_ADDED (severity."user/user_added"): expected one of info, low, '
     "medium, high, critical, got 'urgent' (a string)"),
    ("severity_kind", FILE, {"VOISO_SEVERITY__USER_ADDED": "high"},
     'VOISO_SEVERITY__USER_ADDED (severity."user_added"): unknown key; expected a kind written '
     'type/event, e.g. "app_login/unauthorized_ip"'),
    ("section_not_a_table", FILE, {"VOISO_SLACK": "C0123ABCD"},
     "VOISO_SLACK (slack): expected a table [slack], got 'C0123ABCD' (a string)"),
    ("key_under_a_value", FILE, {"VOISO_SLACK": "1", "VOISO_SLACK__MODE": "http"},
     "VOISO_SLACK__MODE (slack.mode): slack is not a table"),
]


@pytest.mark.parametrize("file, env, message", [case[1:] for case in ERRORS],
                         ids=[case[0] for case in ERRORS])
def test_an_error_from_the_environment_names_the_variable_and_the_key(
        tmp_path, file, env, message):
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, env, file)
    assert str(raised.value) == message.replace("{tmp}", str(tmp_path))


@pytest.mark.parametrize("file, env, message", [case[1:] for case in ERRORS if case[0] in
                                                  ("not_an_integer", "one_underscore")])
def test_the_command_line_reads_the_environment_and_exits_2_on_its_errors(
        tmp_path, monkeypatch, capsys, file, env, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(file, encoding="utf-8")
    assert cli.main(["render", "unauthorized_ip"], env) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_no_config_file_is_needed_when_the_environment_sets_the_queue(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    env = {"VOISO_SQS__QUEUE_URL": QUEUE, "VOISO_SEVERITY__APP_LOGIN__UNAUTHORIZED_IP": "low"}
    assert cli.main(["render", "unauthorized_ip"], env) == 0
    assert capsys.readouterr().out.startswith("# app_login/unauthorized_ip: severity low")


def test_a_config_file_named_on_the_command_line_must_exist(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    assert cli.main(["--config", str(missing), "render"], {"VOISO_SQS__QUEUE_URL": QUEUE}) == 2
    assert "missing.toml: cannot read the config file" in capsys.readouterr().err


def test_loading_reads_no_environment_unless_given_one(tmp_path, monkeypatch):
    monkeypatch.setenv("VOISO_SQS__WAIT_TIME_SECONDS", "abc")
    path = tmp_path / "config.toml"
    path.write_text(FILE, encoding="utf-8")
    assert config.load(path).sqs.wait_time_seconds == 5


def test_the_variables_the_bot_reads_for_other_purposes_are_known():
    """Every VOISO_ name the code reads that is no setting is in OTHER_VARIABLES, so that it
    is not refused as a typo."""
    package = Path(config.__file__).parent
    read = {name for file in package.glob("*.py")
            for name in re.findall(r"\"(VOISO_[A-Z0-9_]+)\"", file.read_text(encoding="utf-8"))}
    read -= {"VOISO_TEAMS_SECOPS_URL"}  # an example in an error message
    assert read == config.OTHER_VARIABLES
    assert demo.TEAMS_URL_VARIABLE in config.OTHER_VARIABLES


# --- properties ----------------------------------------------------------------------------

SECTION_KEYS = [(section, f.metadata["key"] or f.name)
                for section, cls in {**config.SECTIONS, "teams": config.TeamsConfig}.items()
                for f in dataclasses.fields(cls) if "expect" in f.metadata]
env_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
                   max_size=40)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(SECTION_KEYS), text=env_text | st.integers().map(str)
       | st.sampled_from(["true", "[]", '["type"]', "1.5", "{}", "[1, 2]", "1979-05-27"]))
def test_any_value_in_any_variable_is_taken_or_refused_naming_the_variable(tmp_path_factory,
                                                                            key, text):
    variable = config_env.variable_for(key)
    tmp = tmp_path_factory.getbasetemp()
    try:
        cfg = config.load(tmp / "none.toml", {"VOISO_SQS__QUEUE_URL": QUEUE, variable: text},
                          file_optional=True)
    except ConfigError as exc:
        assert str(exc).startswith(f"{variable} ({'.'.join(key)})")
        return
    section = getattr(cfg, key[0])
    field = next(f for f in dataclasses.fields(section) if (f.metadata.get("key") or f.name)
                 == key[1])
    value = getattr(section, field.name)
    if field.type is str and key not in {("log", "level"), ("sqs", "region")}:
        assert value == text  # a string key takes the text as it is
    elif field.type in (int, float):
        assert value == config_env.toml_value(text)


toml_values = st.recursive(
    st.integers() | st.booleans() | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4), max_leaves=10)


def toml_text(value) -> str:
    """How a user writes ``value`` in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + "".join(c if c.isalnum() or c == " " else f"\\u{ord(c):04x}"
                             if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}" for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(item) for item in value) + "]"
    return repr(value)


@settings(max_examples=200)
@given(value=toml_values)
def test_a_toml_value_reads_back_as_itself(value):
    assert config_env.toml_value(toml_text(value)) == value

