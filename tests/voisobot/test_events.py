"""Parsing: every documented kind, unknown kinds, and a table of malformed bodies."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voisobot import events, samples
from voisobot.errors import MalformedEvent

VENDOR_PAGE = Path(__file__).resolve().parents[3] / "shared" / "voiso-security-log-streaming.txt"
VENDOR_TIME = datetime(2020, 10, 10, 10, 11, 12, 120000, tzinfo=UTC)


def body(**fields) -> bytes:
    document = samples.example("app_login/unauthorized_ip")
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def with_params(kind: str, **params) -> bytes:
    document = samples.example(kind)
    document["params"].update(params)
    document["params"] = {k: v for k, v in document["params"].items() if v is not ...}
    return json.dumps(document).encode()


EXPECTED_COLUMNS = {
    "app_login/incorrect_password": dict(user="foo@bar.com", access_group="admin", count=4),
    "app_login/deleted_user": dict(user="foo@bar.com", access_group="supervisor"),
    "app_login/successful_login": dict(user="foo@bar.com", access_group="supervisor"),
    "app_login/unauthorized_ip": dict(user="foo@bar.com", access_group="supervisor",
                                      ip="8.8.8.8"),
    "app_login/ip_changed": dict(user="admin@voiso.com", access_group="supervisor",
                                 from_value="8.8.8.8", to_value="4.4.4.2"),
    "user/user_added": dict(who="admin@voiso.com", user="foo@bar.com",
                            access_group="supervisor"),
    "user/user_deleted": dict(who="admin@voiso.com", user="foo@bar.com", access_group="agent"),
    "user/password_changed": dict(who="admin@voiso.com", user="foo@bar.com",
                                  access_group="admin"),
    "user/privileges_updated": dict(who="admin@voiso.com", user="foo@bar.com",
                                    from_value="agent", to_value="admin"),
    "allowed_ip/ip_added": dict(who="admin@voiso.com", access_group="supervisor",
                                ip="8.8.8.8/32"),
    "allowed_ip/ip_removed": dict(who="admin@voiso.com", access_group="supervisor",
                                  ip="8.8.8.8/32"),
    "allowed_ip/ip_changed": dict(who="admin@voiso.com", access_group="supervisor",
                                  from_value="8.8.8.8/32", to_value="8.8.4.4/32"),
}


@pytest.mark.parametrize("kind", sorted(samples.EXAMPLES))
def test_vendor_example_parses_into_its_columns(kind):
    event = events.parse(json.dumps(samples.EXAMPLES[kind]).encode())
    assert event.kind == kind and event.documented
    assert event.time == VENDOR_TIME
    assert event.callcenter == "acme"
    columns = {name: getattr(event, name) for name in
               ("user", "who", "access_group", "ip", "from_value", "to_value", "count")}
    assert columns == {name: None for name in columns} | EXPECTED_COLUMNS[kind]


def test_every_kind_of_the_vendor_page_is_covered():
    assert set(EXPECTED_COLUMNS) == set(samples.EXAMPLES) == {
        f"{t}/{e}" for t, e in events.KIND_PARAMS}
    assert len(samples.EXAMPLES) == 12


@pytest.mark.skipif(not VENDOR_PAGE.exists(),
                    reason="the vendor page lives in the steering repo's shared/, beside CI's "
                           "checkout but not in a user's clone")
def test_samples_match_the_vendor_page_exactly():
    blocks = re.findall(r"^\{\n.*?\n\}$", VENDOR_PAGE.read_text(), flags=re.S | re.M)
    on_page = {f"{b['type']}/{b['event']}": b for b in map(json.loads, blocks)}
    assert on_page == samples.EXAMPLES


def test_ip_changed_is_told_apart_by_type():
    login = events.parse(json.dumps(samples.EXAMPLES["app_login/ip_changed"]).encode())
    allow = events.parse(json.dumps(samples.EXAMPLES["allowed_ip/ip_changed"]).encode())
    assert (login.kind, allow.kind) == ("app_login/ip_changed", "allowed_ip/ip_changed")
    with pytest.raises(MalformedEvent, match=r"params.from is not an IP address"):
        events.parse(with_params("app_login/ip_changed", **{"from": "8.8.8.8/32"}))


@pytest.mark.parametrize("text, expected", [
    ("2020-10-10T10:11:12Z", datetime(2020, 10, 10, 10, 11, 12, tzinfo=UTC)),
    ("2020-10-10T10:11:12.1Z", datetime(2020, 10, 10, 10, 11, 12, 100000, tzinfo=UTC)),
    ("2020-10-10T10:11:12.123456Z", datetime(2020, 10, 10, 10, 11, 12, 123456, tzinfo=UTC)),
    ("2020-10-10T10:11:12.123456789Z", datetime(2020, 10, 10, 10, 11, 12, 123456, tzinfo=UTC)),
    ("2020-10-10T12:11:12.5+02:00", datetime(2020, 10, 10, 10, 11, 12, 500000, tzinfo=UTC)),
    ("2020-10-10T10:11:12-0130", datetime(2020, 10, 10, 11, 41, 12, tzinfo=UTC)),
    ("2020-10-10 10:11:12", datetime(2020, 10, 10, 10, 11, 12, tzinfo=UTC)),
])
def test_timestamps_of_any_precision_become_utc(text, expected):
    assert events.parse_timestamp(text) == expected


def test_count_given_as_a_number_is_accepted():
    event = events.parse(with_params("app_login/incorrect_password", count=7))
    assert event.count == 7


def test_unknown_kind_is_valid_and_keeps_what_it_can():
    raw = json.dumps({"timestamp": "2024-01-02T03:04:05.6Z", "type": "app_login",
                      "event": "mfa_failed", "callcenter": "acme",
                      "params": {"user": "x@y.z", "ip": "2001:0db8::0001", "factor": "totp"}})
    event = events.parse(raw.encode())
    assert not event.documented
    assert (event.kind, event.user, event.ip) == ("app_login/mfa_failed", "x@y.z", "2001:db8::1")
    assert event.params["factor"] == "totp"


def test_unknown_kind_without_params_is_valid():
    event = events.parse(b'{"timestamp":"2024-01-02T03:04:05Z","type":"audit","event":"x"}')
    assert event.params == {} and event.callcenter is None


def test_hostile_strings_are_kept_verbatim():
    name = "<!channel> <https://evil.example|Voiso login> {{7*7}} \u202e\x00\n"
    event = events.parse(with_params("app_login/successful_login", user=name))
    assert event.user == name


def test_unpaired_surrogate_is_shown_as_replacement_not_rejected():
    raw = with_params("app_login/incorrect_password", user="x").replace(
        b'"user": "x"', b'"user": "ab\\ud800cd"')
    event = events.parse(raw)
    assert event.user == "ab\ufffdcd"
    event.canonical.encode("utf-8")  # storable


def test_same_content_in_another_key_order_has_the_same_fingerprint():
    document = samples.EXAMPLES["user/user_added"]
    reordered = dict(reversed(list(document.items())))
    assert (events.parse(json.dumps(document).encode()).fingerprint
            == events.parse(json.dumps(reordered).encode()).fingerprint)


MALFORMED = [
    # (case id, raw body, a fragment of the reason)
    ("not_utf8", b'{"timestamp": "\xff"}', "not valid UTF-8"),
    ("latin1_body", "{\"user\": \"jos\xe9\"}".encode("latin-1"), "not valid UTF-8"),
    ("empty_body", b"", "not JSON"),
    ("not_json", b"hello", "not JSON"),
    ("truncated_json", body()[:-5], "not JSON"),
    ("trailing_garbage", body() + b" x", "not JSON"),
    ("nan_constant", b'{"timestamp": NaN}', "NaN is not a JSON value"),
    ("huge_number", b'{"x": 1e400}', "out of range"),
    ("too_many_digits", b'{"x": ' + b"9" * 5000 + b"}", "not usable JSON"),
    ("nested_too_deep", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("array", b"[1, 2]", "must be a JSON object, got an array"),
    ("string", b'"event"', "must be a JSON object, got a string"),
    ("null", b"null", "must be a JSON object, got null"),
    ("number", b"42", "must be a JSON object, got a number"),
    ("duplicate_key", b'{"type": "user", "type": "app_login"}', 'key "type" appears twice'),
    ("no_timestamp", body(timestamp=...), "timestamp is missing"),
    ("no_type", body(type=...), "type is missing"),
    ("no_event", body(event=...), "event is missing"),
    ("timestamp_number", body(timestamp=1602324672), "timestamp must be a string, got a number"),
    ("timestamp_null", body(timestamp=None), "timestamp must be a string, got null"),
    ("type_array", body(type=["app_login"]), "type must be a string, got an array"),
    ("event_object", body(event={}), "event must be a string, got an object"),
    ("type_empty", body(type=""), "type is empty"),
    ("timestamp_words", body(timestamp="yesterday"), "timestamp is not ISO 8601"),
    ("timestamp_date_only", body(timestamp="2020-10-10"), "timestamp is not ISO 8601"),
    ("timestamp_month_13", body(timestamp="2020-13-10T10:11:12Z"), "not a real moment"),
    ("timestamp_hour_25", body(timestamp="2020-10-10T25:11:12Z"), "not a real moment"),
    ("timestamp_offset_99", body(timestamp="2020-10-10T10:11:12+99:00"), "not a real moment"),
    ("callcenter_number", body(callcenter=7), "callcenter must be a string"),
    ("params_string", body(params="user=foo"), "params must be an object, got a string"),
    ("params_array", body(params=[]), "params must be an object, got an array"),
    ("params_null", body(params=None), "params must be an object, got null"),
    ("missing_user", with_params("app_login/successful_login", user=...),
     "params.user is missing (required for app_login/successful_login)"),
    ("missing_ip", with_params("app_login/unauthorized_ip", ip=...), "params.ip is missing"),
    ("missing_who", with_params("user/user_deleted", who=...), "params.who is missing"),
    ("missing_to", with_params("user/privileges_updated", to=...), "params.to is missing"),
    ("missing_count", with_params("app_login/incorrect_password", count=...),
     "params.count is missing"),
    ("user_number", with_params("app_login/deleted_user", user=12), "params.user must be a string"),
    ("count_words", with_params("app_login/incorrect_password", count="four"),
     "params.count must be a whole number"),
    ("count_negative", with_params("app_login/incorrect_password", count=-1),
     "params.count must be a whole number"),
    ("count_boolean", with_params("app_login/incorrect_password", count=True),
     "params.count must be a whole number"),
    ("ip_invalid", with_params("app_login/unauthorized_ip", ip="8.8.8.256"),
     "params.ip is not an IP address"),
    ("ip_hostname", with_params("app_login/unauthorized_ip", ip="evil.example"),
     "params.ip is not an IP address"),
    ("ip_number", with_params("app_login/unauthorized_ip", ip=134744072),
     "params.ip must be a string"),
    ("login_from_invalid", with_params("app_login/ip_changed", to="4.4.4"),
     "params.to is not an IP address"),
    ("cidr_invalid", with_params("allowed_ip/ip_added", ip="8.8.8.8/33"),
     "params.ip is not an IP address or CIDR range"),
    ("cidr_words", with_params("allowed_ip/ip_changed", **{"from": "office"}),
     "params.from is not an IP address or CIDR range"),
    ("too_big", body(callcenter="x" * (256 * 1024)), "over the 262144-byte limit"),
]


def test_the_malformed_table_has_at_least_30_cases():
    assert len(MALFORMED) >= 30
    assert len({case for case, _, _ in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize("raw, reason", [(raw, reason) for _, raw, reason in MALFORMED],
                         ids=[case for case, _, _ in MALFORMED])
def test_malformed_body_is_refused_with_its_reason(raw, reason):
    with pytest.raises(MalformedEvent) as refused:
        events.parse(raw)
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20,
).map(lambda value: json.dumps(value).encode()))
def test_any_input_is_an_event_or_a_reason_never_a_crash(raw):
    try:
        event = events.parse(raw)
    except MalformedEvent as refused:
        assert str(refused)
    else:
        event.canonical.encode("utf-8")


@settings(max_examples=200, deadline=None)
@given(user=st.text(), ip=st.ip_addresses().map(str))
def test_any_typed_user_name_is_kept_for_a_documented_kind(user, ip):
    event = events.parse(with_params("app_login/unauthorized_ip", user=user, ip=ip))
    assert event.user == events._LONE_SURROGATE.sub("\ufffd", user)
    assert event.ip == ip
