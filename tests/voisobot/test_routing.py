"""Severity defaults and overrides; routes: first match, continue, mute, default channel."""

import json

import pytest

from voisobot import config, events, samples
from voisobot.routing import DEFAULT_SEVERITY, destinations, group_key, severity_of, storm_key

QUEUE = {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"}


def event(kind="app_login/unauthorized_ip", **changes):
    body = samples.example(kind)
    body["params"].update(changes.pop("params", {}))
    body.update(changes)
    return events.parse(json.dumps(body).encode())


def cfg(routes=(), default_channel="", severity=None):
    return config.from_dict({"sqs": QUEUE, "routes": list(routes), "severity": severity or {},
                             "slack": {"default_channel": default_channel}})


def test_every_documented_kind_has_a_default_severity():
    assert set(DEFAULT_SEVERITY) == set(samples.EXAMPLES)


@pytest.mark.parametrize("kind, severity", [
    ("app_login/successful_login", "info"), ("app_login/unauthorized_ip", "high"),
    ("app_login/deleted_user", "high"), ("allowed_ip/ip_added", "high"),
    ("allowed_ip/ip_removed", "high"), ("allowed_ip/ip_changed", "high"),
    ("user/privileges_updated", "critical"),  # the vendor's example goes agent -> admin
])
def test_defaults_a_security_team_would_sign_off(kind, severity):
    assert severity_of(event(kind), {}) == severity


def test_privilege_change_below_admin_is_medium():
    assert severity_of(event("user/privileges_updated", params={"to": "supervisor"}), {}) == \
        "medium"


def test_unknown_kind_is_medium_and_overrides_win():
    unknown = event(type="app_login", event="mfa_failed")
    assert severity_of(unknown, {}) == "medium"
    assert severity_of(unknown, {"app_login/mfa_failed": "critical"}) == "critical"
    assert severity_of(event("user/privileges_updated"), {"user/privileges_updated": "low"}) \
        == "low"


def where(found) -> list[tuple[str, int | None]]:
    return [(d.channel, d.route) for d in found]


def test_first_matching_route_wins():
    routes = [{"event": "unauthorized_ip", "channel": "C0000001"},
              {"type": "app_login", "channel": "C0000002"}]
    assert where(destinations(event(), "high", cfg(routes))) == [("C0000001", 0)]


def test_continue_adds_the_next_matching_routes():
    routes = [{"event": ["deleted_user", "unauthorized_ip"], "channel": "C0000001",
               "continue": True},
              {"callcenter": "other", "channel": "C0000002"},
              {"min_severity": "high", "channel": "C0000003"}]
    assert where(destinations(event(), "high", cfg(routes))) == [
        ("C0000001", 0), ("C0000003", 2)]


def test_min_severity_and_access_group_filter():
    routes = [{"min_severity": "critical", "channel": "C0000001"},
              {"access_group": "admin", "channel": "C0000002"}]
    assert where(destinations(event(), "high", cfg(routes, default_channel="C0000009"))) == [
        ("C0000009", None)]


def test_a_mute_route_means_no_alert_and_no_default():
    routes = [{"event": "successful_login", "mute": True}]
    login = event("app_login/successful_login")
    assert destinations(login, "info", cfg(routes, default_channel="C0000009")) == []


def test_no_route_and_no_default_channel_means_stored_only():
    assert destinations(event(), "high", cfg()) == []


def test_a_route_carries_its_grouping_and_the_default_channel_the_slack_defaults():
    routes = [{"event": "unauthorized_ip", "channel": "C0000001", "group_by": ["type", "ip"],
               "group_window_minutes": 3}]
    (routed,) = destinations(event(), "high", cfg(routes))
    (default,) = destinations(event("user/user_added"), "medium", cfg(routes, "C0000009"))
    assert (routed.group_by, routed.group_window_minutes) == (("type", "ip"), 3)
    assert (default.group_by, default.group_window_minutes) == (("type", "event", "user"), 10)


def test_group_keys_lead_with_the_kind():
    e = event(params={"user": "a@b.c", "ip": "1.2.3.4"})
    assert group_key(e, ("type", "event", "user")) == "app_login/unauthorized_ip|user=a@b.c"
    assert group_key(e, ("ip",)) == "app_login/unauthorized_ip|ip=1.2.3.4"
    assert storm_key(e) == "app_login/unauthorized_ip|*"
