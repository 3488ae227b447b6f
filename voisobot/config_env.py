"""Configuration from the environment: every key of config.toml as a VOISO_ variable, and
where each value came from, so that an error names the variable as well as the key.

The scheme, one rule for every key: ``VOISO_`` and the key's path in upper case, its parts
joined by two underscores (one underscore belongs to the names themselves):

- ``VOISO_SQS__QUEUE_URL`` is ``sqs.queue_url``;
- ``VOISO_TEAMS__DESTINATIONS__SECOPS__WEBHOOK_URL_ENV`` is
  ``teams.destinations.secops.webhook_url_env``;
- ``VOISO_SEVERITY__APP_LOGIN__UNAUTHORIZED_IP`` is ``severity."app_login/unauthorized_ip"``
  (a kind's slash is a part boundary too);
- ``VOISO_<SECTION>`` alone is the whole table, written as TOML (``{key = value, ...}``);
  ``VOISO_ROUTES`` is the [[routes]] array, a TOML array of inline tables, and routes are
  only ever set whole.

A variable replaces what the file has at its path (a whole table replaces the file's table).
A key whose value is a string takes the variable's text as it is, quotes included; any other
key's text is read as a TOML value (``20``, ``1.5``, ``true``, ``["type", "ip"]``), and text
that is not TOML is kept as text, so that the key's check refuses it naming the variable.
"""

import copy
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from voisobot.errors import ConfigError

PREFIX = "VOISO_"
SEPARATOR = "__"
KeyPath = tuple  # a key's path: ("sqs", "queue_url"), ("routes", 0, "channel"), ...


@dataclass(frozen=True)
class Setting:
    variable: str
    path: KeyPath
    text: str


@dataclass(frozen=True)
class Origins:
    """Where values came from: ``file`` (its name, as errors show it; None when no file was
    read), and the variable that set each path from the environment."""

    file: str | None = "config"
    variables: dict[KeyPath, str] = field(default_factory=dict)

    def at(self, *path) -> str:
        """How an error names the key at ``path``: ``VOISO_SQS__WAIT_TIME_SECONDS
        (sqs.wait_time_seconds)`` when a variable set it (or a table around it), else
        ``config.toml: sqs.wait_time_seconds``."""
        if (found := self.variable_of(path)) is not None:
            variable, shown = found
            return f"{variable} ({key_text(shown)})"
        return f"{self.file}: {key_text(path)}" if self.file else key_text(path)

    def variable_of(self, path: KeyPath) -> tuple[str, KeyPath] | None:
        """The variable that set ``path`` or a table around it, else one that set a key
        inside it (an unknown section), with the path to show; None: not the environment."""
        for length in range(len(path), 0, -1):
            if (variable := self.variables.get(path[:length])) is not None:
                return variable, path
        for below, variable in self.variables.items():
            if below[:len(path)] == path:
                return variable, below
        return None


def key_text(path: KeyPath) -> str:
    """A path as config.toml's errors write it: sqs.queue_url, routes[0].channel,
    severity."app_login/unauthorized_ip"."""
    if path[:1] in (("severity",), ("runbooks",)) and len(path) == 2:
        return f'{path[0]}."{path[1]}"'
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def variable_for(path: KeyPath) -> str:
    """The variable that sets a section's key, e.g. VOISO_SQS__QUEUE_URL."""
    parts = [str(part).replace("/", SEPARATOR) for part in path]
    return PREFIX + SEPARATOR.join(parts).upper()


def settings(environ: Mapping[str, str], sections: Iterable[str]
             ) -> tuple[list[Setting], list[str]]:
    """The VOISO_ variables that are settings, a whole table before the keys inside it, and
    the names of the other VOISO_ variables (the caller knows which of those it reads)."""
    found, others = [], []
    for name in sorted(environ):
        if not name.startswith(PREFIX):
            continue
        path = setting_path(name, sections)
        if path is None:
            others.append(name)
        else:
            found.append(Setting(name, path, environ[name]))
    return sorted(found, key=lambda setting: len(setting.path)), others


def setting_path(name: str, sections: Iterable[str]) -> KeyPath | None:
    """The key a variable sets, or None when it is not a setting (no two underscores, and
    no section of that name)."""
    parts = name[len(PREFIX):].lower().split(SEPARATOR)
    if len(parts) == 1 and parts[0] not in sections:
        return None
    if parts[0] in ("severity", "runbooks") and len(parts) > 1:  # keyed by kind
        return (parts[0], "/".join(parts[1:]))
    if parts[0] == "routes" and len(parts) > 1:
        raise ConfigError(f"{name}: routes are set whole: VOISO_ROUTES = a TOML array of "
                          'inline tables, e.g. [{channel = "C0123ABCD", min_severity = "high"}]')
    return tuple(parts)


def overlay(data: dict, found: list[Setting], is_text: Callable[[KeyPath], bool]
            ) -> tuple[dict, dict[KeyPath, str]]:
    """The file's document with the settings in place, and which variable set each path."""
    data = copy.deepcopy(data)
    variables = {}
    for setting in found:
        value = setting.text if is_text(setting.path) else toml_value(setting.text)
        _put(data, setting, value)
        variables[setting.path] = setting.variable
    return data, variables


def toml_value(text: str):
    """``text`` read as one TOML value, or as it is when it is not one."""
    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["value"] if parsed.keys() == {"value"} else text


def _put(data: dict, setting: Setting, value) -> None:
    table = data
    for depth, part in enumerate(setting.path[:-1], start=1):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{setting.variable} ({key_text(setting.path)}): "
                              f"{key_text(setting.path[:depth])} is not a table")
    table[setting.path[-1]] = value
