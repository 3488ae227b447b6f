"""config.toml: read once, validated at load, every error naming its key.

Each section is a frozen dataclass; each field carries in its metadata what a
valid value looks like (``expect``) and a check. Secrets never live here: AWS
credentials come from boto3's default chain (environment, profile, instance role).
"""

import dataclasses
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from voisobot import config_env
from voisobot.config_env import Origins
from voisobot.errors import ConfigError

DEFAULT_PATH = Path("config.toml")

_AWS_QUEUE_URL = re.compile(
    r"^https://(?:sqs(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?"
    r"|(?P<legacy>[a-z]{2}(?:-[a-z]+)+-\d+)\.queue\.amazonaws\.com"
    r"|queue\.amazonaws\.com)"
    r"/\d{12}/[A-Za-z0-9_-]{1,80}(?:\.fifo)?$"
)
_ANY_QUEUE_PATH = re.compile(r"^/[^/]+/[A-Za-z0-9_-]{1,80}(?:\.fifo)?$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d+$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_KIND = re.compile(r"^[^/\s]+/[^/\s]+$")
_TEAMS_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")
_URL_PATH = re.compile(r"^/[A-Za-z0-9._~/-]{0,200}$")
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A channel's id (19:…@thread.tacv2 / .skype) or a chat's (19:…, a:…): no thread suffix
# (";messageid="), no spaces.
_TEAMS_CONVERSATION = re.compile(r"^(19|a|8):[^\s;]{1,300}$")
# VOISO_ variables the bot reads that are not settings (config_env.py): make demo's.
OTHER_VARIABLES = frozenset({"VOISO_DEMO_CHANNEL", "VOISO_DEMO_TEAMS_URL"})
TEAMS_PREFIX = "teams:"  # an alert's channel for a Teams destination: "teams:<name>"
# An alert's channel for a conversation where the Teams bot is installed, named by
# "@Voiso subscribe <name>" there: "teamsbot:<name>".
TEAMS_BOT_PREFIX = "teamsbot:"
BOT_CONVERSATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_BOT_NAMES = ('a list of names given with "@Voiso subscribe <name>" (lowercase letters, '
              "digits, - and _)")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
SEVERITIES = ("info", "low", "medium", "high", "critical")  # in rising order
GROUP_FIELDS = ("type", "event", "user", "who", "ip", "callcenter", "access_group")
DEFAULT_GROUP_BY = ("type", "event", "user")
Match = tuple[str, ...]  # a TOML string or list of strings; "*" matches anything


def option(default: Any = dataclasses.MISSING, *, expect: str, check=lambda v: True,
           key: str | None = None):
    """A config field: its default, a phrase saying what is expected, a check, and its TOML
    key when that differs from the field name."""
    metadata = {"expect": expect, "check": check, "key": key}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=metadata)
    return field(default=default, metadata=metadata)


def _group_by_option():
    """How events group into one alert: [slack] sets it for the default channel, and each
    route for itself."""
    return option(DEFAULT_GROUP_BY, expect="a list of event fields among "
                  + ", ".join(GROUP_FIELDS), check=lambda v: all(f in GROUP_FIELDS for f in v))


def _group_window_option():
    return option(10, expect="a whole number of minutes from 0 to 1440 (0: no grouping)",
                  check=_between(0, 1440))


def _some(values: tuple[str, ...]) -> bool:
    return bool(values)


def _ids(prefixes: str):
    pattern = re.compile(rf"^[{prefixes}][A-Z0-9]{{6,}}$")
    return lambda values: all(pattern.match(v) for v in values)


def _channel_or_empty(value: str) -> bool:
    return value == "" or bool(_CHANNEL_ID.match(value))


def _any_of(expect: str) -> str:
    return f"{expect}, or a list of them (\"*\" matches any)"


def _is_setting(variable: str) -> bool:
    try:
        return config_env.setting_path(variable, (*SECTIONS, *SPECIAL_SECTIONS)) is not None \
            and variable.startswith(config_env.PREFIX)
    except ConfigError:  # VOISO_ROUTES__…: not a setting, but no name for a webhook either
        return True


def _between(low, high):
    return lambda v: low <= v <= high


@dataclass(frozen=True)
class SqsConfig:
    queue_url: str = option(
        expect="the queue's URL, e.g. https://sqs.eu-west-1.amazonaws.com/123456789012/voiso",
        check=lambda v: bool(v),
    )
    region: str = option("", expect="an AWS region such as eu-west-1, or empty",
                         check=lambda v: v == "" or bool(_REGION.match(v)))
    endpoint_url: str = option("", expect="an http(s) URL of an SQS-compatible server, or empty",
                               check=lambda v: v == "" or urlsplit(v).scheme in ("http", "https"))
    wait_time_seconds: int = option(20, expect="an integer from 0 to 20", check=_between(0, 20))
    poll_interval_seconds: float = option(1.0, expect="a number of seconds from 0.1 to 3600",
                                          check=_between(0.1, 3600))
    backoff_initial_seconds: float = option(1.0, expect="a number of seconds from 0.01 to 600",
                                            check=_between(0.01, 600))
    backoff_max_seconds: float = option(60.0, expect="a number of seconds from 0.01 to 3600",
                                        check=_between(0.01, 3600))
    request_timeout_seconds: float = option(10.0, expect="a number of seconds from 0.1 to 120",
                                            check=_between(0.1, 120))
    # How many threads receive at once while the queue has a backlog (voisobot/drain.py);
    # 1: one poller that receives, commits and deletes in turn.
    receivers: int = option(8, expect="a whole number of receivers from 1 to 32",
                            check=_between(1, 32))
    # Set at load, not a key: "sqs.region", "the queue URL", or "" when neither names a region
    # (then sqs.region_of follows boto3's chain where the client is built).
    region_from: str = ""

    @property
    def read_timeout_seconds(self) -> float:
        """Above the long-poll wait, so a healthy empty poll never times out."""
        return self.wait_time_seconds + self.request_timeout_seconds


@dataclass(frozen=True)
class StoreConfig:
    path: str = option("voiso.sqlite3",
                       expect="a file path (relative paths are relative to the config file)",
                       check=lambda v: bool(v))
    retention_days: int = option(90, expect="a whole number of days from 1 to 3650",
                                 check=_between(1, 3650))
    prune_interval_minutes: int = option(60, expect="a whole number of minutes from 1 to 10080",
                                         check=_between(1, 10080))


@dataclass(frozen=True)
class LogConfig:
    level: str = option("INFO", expect="one of " + ", ".join(LOG_LEVELS),
                        check=lambda v: v.upper() in LOG_LEVELS)
    format: str = option("text", expect='"text" (one line per record) or "json" (one JSON '
                         "object per line)", check=lambda v: v in LOG_FORMATS)


@dataclass(frozen=True)
class SlackConfig:
    api_base_url: str = option("https://slack.com/api/",
                               expect="an http(s) URL ending in /, e.g. https://slack.com/api/",
                               check=lambda v: urlsplit(v).scheme in ("http", "https")
                               and v.endswith("/"))
    default_channel: str = option("", expect="a Slack channel ID such as C0123ABCD, or empty",
                                  check=_channel_or_empty)
    templates_dir: str = option("", expect="a directory of your own templates, or empty")
    timeout_seconds: float = option(10.0, expect="a number of seconds from 1 to 60",
                                    check=_between(1, 60))
    group_by: tuple[str, ...] = _group_by_option()
    group_window_minutes: int = _group_window_option()
    storm_threshold: int = option(5, expect="a whole number from 1 to 1000",
                                  check=_between(1, 1000))
    thread_reply_cap: int = option(20, expect="a whole number from 0 to 500",
                                   check=_between(0, 500))
    updates_per_minute: int = option(12, expect="a whole number from 1 to 60",
                                     check=_between(1, 60))
    mode: str = option("socket", expect='"socket" (Socket Mode, no public URL) or "http" '
                       "(Slack calls /slack/events)", check=lambda v: v in ("socket", "http"))


@dataclass(frozen=True)
class HttpConfig:
    """Where HTTP mode listens (slack.mode = "http"); the PORT environment variable, set
    by platforms such as Heroku, takes the place of port."""

    host: str = option("0.0.0.0", expect="an address to listen on, e.g. 0.0.0.0 or 127.0.0.1",
                       check=bool)
    port: int = option(3000, expect="a TCP port from 1 to 65535 (0: any free port)",
                       check=_between(0, 65535))
    threads: int = option(8, expect="a whole number from 1 to 64", check=_between(1, 64))
    max_body_bytes: int = option(
        1048576, expect="a whole number of bytes from 65536 (64 KiB) to 67108864 (64 MiB)",
        check=_between(65536, 67108864))


@dataclass(frozen=True)
class OpsConfig:
    """The operations listener (/healthz, /readyz, /metrics), in every mode; never the
    public Slack port."""

    host: str = option("127.0.0.1", expect="an address to listen on, e.g. 127.0.0.1 (this "
                       "machine only) or 0.0.0.0 (a container's probes)", check=bool)
    port: int = option(9464, expect="a TCP port from 1 to 65535 (0: any free port)",
                       check=_between(0, 65535))
    outbox_stuck_seconds: float = option(600.0, expect="a number of seconds from 1 to 86400",
                                         check=_between(1, 86400))
    job_stuck_seconds: float = option(900.0, expect="a number of seconds from 1 to 86400",
                                      check=_between(1, 86400))
    store_probe_timeout_seconds: float = option(2.0, expect="a number of seconds from 0.05 "
                                                "to 30", check=_between(0.05, 30))


@dataclass(frozen=True)
class RouteConfig:
    channel: str = option("", expect="a Slack channel ID such as C0123ABCD",
                          check=_channel_or_empty)
    type: tuple[str, ...] = option(("*",), check=_some,
                                expect=_any_of("an event type such as app_login"))
    event: tuple[str, ...] = option(("*",), check=_some,
                                 expect=_any_of("an event name such as unauthorized_ip"))
    callcenter: tuple[str, ...] = option(("*",), check=_some,
                                      expect=_any_of("a call center name"))
    access_group: tuple[str, ...] = option(("*",), check=_some,
                                        expect=_any_of("an access group such as admin"))
    min_severity: str = option("info", expect="one of " + ", ".join(SEVERITIES),
                               check=lambda v: v in SEVERITIES)
    teams: tuple[str, ...] = option((), expect="a list of Teams destination names from "
                                    "[teams.destinations]", check=lambda v: True)
    teams_bot: tuple[str, ...] = option((), expect=_BOT_NAMES,
                                        check=lambda v: all(BOT_CONVERSATION_NAME.match(n)
                                                            for n in v))
    continue_matching: bool = option(False, expect="true or false", key="continue")
    mute: bool = option(False, expect="true or false")
    group_by: tuple[str, ...] = _group_by_option()
    group_window_minutes: int = _group_window_option()


@dataclass(frozen=True)
class AccessConfig:
    """Who may run /voiso and press the alerts' buttons: nobody unless listed here."""

    users: tuple[str, ...] = option((), expect="a list of Slack user IDs such as U0123ABCD",
                                    check=_ids("UW"))
    usergroups: tuple[str, ...] = option((), expect="a list of Slack user-group IDs such as "
                                         "S0123ABCD", check=_ids("S"))
    channels: tuple[str, ...] = option((), expect="a list of Slack channel IDs such as "
                                       "C0123ABCD", check=_ids("CG"))
    # Teams identities ([teams.bot]): never mixed with the Slack ones above, so that an id
    # of one platform can never grant access on the other.
    teams_users: tuple[str, ...] = option((), expect="a list of Entra ID (Azure AD) object "
                                          "ids such as 00000000-0000-0000-0000-000000000000",
                                          check=lambda v: all(_GUID.match(i) for i in v))
    teams_channels: tuple[str, ...] = option((), expect="a list of Teams channel or chat ids "
                                             "such as 19:abc123@thread.tacv2",
                                             check=lambda v: all(_TEAMS_CONVERSATION.match(i)
                                                                 for i in v))
    teams_teams: tuple[str, ...] = option((), expect="a list of Teams team ids such as "
                                          "19:abc123@thread.tacv2",
                                          check=lambda v: all(_TEAMS_CONVERSATION.match(i)
                                                              for i in v))


@dataclass(frozen=True)
class TeamsDestinationConfig:
    """A Teams channel, reached through a Workflows webhook whose URL is a secret: it
    lives in the environment variable named here, never in config.toml."""

    webhook_url_env: str = option(expect="the name of the environment variable holding the "
                                  "webhook URL, e.g. VOISO_TEAMS_SECOPS_URL (not a setting's "
                                  "name, VOISO_<SECTION>__<KEY>)",
                                  check=lambda v: bool(_ENV_NAME.match(v)) and not _is_setting(v))


@dataclass(frozen=True)
class TeamsBotConfig:
    """The Teams bot ([teams.bot]): its endpoint. Its app id, secret and tenant come from
    the environment only (TEAMS_APP_ID, TEAMS_APP_PASSWORD, TEAMS_TENANT_ID)."""

    enabled: bool = option(False, expect="true or false")
    host: str = option("127.0.0.1", expect="an address to listen on, e.g. 127.0.0.1 (behind "
                       "a reverse proxy) or 0.0.0.0", check=bool)
    port: int = option(3978, expect="a TCP port from 1 to 65535 (0: any free port)",
                       check=_between(0, 65535))
    path: str = option("/api/messages", expect='a URL path starting with "/", e.g. '
                       "/api/messages", check=lambda v: bool(_URL_PATH.match(v)))
    allow_unauthenticated: bool = option(False, expect="true or false (true: for local tests "
                                         "only)")
    default_conversation: str = option("", expect='a name given with "@Voiso subscribe '
                                       '<name>" (lowercase letters, digits, - and _), or empty',
                                       check=lambda v: v == "" or bool(
                                           BOT_CONVERSATION_NAME.match(v)))


@dataclass(frozen=True)
class TeamsConfig:
    default_destination: str = option("", expect="a name from [teams.destinations], or empty")
    templates_dir: str = option("", expect="a directory of your own Teams templates, or empty")
    timeout_seconds: float = option(10.0, expect="a number of seconds from 1 to 60",
                                    check=_between(1, 60))
    ip_lookup_url: str = option(
        "https://www.abuseipdb.com/check/{ip}",
        expect='an https URL with "{ip}" in it, or empty (no link)',
        check=lambda v: v == "" or (v.startswith("https://") and "{ip}" in v))
    destinations: dict[str, TeamsDestinationConfig] = field(default_factory=dict)
    bot: TeamsBotConfig = field(default_factory=TeamsBotConfig)


# Whom "was this you?" asks by default, per kind: the affected user (params.user) and the
# admin who made the change (params.who). Never successful_login: it carries no IP.
ASK_USER_KINDS = ("app_login/unauthorized_ip", "app_login/ip_changed",
                  "app_login/incorrect_password", "user/password_changed",
                  "user/privileges_updated")
ASK_ADMIN_KINDS = ("user/user_added", "user/user_deleted", "user/password_changed",
                   "user/privileges_updated", "allowed_ip/ip_added", "allowed_ip/ip_removed",
                   "allowed_ip/ip_changed")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _kinds(values: tuple[str, ...]) -> bool:
    return all(_KIND.match(v) for v in values)


ASK_PLACES = ("slack", "teams")  # where "was this you?" can reach a person


def _bot_channel(value: str) -> bool:
    return value.startswith(TEAMS_BOT_PREFIX) \
        and bool(BOT_CONVERSATION_NAME.match(value.removeprefix(TEAMS_BOT_PREFIX)))


def _ask_places(values: tuple[str, ...]) -> bool:
    return bool(values) and all(v in ASK_PLACES for v in values) \
        and len(set(values)) == len(values)


@dataclass(frozen=True)
class ConfirmConfig:
    """"Was this you?": direct messages to the people an alert involves, and escalation
    when one says no (or, if set, says nothing)."""

    enabled: bool = option(False, expect="true or false")
    ask_user: tuple[str, ...] = option(ASK_USER_KINDS, check=_kinds, expect="a list of kinds "
                                       'written type/event, e.g. "app_login/unauthorized_ip"')
    ask_admin: tuple[str, ...] = option(ASK_ADMIN_KINDS, check=_kinds, expect="a list of "
                                        'kinds written type/event, e.g. "user/user_added"')
    if_not: str = option("If this wasn't you, tell the security team at once.",
                         expect="one line of text (at most 300 characters)",
                         check=lambda v: len(v) <= 300 and "\n" not in v)
    timeout_minutes: int = option(30, expect="a whole number of minutes from 1 to 10080",
                                  check=_between(1, 10080))
    escalate_on_timeout: bool = option(False, expect="true or false")
    escalation_channel: str = option("", expect="a Slack channel ID such as C0123ABCD, "
                                     "\"teamsbot:<name>\" (a conversation named with @Voiso "
                                     "subscribe), or empty (the alert's own channel)",
                                     check=lambda v: _channel_or_empty(v) or _bot_channel(v))
    escalate_usergroup: str = option("", expect="a Slack user-group ID such as S0123ABCD, or "
                                     "empty (no mention)",
                                     check=lambda v: v == "" or _ids("S")((v,)))
    auto_ack_on_yes: bool = option(False, expect="true or false")
    lookup_cache_hours: int = option(24, expect="a whole number of hours from 1 to 720",
                                     check=_between(1, 720))
    ask_in: tuple[str, ...] = option(("slack",), check=lambda v: _ask_places(v),
                                     expect='a list of "slack" and "teams" in the order to '
                                            'try, each at most once, e.g. ["slack", "teams"]')
    aliases: dict[str, str] = field(default_factory=dict)  # Voiso email -> Slack email


DIGEST_PERIODS = ("daily", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _digest_channel(value: str) -> bool:
    """Empty (no digest), a Slack channel, "teams:<name>" or "teamsbot:<name>"."""
    if value.startswith(TEAMS_PREFIX):
        return bool(_TEAMS_NAME.match(value.removeprefix(TEAMS_PREFIX)))
    return _channel_or_empty(value) or _bot_channel(value)


def _time_zone(value: str) -> bool:
    try:
        zoneinfo.ZoneInfo(value)
    except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError):  # a path, a directory
        return False
    return True


@dataclass(frozen=True)
class DigestConfig:
    """The digest ([digest]): one summary message per day or week, off without a channel."""

    channel: str = option("", expect='a Slack channel ID such as C0123ABCD, "teams:<name>" '
                          '(a Teams destination), "teamsbot:<name>" (a Teams bot '
                          "conversation), or empty (no digest)", check=_digest_channel)
    time: str = option("08:00", expect='a local time of day "HH:MM" (24-hour), e.g. "08:00"',
                       check=lambda v: bool(_CLOCK_TIME.match(v)))
    timezone: str = option("UTC", expect='an IANA time zone such as "Europe/London" or "UTC"',
                           check=_time_zone)
    period: str = option("daily", expect='"daily" or "weekly"',
                         check=lambda v: v in DIGEST_PERIODS)
    weekday: str = option("monday", expect="the day a weekly digest is posted: "
                          + ", ".join(WEEKDAYS), check=lambda v: v in WEEKDAYS)

    @property
    def enabled(self) -> bool:
        return bool(self.channel)


@dataclass(frozen=True)
class AlertsConfig:
    """What every alert shows, in Slack and in the Teams bot's cards."""

    ack_min_severity: str = option("medium", expect="one of " + ", ".join(SEVERITIES),
                                   check=lambda v: v in SEVERITIES)


# A runbook link: https, a host, and no character that could end a link in Slack or Teams.
_RUNBOOK_URL = re.compile(r"^https://[^\s/?#<>|\"'`\\]+(?:[/?#][^\s<>|\"'`\\]*)?$")
MAX_RUNBOOK_URL = 2000


SECTIONS: dict[str, type] = {"sqs": SqsConfig, "store": StoreConfig, "log": LogConfig,
                             "slack": SlackConfig, "http": HttpConfig, "ops": OpsConfig,
                             "access": AccessConfig, "alerts": AlertsConfig,
                             "digest": DigestConfig}
SPECIAL_SECTIONS = ("severity", "routes", "teams", "confirm", "runbooks")


@dataclass(frozen=True)
class Config:
    sqs: SqsConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    log: LogConfig = field(default_factory=LogConfig)
    slack: SlackConfig = field(default_factory=SlackConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    access: AccessConfig = field(default_factory=AccessConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    teams: TeamsConfig = field(default_factory=TeamsConfig)
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    severity: dict[str, str] = field(default_factory=dict)  # "type/event" -> severity
    runbooks: dict[str, str] = field(default_factory=dict)  # "type/event" -> https URL
    routes: tuple[RouteConfig, ...] = ()
    base_dir: Path = Path(".")

    @property
    def store_path(self) -> Path:
        return self.base_dir / Path(self.store.path).expanduser()

    @property
    def templates_path(self) -> Path | None:
        """The user's own templates, which override the built-in ones file by file."""
        return self._relative(self.slack.templates_dir)

    @property
    def teams_templates_path(self) -> Path | None:
        return self._relative(self.teams.templates_dir)

    def _relative(self, path: str) -> Path | None:
        return self.base_dir / Path(path).expanduser() if path else None


def load(path: Path = DEFAULT_PATH, environ: Mapping[str, str] | None = None, *,
         file_optional: bool = False) -> Config:
    """Read and validate a config file and the VOISO_ variables of ``environ`` (none by
    default: the command line passes os.environ), which win over the file; raise
    ConfigError naming the key, and the variable it came from, on any problem. With
    ``file_optional``, a missing file is no error when the environment supplies every
    required key (relative paths are then relative to the working directory)."""
    path = Path(path)
    if file_optional and not path.exists():
        data, origins, base_dir = {}, Origins(f"{path} (no such file)"), Path.cwd()
    else:
        data, origins, base_dir = _read(path), Origins(str(path)), path.resolve().parent
    found, others = config_env.settings(environ or {}, (*SECTIONS, *SPECIAL_SECTIONS))
    data, variables = config_env.overlay(data, found, _is_text)
    origins = dataclasses.replace(origins, variables=variables)
    _refuse_unknown_variables(others, data)
    return from_dict(data, base_dir=base_dir, origins=origins)


def _read(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _is_text(path: tuple) -> bool:
    """Whether the key at ``path`` holds a string (its variable's text is taken as it is)."""
    if path[0] in ("severity", "runbooks"):
        return len(path) == 2
    return _key_type(path) is str


def _key_type(path: tuple) -> type | None:
    """The type of the key at ``path``, or None when there is no such key."""
    tables = {**SECTIONS, "teams": TeamsConfig, "confirm": ConfirmConfig}
    if len(path) == 2 and path[0] in tables:
        cls = tables[path[0]]
    elif len(path) == 4 and path[:2] == ("teams", "destinations"):
        cls = TeamsDestinationConfig
    elif len(path) == 3 and path[:2] == ("teams", "bot"):
        cls = TeamsBotConfig
    else:
        return None
    return next((f.type for f in dataclasses.fields(cls) if "expect" in f.metadata
                 and (f.metadata["key"] or f.name) == path[-1]), None)


def _refuse_unknown_variables(names: list[str], data: dict) -> None:
    """A VOISO_ variable that is no setting is a typo, unless the bot reads it for another
    purpose: the demo's, and the Teams webhook URLs that webhook_url_env names."""
    destinations = data.get("teams", {}).get("destinations", {}) \
        if isinstance(data.get("teams"), dict) else {}
    webhooks = {item.get("webhook_url_env") for item in destinations.values()
                if isinstance(item, dict)} if isinstance(destinations, dict) else set()
    for name in names:
        if name in OTHER_VARIABLES or name in webhooks:
            continue
        guess = _meant(name)
        raise ConfigError(f"{name}: unknown variable; a setting is VOISO_<SECTION>__<KEY> "
                          "with two underscores (e.g. VOISO_SQS__QUEUE_URL), and no "
                          "teams.destinations.<name>.webhook_url_env names it"
                          + (f"; did you mean {guess}?" if guess else ""))


def _meant(name: str) -> str | None:
    """The setting a variable with one underscore too few likely meant."""
    rest = name[len(config_env.PREFIX):].lower()
    for section in SECTIONS | {"teams": TeamsConfig}:
        key = rest.removeprefix(section + "_")
        if key != rest and _key_type((section, key)) is not None:
            return config_env.variable_for((section, key))
    return None


def from_dict(data: dict, *, base_dir: Path = Path("."), source: str = "config",
              origins: Origins | None = None) -> Config:
    """Validate a parsed TOML document (also used by tests and the demo); errors name
    ``source``, or where ``origins`` says each value came from."""
    origins = origins or Origins(source)
    for key in data:
        if key not in SECTIONS and key not in SPECIAL_SECTIONS:
            raise ConfigError(f"{origins.at(key)}: unknown section [{key}]; expected one of "
                              + ", ".join(f"[{name}]" for name in (*SECTIONS, *SPECIAL_SECTIONS)))
    if "sqs" not in data:
        _missing(origins, ("sqs", "queue_url"), _expect(SqsConfig, "queue_url"))
    sections = {name: _section(cls, data.get(name, {}), (name,), origins)
                for name, cls in SECTIONS.items()}
    teams = _teams(data.get("teams", {}), origins)
    config = Config(**sections, severity=_severities(data.get("severity", {}), origins),
                    routes=_routes(data.get("routes", []), origins, teams), teams=teams,
                    confirm=_confirm(data.get("confirm", {}), origins, teams),
                    runbooks=_runbooks(data.get("runbooks", {}), origins), base_dir=base_dir)
    for where, path, key in (("slack", config.templates_path, config.slack.templates_dir),
                             ("teams", config.teams_templates_path, config.teams.templates_dir)):
        if path and not path.is_dir():
            raise ConfigError(f"{origins.at(where, 'templates_dir')}: expected an existing "
                              f"directory, got {_show(key)} ({path})")
    if config.sqs.backoff_max_seconds < config.sqs.backoff_initial_seconds:
        raise ConfigError(_backoff_error(config.sqs, origins))
    _check_digest(config, origins)
    return dataclasses.replace(config, sqs=_resolve_queue(config.sqs, origins))


def _check_digest(config: Config, origins: Origins) -> None:
    """The digest's channel must be one this run can reach."""
    channel, where = config.digest.channel, origins.at("digest", "channel")
    if channel.startswith(TEAMS_PREFIX):
        _known_destination(config.teams, channel.removeprefix(TEAMS_PREFIX), where)
    if _bot_channel(channel) and not config.teams.bot.enabled:
        raise ConfigError(f"{where}: the Teams bot is off; set [teams.bot] enabled = true, "
                          "or name a Slack channel")


def _backoff_error(sqs: SqsConfig, origins: Origins) -> str:
    """The initial backoff is over the longest: blame the one the environment set, if only
    one of the two came from it, else the longest."""
    initial, longest = ("sqs", "backoff_initial_seconds"), ("sqs", "backoff_max_seconds")
    if origins.variable_of(initial) and not origins.variable_of(longest):
        return (f"{origins.at(*initial)}: expected at most sqs.backoff_max_seconds "
                f"({sqs.backoff_max_seconds}), got {sqs.backoff_initial_seconds}")
    return (f"{origins.at(*longest)}: expected at least sqs.backoff_initial_seconds "
            f"({sqs.backoff_initial_seconds})")


def _missing(origins: Origins, path: tuple, expect: str):
    """A required key is missing: say where it could be set."""
    where = origins.at(*path)
    hint = "" if origins.variable_of(path) else f"; or set {config_env.variable_for(path)}"
    raise ConfigError(f"{where}: missing; expected {expect}{hint}")


def _section(cls: type, table: Any, path: tuple, origins: Origins):
    if not isinstance(table, dict):
        raise ConfigError(f"{origins.at(*path)}: expected a table [{config_env.key_text(path)}], "
                          f"got {_show(table)}")
    fields = {f.metadata["key"] or f.name: f for f in dataclasses.fields(cls)
              if "expect" in f.metadata}  # others (teams.destinations) are read apart
    for key in table:
        if key not in fields:
            raise ConfigError(f"{origins.at(*path, key)}: unknown key; expected one of "
                              + ", ".join(fields))
    values = {}
    for key, spec in fields.items():
        if key in table:
            values[spec.name] = _value(spec, table[key], origins.at(*path, key))
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            _missing(origins, (*path, key), spec.metadata["expect"])
    return cls(**values)


def _severities(table: Any, origins: Origins) -> dict[str, str]:
    return _kind_table("severity", table, origins, lambda level: level in SEVERITIES,
                       f"one of {', '.join(SEVERITIES)}")


def _runbooks(table: Any, origins: Origins) -> dict[str, str]:
    """[runbooks]: kind -> the https URL of the admin's runbook, linked from its alerts."""
    return _kind_table("runbooks", table, origins, _runbook_url,
                       'an https URL such as "https://wiki.example.com/runbooks/unauthorized-ip" '
                       "(no spaces, quotes, <, > or |)")


def _runbook_url(url: Any) -> bool:
    return isinstance(url, str) and len(url) <= MAX_RUNBOOK_URL \
        and bool(_RUNBOOK_URL.match(url)) and url.isprintable()


def _kind_table(section: str, table: Any, origins: Origins, valid: Callable[[Any], bool],
                expect: str) -> dict[str, Any]:
    """A table keyed by event kind ([severity], [runbooks]): each key a kind written
    type/event, each value ``valid``; an error names the key and says what was expected."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origins.at(section)}: expected a table [{section}], "
                          f"got {_show(table)}")
    for kind, value in table.items():
        if not _KIND.match(kind):
            raise ConfigError(f"{origins.at(section, kind)}: unknown key; expected a kind "
                              'written type/event, e.g. "app_login/unauthorized_ip"')
        if not valid(value):
            raise ConfigError(f"{origins.at(section, kind)}: expected {expect}, "
                              f"got {_show(value)}")
    return dict(table)


def _routes(items: Any, origins: Origins, teams: TeamsConfig) -> tuple[RouteConfig, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{origins.at('routes')}: expected [[routes]] tables, "
                          f"got {_show(items)}")
    routes = tuple(_section(RouteConfig, item, ("routes", i), origins)
                   for i, item in enumerate(items))
    for i, route in enumerate(routes):
        if not route.channel and not route.teams and not route.teams_bot and not route.mute:
            raise ConfigError(f"{origins.at('routes', i, 'channel')}: missing; expected a "
                              "Slack channel ID such as C0123ABCD, teams = [\"<destination>\"], "
                              "teams_bot = [\"<name>\"], or mute = true")
        if route.teams_bot and not teams.bot.enabled:
            raise ConfigError(f"{origins.at('routes', i, 'teams_bot')}: the Teams bot is off; "
                              "set [teams.bot] enabled = true, or remove teams_bot")
        for name in route.teams:
            _known_destination(teams, name, origins.at("routes", i, "teams"))
    return routes


def _teams(table: Any, origins: Origins) -> TeamsConfig:
    """[teams] and its [teams.destinations.<name>] tables."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origins.at('teams')}: expected a table [teams], got {_show(table)}")
    plain = {key: value for key, value in table.items() if key not in ("destinations", "bot")}
    if unknown := [key for key in plain if key not in _field_keys(TeamsConfig)]:
        raise ConfigError(f"{origins.at('teams', unknown[0])}: unknown key; expected one of "
                          + ", ".join([*_field_keys(TeamsConfig), "destinations", "bot"]))
    found = table.get("destinations", {})
    if not isinstance(found, dict):
        raise ConfigError(f"{origins.at('teams', 'destinations')}: expected tables "
                          f"[teams.destinations.<name>], got {_show(found)}")
    destinations = {}
    for name, item in found.items():
        where = ("teams", "destinations", name)
        if not _TEAMS_NAME.match(name):
            raise ConfigError(f"{origins.at(*where)}: expected a name of lower-case letters, "
                              "digits, - and _ (at most 40)")
        if isinstance(item, dict) and "webhook_url" in item:
            raise ConfigError(f"{origins.at(*where, 'webhook_url')}: the webhook URL is a "
                              "secret and never goes in config.toml: put it in an environment "
                              "variable and name that with webhook_url_env")
        destinations[name] = _section(TeamsDestinationConfig, item, where, origins)
    teams = dataclasses.replace(_section(TeamsConfig, plain, ("teams",), origins),
                                destinations=destinations,
                                bot=_section(TeamsBotConfig, table.get("bot", {}),
                                             ("teams", "bot"), origins))
    if teams.bot.default_conversation and not teams.bot.enabled:
        raise ConfigError(f"{origins.at('teams', 'bot', 'default_conversation')}: the Teams "
                          "bot is off; set [teams.bot] enabled = true, or leave it empty")
    if teams.default_destination:
        _known_destination(teams, teams.default_destination,
                           origins.at("teams", "default_destination"))
    return teams


def _confirm(table: Any, origins: Origins, teams: TeamsConfig) -> ConfirmConfig:
    """[confirm] and its [confirm.aliases] table (Voiso's address = the Slack account's)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{origins.at('confirm')}: expected a table [confirm], "
                          f"got {_show(table)}")
    plain = {key: value for key, value in table.items() if key != "aliases"}
    aliases = table.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ConfigError(f"{origins.at('confirm', 'aliases')}: expected a table "
                          f"[confirm.aliases], got {_show(aliases)}")
    for voiso, slack in aliases.items():
        if not _EMAIL.match(voiso) or not isinstance(slack, str) or not _EMAIL.match(slack):
            raise ConfigError(f"{origins.at('confirm', 'aliases', voiso)}: expected "
                              '"voiso@address" = "slack@address", got '
                              f"{_show(voiso)} = {_show(slack)}")
    confirm = _section(ConfirmConfig, plain, ("confirm",), origins)
    if confirm.enabled and "teams" in confirm.ask_in and not teams.bot.enabled:
        raise ConfigError(f"{origins.at('confirm', 'ask_in')}: \"teams\" needs the Teams bot, "
                          "which is off; set [teams.bot] enabled = true, or remove \"teams\"")
    if _bot_channel(confirm.escalation_channel) and not teams.bot.enabled:
        raise ConfigError(f"{origins.at('confirm', 'escalation_channel')}: the Teams bot is "
                          "off; set [teams.bot] enabled = true, or name a Slack channel")
    return dataclasses.replace(confirm, aliases={k.lower(): v.lower()
                                                 for k, v in aliases.items()})


def _field_keys(cls: type) -> list[str]:
    return [f.metadata["key"] or f.name for f in dataclasses.fields(cls) if "expect" in f.metadata]


def _known_destination(teams: TeamsConfig, name: str, where: str) -> None:
    if name not in teams.destinations:
        known = ", ".join(teams.destinations) or "none is defined"
        raise ConfigError(f"{where}: unknown Teams destination {name!r}; expected a name "
                          f"from [teams.destinations] ({known})")


def _value(spec: dataclasses.Field, value: Any, where: str):
    kind = spec.type
    if kind == Match:
        return _match_value(spec, value, where)
    ok_type = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok_type = float(value), True
    if not ok_type or not spec.metadata["check"](value):
        raise ConfigError(f"{where}: expected {spec.metadata['expect']}, got {_show(value)}")
    return value.upper() if spec.name == "level" else value


def _match_value(spec: dataclasses.Field, value: Any, where: str) -> Match:
    values = (value,) if isinstance(value, str) else value
    if not isinstance(values, list | tuple) \
            or not all(isinstance(v, str) and v for v in values) \
            or not spec.metadata["check"](tuple(values)):
        raise ConfigError(f"{where}: expected {spec.metadata['expect']}, got {_show(value)}")
    return tuple(values)


def _resolve_queue(sqs: SqsConfig, origins: Origins) -> SqsConfig:
    """Check the queue URL and take the region from it unless one is set.

    No environment here: when neither names a region, sqs.region_of resolves it."""
    where = origins.at("sqs", "queue_url")
    if sqs.queue_url.endswith(".fifo"):
        raise ConfigError(f"{where}: {sqs.queue_url!r} is a FIFO queue; Voiso sends no "
                          "MessageGroupId, so use a standard queue")
    match = _AWS_QUEUE_URL.match(sqs.queue_url)
    if match:
        url_region = match["region"] or match["legacy"] or "us-east-1"
    elif sqs.endpoint_url and urlsplit(sqs.queue_url).scheme in ("http", "https") \
            and _ANY_QUEUE_PATH.match(urlsplit(sqs.queue_url).path):
        url_region = ""
    else:
        raise ConfigError(f"{where}: expected an SQS queue URL like "
                          "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso-security, "
                          f"got {_show(sqs.queue_url)}")
    if sqs.region and url_region and sqs.region != url_region and not sqs.endpoint_url:
        raise ConfigError(f"{origins.at('sqs', 'region')}: {sqs.region!r} does not match the "
                          f"queue URL's region {url_region!r}; remove sqs.region or set it to "
                          f"{url_region!r}")
    region_from = "sqs.region" if sqs.region else "the queue URL" if url_region else ""
    return dataclasses.replace(sqs, region=sqs.region or url_region, region_from=region_from)


def _expect(cls: type, name: str) -> str:
    return next(f.metadata["expect"] for f in dataclasses.fields(cls) if f.name == name)


def _show(value: Any) -> str:
    kind = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{text[:60]}… ({kind})" if len(text) > 60 else f"{text} ({kind})"
