"""config.toml: read once, validated at load, every error naming its key.

Each section is a frozen dataclass; each field carries in its metadata what a
valid value looks like (``expect``) and a check. Secrets never live here: AWS
credentials come from boto3's default chain (environment, profile, instance role).
"""

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def option(default: Any = dataclasses.MISSING, *, expect: str, check=lambda v: True):
    """A config field: its default, a phrase saying what is expected, and a check."""
    return field(default=default, metadata={"expect": expect, "check": check})


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


SECTIONS: dict[str, type] = {"sqs": SqsConfig, "store": StoreConfig, "log": LogConfig}


@dataclass(frozen=True)
class Config:
    sqs: SqsConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    log: LogConfig = field(default_factory=LogConfig)
    base_dir: Path = Path(".")

    @property
    def store_path(self) -> Path:
        return self.base_dir / Path(self.store.path).expanduser()


def load(path: Path = DEFAULT_PATH) -> Config:
    """Read and validate a config file; raise ConfigError naming the key on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return from_dict(data, base_dir=Path(path).resolve().parent, source=str(path))


def from_dict(data: dict, *, base_dir: Path = Path("."), source: str = "config") -> Config:
    """Validate a parsed TOML document (also used by tests and the demo)."""
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{key}]; expected one of "
                              + ", ".join(f"[{name}]" for name in SECTIONS))
    if "sqs" not in data:
        raise ConfigError(f"{source}: sqs.queue_url: missing; expected "
                          + _expect(SqsConfig, "queue_url"))
    sections = {name: _section(cls, data.get(name, {}), name, source)
                for name, cls in SECTIONS.items()}
    config = Config(**sections, base_dir=base_dir)
    if config.sqs.backoff_max_seconds < config.sqs.backoff_initial_seconds:
        raise ConfigError(f"{source}: sqs.backoff_max_seconds: expected at least "
                          f"sqs.backoff_initial_seconds ({config.sqs.backoff_initial_seconds})")
    return dataclasses.replace(config, sqs=_resolve_queue(config.sqs, source))


def _section(cls: type, table: Any, name: str, source: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {name}: expected a table [{name}], got {_show(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise ConfigError(f"{source}: {name}.{key}: unknown key; expected one of "
                              + ", ".join(fields))
    values = {}
    for key, spec in fields.items():
        if key in table:
            values[key] = _value(spec, table[key], f"{source}: {name}.{key}")
        elif spec.default is dataclasses.MISSING:
            expect = spec.metadata["expect"]
            raise ConfigError(f"{source}: {name}.{key}: missing; expected {expect}")
    return cls(**values)


def _value(spec: dataclasses.Field, value: Any, where: str):
    kind = spec.type
    ok_type = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok_type = float(value), True
    if not ok_type or not spec.metadata["check"](value):
        raise ConfigError(f"{where}: expected {spec.metadata['expect']}, got {_show(value)}")
    return value.upper() if spec.name == "level" else value


def _resolve_queue(sqs: SqsConfig, source: str) -> SqsConfig:
    """Check the queue URL and take the region from it unless one is set."""
    where = f"{source}: sqs.queue_url"
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
        raise ConfigError(f"{source}: sqs.region: {sqs.region!r} does not match the queue URL's "
                          f"region {url_region!r}; remove sqs.region or set it to {url_region!r}")
    region = sqs.region or url_region or "us-east-1"
    return dataclasses.replace(sqs, region=region)


def _expect(cls: type, name: str) -> str:
    return next(f.metadata["expect"] for f in dataclasses.fields(cls) if f.name == name)


def _show(value: Any) -> str:
    kind = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{text[:60]}… ({kind})" if len(text) > 60 else f"{text} ({kind})"
