"""Kinds named in config.toml that can never match get a warning, with a "did you mean"."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voisobot import config, config_kinds, events

QUEUE = {"queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/voiso"}
DOCUMENTED = sorted(f"{t}/{e}" for t, e in events.KIND_PARAMS)
TYPES = sorted({t for t, _ in events.KIND_PARAMS})
EVENTS = sorted({e for _, e in events.KIND_PARAMS})


def warnings_for(severity=None, routes=(), seen=()):
    cfg = config.from_dict({"sqs": QUEUE, "severity": severity or {},
                            "routes": [{"channel": "C0SECURITY", **r} for r in routes]})
    return config_kinds.warnings(cfg, seen)


@pytest.mark.parametrize(("severity", "routes", "says"), [
    pytest.param({"app_login/unauthorised_ip": "high"}, [],
                 '[severity] "app_login/unauthorised_ip" is neither a documented kind nor one '
                 'seen in the store, so it never matches; did you mean '
                 '"app_login/unauthorized_ip"?', id="british-spelling"),
    pytest.param({"user/privilege_updated": "critical"}, [],
                 'did you mean "user/privileges_updated"?', id="singular"),
    pytest.param({}, [{"type": "app-login"}],
                 'routes[0].type "app-login" is neither a documented type nor one seen in the '
                 'store, so it never matches; did you mean "app_login"?', id="type-dash"),
    pytest.param({}, [{"event": ["successful_login", "unauthorised_ip"]}],
                 'routes[0].event "unauthorised_ip" is neither a documented event nor one seen '
                 'in the store, so it never matches; did you mean "unauthorized_ip"?',
                 id="one-of-a-list"),
    pytest.param({}, [{"type": "allowed_ip", "event": "successful_login"}],
                 'routes[0] matches no known kind: no type in "allowed_ip" has an event in '
                 '"successful_login"', id="known-parts-no-kind"),
    pytest.param({"zzzz/qqqq": "low"}, [],
                 'the known ones: "allowed_ip/ip_added"', id="nothing-close"),
])
def test_names_that_never_match_are_warned_about(severity, routes, says):
    (warning,) = warnings_for(severity, routes)
    assert says in warning


@pytest.mark.parametrize(("severity", "routes"), [
    pytest.param({}, [{}], id="all-stars"),
    pytest.param({"app_login/unauthorized_ip": "critical"}, [{"event": "ip_changed"}],
                 id="documented"),
    pytest.param({}, [{"type": ["user", "allowed_ip"], "event": ["ip_added", "user_added"]}],
                 id="some-pair-is-a-kind"),
    pytest.param({}, [{"type": "*", "event": "ip_changed"}], id="star-type"),
])
def test_documented_names_and_stars_are_quiet(severity, routes):
    assert warnings_for(severity, routes) == []


def test_kinds_seen_in_the_store_are_known():
    seen = [("app_login", "mfa_failed")]
    routes = [{"type": "app_login", "event": "mfa_failed"}]
    assert len(warnings_for({"app_login/mfa_failed": "high"}, routes)) == 2
    assert warnings_for({"app_login/mfa_failed": "high"}, routes, seen) == []


KIND_TEXT = st.from_regex(r"[a-z_]{1,12}/[a-z_]{1,16}", fullmatch=True)


@settings(max_examples=200)
@given(kinds=st.lists(st.one_of(st.sampled_from(DOCUMENTED), KIND_TEXT), max_size=6,
                      unique=True))
def test_exactly_the_unknown_severity_kinds_are_warned_about(kinds):
    found = warnings_for({kind: "high" for kind in kinds})
    unknown = [kind for kind in kinds if kind not in DOCUMENTED]
    assert len(found) == len(unknown)
    assert all(f'"{kind}" is neither' in text for kind, text in zip(unknown, found, strict=True))


@settings(max_examples=200)
@given(types=st.lists(st.sampled_from(TYPES), min_size=1, max_size=3),
       names=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=3))
def test_a_route_of_documented_parts_warns_only_when_no_pair_is_a_kind(types, names):
    found = warnings_for(routes=[{"type": types, "event": names}])
    pairs = {(t, e) for t in types for e in names}
    assert (found != []) == (not pairs & set(events.KIND_PARAMS))
