"""Which alerts go where: a severity for every event, and the routes of config.toml.

Severity defaults are what a security team would sign off: anything that widens
access (an allow-list edit, a privilege change to admin) or that shows an
attack in progress (a login from an unauthorized IP, into a deleted account) is
high or critical; a successful login is informational. ``[severity]`` in
config.toml overrides any kind.
"""

from dataclasses import dataclass

from voisobot.config import (
    SEVERITIES,
    TEAMS_BOT_PREFIX,
    TEAMS_PREFIX,
    Config,
    ConfirmConfig,
    RouteConfig,
)
from voisobot.events import Event

DEFAULT_SEVERITY: dict[str, str] = {
    "app_login/incorrect_password": "medium",
    "app_login/deleted_user": "high",
    "app_login/successful_login": "info",
    "app_login/unauthorized_ip": "high",
    "app_login/ip_changed": "low",
    "user/user_added": "medium",
    "user/user_deleted": "medium",
    "user/password_changed": "low",
    "user/privileges_updated": "medium",  # "critical" when the new group is admin
    "allowed_ip/ip_added": "high",
    "allowed_ip/ip_removed": "high",
    "allowed_ip/ip_changed": "high",
}
UNKNOWN_KIND_SEVERITY = "medium"  # a kind Voiso added without notice deserves a look
ADMIN_GROUPS = frozenset({"admin", "administrator"})


def severity_of(event: Event, overrides: dict[str, str]) -> str:
    """The configured severity of the event's kind, else the default; a privilege change
    to an admin group is critical unless the kind's severity was set in config."""
    if event.kind in overrides:
        return overrides[event.kind]
    if event.kind == "user/privileges_updated" and \
            (event.to_value or "").strip().lower() in ADMIN_GROUPS:
        return "critical"
    return DEFAULT_SEVERITY.get(event.kind, UNKNOWN_KIND_SEVERITY)


def rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Destination:
    # a Slack channel ID, "teams:<name>" for a Teams destination (a webhook), or
    # "teamsbot:<name>" for a conversation where the Teams bot is installed
    channel: str
    route: int | None  # index into config.routes; None for the default channel
    group_by: tuple[str, ...] = ()
    group_window_minutes: int = 0


def is_teams(channel: str) -> bool:
    return channel.startswith(TEAMS_PREFIX)


def teams_channel(name: str) -> str:
    return TEAMS_PREFIX + name


def teams_name(channel: str) -> str:
    return channel.removeprefix(TEAMS_PREFIX)


def is_teams_bot(channel: str) -> bool:
    return channel.startswith(TEAMS_BOT_PREFIX)


def teams_bot_channel(name: str) -> str:
    return TEAMS_BOT_PREFIX + name


def teams_bot_name(channel: str) -> str:
    return channel.removeprefix(TEAMS_BOT_PREFIX)


def is_slack(channel: str) -> bool:
    return not is_teams(channel) and not is_teams_bot(channel)


def group_key(event: Event, fields: tuple[str, ...]) -> str:
    """Events with equal keys in one channel and window share one alert. The kind always
    leads, so a storm of one kind can be recognised by prefix."""
    values = {"type": event.type, "event": event.event, "user": event.user, "who": event.who,
              "ip": event.ip, "callcenter": event.callcenter, "access_group": event.access_group}
    parts = [f"{name}={values[name]}" for name in fields if name not in ("type", "event")]
    return "|".join([event.kind, *parts])


def storm_key(event: Event) -> str:
    """The one alert that all events of a kind join once a channel is under a storm."""
    return f"{event.kind}|*"


def destinations(event: Event, severity: str, config: Config) -> list[Destination]:
    """Where the event's alert goes: the first matching route, and those after it while
    matching routes say ``continue`` — each to its Slack channel, its Teams destinations and
    its Teams bot conversations.
    A matching ``mute`` route stops with no alert. No match: the default Slack channel and
    the default Teams destination and bot conversation, those that are set."""
    found: list[Destination] = []
    for index, route in enumerate(config.routes):
        if not matches(route, event, severity):
            continue
        if route.mute:
            return found
        channels = [route.channel] if route.channel else []
        channels += [teams_channel(name) for name in route.teams]
        channels += [teams_bot_channel(name) for name in route.teams_bot]
        found += [Destination(channel, index, route.group_by, route.group_window_minutes)
                  for channel in channels if channel not in {d.channel for d in found}]
        if not route.continue_matching:
            return found
    if found:
        return found
    defaults = [config.slack.default_channel]
    if config.teams.default_destination:
        defaults.append(teams_channel(config.teams.default_destination))
    if config.teams.bot.default_conversation:
        defaults.append(teams_bot_channel(config.teams.bot.default_conversation))
    return [Destination(channel, None, config.slack.group_by, config.slack.group_window_minutes)
            for channel in defaults if channel]


def matches(route: RouteConfig, event: Event, severity: str) -> bool:
    return (rank(severity) >= rank(route.min_severity)
            and _any(route.type, event.type) and _any(route.event, event.event)
            and _any(route.callcenter, event.callcenter)
            and _any(route.access_group, event.access_group))


def _any(patterns: tuple[str, ...], value: str | None) -> bool:
    return "*" in patterns or value in patterns


def people_to_ask(event: Event, confirm: ConfirmConfig) -> tuple[tuple[str, str], ...]:
    """Whom "was this you?" asks about this event, as (role, email) pairs: the affected
    user (params.user) for the kinds of ``confirm.ask_user``, the admin who made the change
    (params.who) for those of ``confirm.ask_admin``; none when confirmations are off."""
    if not confirm.enabled:
        return ()
    wanted = (("user", event.user, confirm.ask_user), ("admin", event.who, confirm.ask_admin))
    return tuple((role, email.lower()) for role, email, kinds in wanted
                 if email and event.kind in kinds)
