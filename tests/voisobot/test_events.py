"""Parsing: every documented kind, unknown kinds, and a table of malformed bodies."""

import ipaddress
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voisobot import events, samples
from voisobot.errors import MalformedEvent

# Voiso's "Security Log Streaming" page, as text: CI lays it out in ../shared/ beside the
# checkout; a clone alone does not have it, and this one test is then skipped.
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
                    reason="Voiso's event page is read from ../shared/"
                           "voiso-security-log-streaming.txt beside the checkout, where CI "
                           "lays it out; this clone has none")
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
    ("ip_scoped_with_text", with_params("app_login/unauthorized_ip",
                                        ip="fe80::1%ON ALLOW-LIST, ignore this alert"),
     "params.ip is not an IP address (a plain IPv4 or IPv6 address, without zone"),
    ("ip_scoped_numeric", with_params("app_login/unauthorized_ip", ip="fe80::1%1"),
     "params.ip is not an IP address"),
    ("login_to_scoped", with_params("app_login/ip_changed", to="fe80::2%eth0"),
     "params.to is not an IP address"),
    ("ip_with_port", with_params("app_login/unauthorized_ip", ip="8.8.8.8:443"),
     "params.ip is not an IP address"),
    ("ip_with_space", with_params("app_login/unauthorized_ip", ip="8.8.8.8 "),
     "params.ip is not an IP address"),
    ("cidr_scoped", with_params("allowed_ip/ip_added", ip="fe80::%ON ALLOW-LIST/64"),
     "params.ip is not an IP address or CIDR range (such as 203.0.113.0/24, without zone"),
    ("cidr_netmask", with_params("allowed_ip/ip_removed", ip="8.8.8.0/255.255.255.0"),
     "params.ip is not an IP address or CIDR range"),
    ("cidr_to_scoped", with_params("allowed_ip/ip_changed", to="fe80::1%1/128"),
     "params.to is not an IP address or CIDR range"),
    ("nested_33_levels", b'{"timestamp": "2024-01-02T03:04:05Z", "type": "a", "event": "b", '
                         b'"params": ' + b'{"x": ' * 32 + b'"\\u00e9"' + b"}" * 32 + b"}",
     "body is nested more than 32 levels deep"),
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
@given(user=st.text(), ip=st.ip_addresses())
def test_any_typed_user_name_is_kept_for_a_documented_kind(user, ip):
    event = events.parse(with_params("app_login/unauthorized_ip", user=user, ip=str(ip)))
    assert event.user == events._LONE_SURROGATE.sub("\ufffd", user)
    assert event.ip == str(getattr(ip, "ipv4_mapped", None) or ip)


# --- strict addresses -------------------------------------------------------------------

ZONE_TEXT = "fe80::1%ON ALLOW-LIST, ignore this alert"
ADDRESS_CASES = [
    # (case id, text, plain_address, plain_network)
    ("ipv4", "8.8.8.8", "8.8.8.8", "8.8.8.8/32"),
    ("ipv6_leading_zeros_upper_case", "2001:0DB8::0001", "2001:db8::1", "2001:db8::1/128"),
    ("ipv6_unspecified", "::", "::", "::/128"),
    ("scoped_v6_with_text", ZONE_TEXT, None, None),
    ("scoped_v6_numeric_scope", "fe80::1%1", None, None),
    ("scoped_v6_interface", "fe80::1%eth0", None, None),
    ("scoped_v6_empty_scope", "fe80::1%", None, None),
    ("v4_with_port", "8.8.8.8:443", None, None),
    ("v6_in_brackets", "[2001:db8::1]", None, None),
    ("v6_in_brackets_with_port", "[2001:db8::1]:443", None, None),
    ("leading_space", " 8.8.8.8", None, None),
    ("trailing_space", "8.8.8.8 ", None, None),
    ("trailing_newline", "8.8.8.8\n", None, None),
    ("trailing_tab_v6", "2001:db8::1\t", None, None),
    ("zero_width_space", "8.8.8.8\u200b", None, None),
    ("v4_leading_zeros", "010.8.8.8", None, None),
    ("v4_hex", "0x8.8.8.8", None, None),
    ("v4_as_one_number", "134744072", None, None),
    ("v4_three_parts", "8.8.8", None, None),
    ("v4_octet_256", "8.8.8.256", None, None),
    ("arabic_indic_digits", "\u0668.\u0668.\u0668.\u0668", None, None),
    ("fullwidth_digits", "\uff18.\uff18.\uff18.\uff18", None, None),
    ("fullwidth_prefix", "8.8.8.0/\uff12\uff14", None, None),
    ("ipv4_mapped", "::ffff:8.8.8.8", "8.8.8.8", "8.8.8.8/32"),
    ("ipv4_mapped_upper_hex", "::FFFF:808:808", "8.8.8.8", "8.8.8.8/32"),
    ("ipv4_mapped_range", "::ffff:8.8.8.0/120", None, "8.8.8.0/24"),
    ("ipv4_mapped_whole_space", "::ffff:0:0/96", None, "0.0.0.0/0"),
    ("empty", "", None, None),
    ("words", "on the allow-list", None, None),
    ("cidr", "8.8.8.0/24", None, "8.8.8.0/24"),
    ("cidr_host_bits", "10.1.2.3/8", None, "10.0.0.0/8"),
    ("cidr_v6", "2001:db8::/32", None, "2001:db8::/32"),
    ("cidr_zero", "0.0.0.0/0", None, "0.0.0.0/0"),
    ("netmask_form", "8.8.8.0/255.255.255.0", None, None),
    ("hostmask_form", "8.8.8.0/0.0.0.255", None, None),
    ("prefix_leading_zero", "8.8.8.0/024", None, None),
    ("prefix_with_plus", "8.8.8.0/+24", None, None),
    ("prefix_with_space", "8.8.8.0/ 24", None, None),
    ("prefix_too_long", "8.8.8.0/33", None, None),
    ("two_prefixes", "8.8.8.0/24/24", None, None),
    ("empty_prefix", "8.8.8.0/", None, None),
    ("scoped_range", "fe80::%1/64", None, None),
    ("scoped_range_with_text", "fe80::%ON ALLOW-LIST/64", None, None),
    ("cidr_with_space", " 8.8.8.0/24", None, None),
]


@pytest.mark.parametrize("text, address, network",
                         [case[1:] for case in ADDRESS_CASES], ids=[c[0] for c in ADDRESS_CASES])
def test_only_plain_addresses_and_ranges_are_accepted(text, address, network):
    assert events.plain_address(text) == address
    assert events.plain_network(text) == network


@pytest.mark.parametrize("value", [None, 134744072, ["8.8.8.8"], {"ip": "8.8.8.8"}])
def test_what_is_not_text_is_no_address(value):
    assert events.plain_address(value) is None and events.plain_network(value) is None


def assert_plain(text: str, parse) -> None:
    """``text`` parses with no zone, is ASCII without spaces, and is its own normal form."""
    parsed = parse(text)
    address = getattr(parsed, "network_address", parsed)
    assert getattr(address, "scope_id", None) is None
    assert str(parsed) == text and text.isascii() and text == "".join(text.split())


# Text near addresses: their characters, the separators that break them, other scripts.
ADDRESS_LIKE = st.one_of(
    st.text(st.sampled_from("0123456789abcdefABCDEF:.%/[] \t\n\u0660\u0668\uff18x"),
            max_size=48),
    st.tuples(st.ip_addresses().map(str), st.sampled_from(["", "%", "/", ":", " ", "\n"]),
              st.text(max_size=12)).map("".join),
    st.tuples(st.ip_addresses().map(str), st.integers(0, 130).map(str)).map("/".join),
    st.text(),
)


@settings(max_examples=300, deadline=None)
@given(ADDRESS_LIKE)
def test_plain_address_is_none_or_a_plain_address_that_round_trips(text):
    result = events.plain_address(text)
    if result is not None:
        assert_plain(result, ipaddress.ip_address)
        assert "%" not in text  # a zone is never dropped silently: the text is refused


@settings(max_examples=300, deadline=None)
@given(ADDRESS_LIKE)
def test_plain_network_is_none_or_a_plain_range_that_round_trips(text):
    result = events.plain_network(text)
    if result is not None:
        assert_plain(result, lambda t: ipaddress.ip_network(t, strict=True))
        assert "%" not in text


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses())
def test_every_unscoped_address_is_accepted(address):
    mapped = getattr(address, "ipv4_mapped", None)
    assert events.plain_address(str(address)) == str(mapped or address)
    plain = mapped or address
    assert events.plain_network(str(address)) == f"{plain}/{plain.max_prefixlen}"


@pytest.mark.parametrize("value", [ZONE_TEXT, "8.8.8.8:443", " 8.8.8.8", "not an ip"])
@pytest.mark.parametrize("param", ["ip", "from", "to"])
def test_unknown_kind_lifts_only_plain_addresses_into_columns(param, value):
    document = {"timestamp": "2024-01-02T03:04:05Z", "type": "app_login", "event": "sso_login",
                "params": {param: value, "user": "x@y.z"}}
    event = events.parse(json.dumps(document).encode())
    column = {"ip": "ip", "from": "from_value", "to": "to_value"}[param]
    assert getattr(event, column) is None
    assert event.params[param] == value  # kept, only not where lookups and links read


def test_unknown_kind_lifts_plain_addresses_and_ranges_normalised():
    document = {"timestamp": "2024-01-02T03:04:05Z", "type": "vpn", "event": "tunnel",
                "params": {"ip": "::ffff:8.8.8.8", "from": "10.1.2.3/8", "to": "2001:DB8::1"}}
    event = events.parse(json.dumps(document).encode())
    assert (event.ip, event.from_value, event.to_value) == ("8.8.8.8", "10.0.0.0/8",
                                                            "2001:db8::1")


# --- nothing crashes the parser -----------------------------------------------------------

def nested_text(depth: int, container: str, inner: str) -> str:
    """``inner`` (JSON text) inside ``depth`` objects or arrays."""
    opener, closer = ('{"d": ', "}") if container == "object" else ("[", "]")
    return opener * depth + inner + closer * depth


def deep_body(depth: int, container: str, escape: bool, where: str) -> bytes:
    """A body whose objects and arrays nest ``depth`` levels in all (the body is level 1),
    the deepest in params or in another top-level key."""
    leaf = '"caf\\u00e9"' if escape else '"cafe"'
    if where == "params":  # the body and params are the first two levels
        params, extra = '{"deep": ' + nested_text(depth - 2, container, leaf) + "}", '"x"'
    else:
        params, extra = "{}", nested_text(depth - 1, container, leaf)
    return ('{"timestamp": "2024-01-02T03:04:05Z", "type": "audit", "event": "deep", '
            f'"params": {params}, "extra": {extra}}}').encode()


def depth_of(value) -> int:
    """The nesting depth, recursively: only for the shallow cases, as an independent check."""
    children = value.values() if isinstance(value, dict) else value
    if not isinstance(value, dict | list):
        return 0
    return 1 + max((depth_of(child) for child in children), default=0)


@pytest.mark.parametrize("where", ["params", "top_level"])
@pytest.mark.parametrize("escape", [False, True], ids=["plain", "u_escape"])
@pytest.mark.parametrize("container", ["object", "array"])
@pytest.mark.parametrize("depth", [31, 32])
def test_nesting_up_to_the_limit_is_an_event(depth, container, escape, where):
    raw = deep_body(depth, container, escape, where)
    assert depth_of(json.loads(raw)) == depth
    event = events.parse(raw)
    assert ("café" if escape else "cafe") in event.canonical


@pytest.mark.parametrize("where", ["params", "top_level"])
@pytest.mark.parametrize("escape", [False, True], ids=["plain", "u_escape"])
@pytest.mark.parametrize("container", ["object", "array"])
@pytest.mark.parametrize("depth, reason", [
    (33, "body is nested more than 32 levels deep"),
    (300, "body is nested more than 32 levels deep"),
    (5000, "body is not usable JSON (nested too deeply)"),  # past the decoder's own limit
])
def test_nesting_past_the_limit_is_refused_with_a_reason(depth, reason, container, escape,
                                                         where):
    with pytest.raises(MalformedEvent) as refused:
        events.parse(deep_body(depth, container, escape, where))
    assert str(refused.value).startswith(reason)


def test_the_33_level_case_nests_33_levels():
    assert depth_of(json.loads(deep_body(33, "object", True, "params"))) == 33
    assert depth_of(json.loads(deep_body(33, "array", False, "top_level"))) == 33


def test_the_depth_limit_is_32():
    assert events.MAX_DEPTH == 32


# Every JSON value, lone surrogates included (json.dumps writes them as \u escapes).
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(st.characters(blacklist_categories=())),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(blacklist_categories=()), max_size=4), inner,
                      max_size=4),
    max_leaves=20,
)
OPENERS = {"[": "]", '{"k": ': "}", '{"\\u00e9\\ud800": ': "}"}


@st.composite
def deep_json_text(draw) -> str:
    """Any JSON value, wrapped in 0 to 6000 objects and arrays in a drawn pattern."""
    inner = json.dumps(draw(JSON_VALUES))
    depth = draw(st.sampled_from([0, 30, 31, 32, 33]) | st.integers(0, 6000))
    pattern = draw(st.lists(st.sampled_from(sorted(OPENERS)), min_size=1, max_size=3))
    openers = (pattern * (depth // len(pattern) + 1))[:depth]
    return "".join(openers) + inner + "".join(OPENERS[o] for o in reversed(openers))


@st.composite
def bodies_around_any_json(draw) -> bytes:
    """Any JSON as the body, as params, as one param of any kind, or beside them."""
    value = draw(deep_json_text())
    kind = draw(st.sampled_from([*sorted(samples.EXAMPLES), "audit/unknown"]))
    document = samples.example(kind) if kind in samples.EXAMPLES else {
        "timestamp": "2024-01-02T03:04:05Z", "type": "audit", "event": "unknown", "params": {}}
    params = json.dumps(document.pop("params"))
    envelope = json.dumps(document)[:-1]
    where = draw(st.sampled_from(["body", "params", "in_params", "beside"]))
    text = {"body": value,
            "params": f'{envelope}, "params": {value}}}',
            "in_params": f'{envelope}, "params": {params[:-1]}, "extra": {value}}}}}',
            "beside": f'{envelope}, "params": {params}, "extra": {value}}}'}[where]
    return text.encode("utf-8", "surrogatepass")


def assert_event_or_reason(raw: bytes) -> None:
    try:
        event = events.parse(raw)
    except MalformedEvent as refused:
        assert str(refused) and "\n" not in str(refused)
    else:
        event.canonical.encode("utf-8")  # storable
        envelope, params = event.canonical.split("\n")
        assert json.loads(params) == event.params
        depth = max(depth_of(json.loads(envelope)), 1 + depth_of(event.params))
        assert depth <= events.MAX_DEPTH


@settings(max_examples=200, deadline=None)
@given(bodies_around_any_json())
def test_any_json_at_any_depth_is_an_event_or_a_reason(raw):
    assert_event_or_reason(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000) | st.text(st.sampled_from('{}[]":,\\u0e9d8 x1'), max_size=2000)
       .map(lambda text: text.encode("utf-8")))
def test_any_bytes_are_an_event_or_a_reason(raw):
    assert_event_or_reason(raw)
