"""A fake Slack Web API over HTTP: a recorder with faults on demand.

slack_sdk's WebClient reaches it through ``base_url``, like Slack itself. It answers
``chat.postMessage``, ``chat.update``, ``chat.getPermalink``, ``conversations.history``,
``conversations.info``, ``conversations.open``, ``users.lookupByEmail``, ``auth.test``,
``usergroups.users.list``, ``views.publish`` (a user's App Home, kept per user: ``homes``)
and ``apps.connections.open`` (with the app-level token) the way Slack does, accepts POSTs
to ``/response/<anything>`` (a response_url), and records every call. People (email -> user
id) are looked up case-insensitively, as Slack does; opening a DM with one gives the same
``D…`` channel every time, which then takes posts, updates and history reads like any
channel. Posted messages (with their metadata) are kept
per channel, so history reads see them, newest first, in cursor-linked pages. It checks
only what Slack's answer depends on (the token, the channel); it validates no payload. A test
can make the next N calls of one method fail the way Slack fails them, or take the whole API
down.
"""

import base64
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

DEFAULT_CHANNELS = frozenset({"C_ALERTS", "C_SECURITY", "C_DEFAULT"})
RESPONSE_URL = "response_url"  # the method name under which response_url calls are recorded
TS_STEP_MICROS = 100
HISTORY_DEFAULT_LIMIT = 100  # Slack's default page size for conversations.history
# The scope Slack names in "needed" when a method answers missing_scope.
_NEEDED_SCOPE = {"conversations.history": "channels:history,groups:history",
                 "conversations.info": "channels:read",
                 "users.lookupByEmail": "users:read.email", "conversations.open": "im:write"}
_CURSOR_PREFIX = "next_ts:"
_MESSAGE_METHODS = ("chat.postMessage", "chat.update", "conversations.history",
                    "conversations.info", "chat.getPermalink")
PERMALINK_BASE = "https://fake.slack.example/archives"


@dataclass(frozen=True)
class Person:
    """A Slack user as users.lookupByEmail shows one."""

    user_id: str
    email: str
    deleted: bool = False
    is_bot: bool = False


@dataclass(frozen=True)
class Call:
    method: str      # "chat.postMessage", or RESPONSE_URL for any /response/... path
    payload: dict    # the JSON or form body, merged with the query string
    headers: dict
    at: float        # time.monotonic() when it arrived
    path: str = ""


class FakeSlack:
    def __init__(self, *, token: str = "xoxb-test", channels=DEFAULT_CHANNELS,
                 retry_after: float = 1, hang_seconds: float = 5.0,
                 history_max_limit: int = 999, first_ts: float | None = None,
                 usergroups: dict[str, list[str]] | None = None,
                 app_token: str = "xapp-test", socket_url: str | None = None,
                 people: dict[str, str] | None = None):
        self.token = token
        self.scopes: list[str] | None = None  # the token's scopes auth.test names, when set
        self._people: dict[str, Person] = {}  # lower-case email -> person
        self._dm_channels: set[str] = set()  # opened by conversations.open
        self.usergroups = dict(usergroups or {})  # user-group ID -> member user IDs
        self.app_token = app_token  # Socket Mode's app-level token
        self.socket_url = socket_url  # what apps.connections.open hands out
        self.channels = set(channels)
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.history_max_limit = history_max_limit  # lower it to make history page sooner
        self.calls: list[Call] = []
        self.homes: dict[str, dict] = {}  # user id -> the App Home view published last
        self.down = False
        self._not_in_channel: set[str] = set()
        self._archived: set[str] = set()
        self._faults: dict[str, list[str]] = defaultdict(list)
        self._messages: dict[str, list[dict]] = defaultdict(list)  # oldest first
        # Like Slack's, a ts is the wall-clock time of the post (kept strictly increasing),
        # so that history reads whose ``oldest`` comes from the caller's clock see it.
        # With ``first_ts`` they count up from there instead, for exact assertions.
        self._wall_clock_ts = first_ts is None
        self._next_ts = 0 if first_ts is None else round(first_ts * 1_000_000)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # A short poll interval keeps stop() (one per test) from costing half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        for email, user_id in (people or {}).items():
            self.add_person(email, user_id)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/response/{name}"

    def start(self) -> "FakeSlack":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, fault: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``fault``: "rate_limited" (429
        with Retry-After), "server_error" (500), "hang" (no answer), "post_then_hang" (do
        the call, e.g. post the message, then give no answer: Slack acted, the caller
        cannot know), or any Slack error code such as "invalid_auth" or
        "channel_not_found" (200 with ok false, with "needed" beside missing_scope)."""
        with self._lock:
            self._faults[method] += [fault] * times

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._not_in_channel.clear()
            self._archived.clear()
        self.down = False

    def add_person(self, email: str, user_id: str, *, deleted: bool = False,
                   is_bot: bool = False) -> None:
        """A Slack user with that email; ``deleted`` for a deactivated account."""
        with self._lock:
            self._people[email.lower()] = Person(user_id, email, deleted, is_bot)

    def dm_channel(self, user_id: str) -> str:
        """The DM channel conversations.open gives for ``user_id`` (same one every time)."""
        return "D" + user_id[1:]

    def set_down(self, down: bool) -> None:
        self.down = down

    def set_not_in_channel(self, channel: str) -> None:
        with self._lock:
            self._not_in_channel.add(channel)

    def set_archived(self, channel: str) -> None:
        with self._lock:
            self._archived.add(channel)

    def messages(self, channel: str) -> list[dict]:
        """The messages posted to ``channel``, oldest first."""
        with self._lock:
            return [dict(message) for message in self._messages.get(channel, [])]

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def record(self, path: str, headers: dict, payload: dict) -> Call:
        route = urlsplit(path).path
        method = RESPONSE_URL if route.startswith("/response/") else route.removeprefix("/api/")
        call = Call(method, payload, headers, time.monotonic(), route)
        with self._lock:
            self.calls.append(call)
        return call

    def next_fault(self, method: str) -> str | None:
        with self._lock:
            pending = self._faults.get(method)
            return pending.pop(0) if pending else None

    def answer(self, call: Call, fault: str | None) -> tuple[int, dict, dict]:
        """(HTTP status, JSON body, extra headers) for a call that gets an answer."""
        if fault == "rate_limited":
            return 429, _error("ratelimited"), {"Retry-After": str(self.retry_after)}
        if fault == "server_error":
            return 500, _error("internal_error"), {}
        if fault and fault != "post_then_hang":
            return 200, _error(fault, call.method), {}
        if call.method == RESPONSE_URL:
            return 200, {"ok": True}, {}
        answer = self._api_answer(call)
        if call.method == "auth.test" and answer.get("ok") and self.scopes is not None:
            return 200, answer, {"X-OAuth-Scopes": ",".join(self.scopes)}  # as Slack does
        return 200, answer, {}

    def _api_answer(self, call: Call) -> dict:
        token = _bearer(call.headers) or call.payload.get("token")
        if not token:
            return _error("not_authed")
        if call.method == "apps.connections.open":
            if token != self.app_token:
                return _error("invalid_auth")
            return {"ok": True, "url": self.socket_url} if self.socket_url \
                else _error("internal_error")
        if token != self.token:
            return _error("invalid_auth")
        if call.method == "usergroups.users.list":
            group = call.payload.get("usergroup")
            return {"ok": True, "users": self.usergroups[group]} if group in self.usergroups \
                else _error("no_such_subteam")
        if call.method == "auth.test":
            return {"ok": True, "url": "https://test.slack.com/", "team": "Test",
                    "user": "voiso-bot", "team_id": "T1", "user_id": "UBOT", "bot_id": "B1"}
        if call.method == "views.publish":
            return self._publish_answer(call)
        if call.method == "users.lookupByEmail":
            return self._lookup_answer(call.payload.get("email") or "")
        if call.method == "conversations.open":
            return self._open_answer(call.payload.get("users") or "")
        if call.method not in _MESSAGE_METHODS:
            return _error("unknown_method")
        channel = call.payload.get("channel")
        if call.method == "conversations.info":
            return self._info_answer(channel)
        if call.method == "chat.getPermalink":
            return self._permalink_answer(channel, call.payload.get("message_ts"))
        if channel in self._not_in_channel:
            return _error("not_in_channel")
        if channel in self._archived and call.method != "conversations.history":
            return _error("is_archived")
        if channel not in self.channels and channel not in self._dm_channels:
            return _error("channel_not_found")
        if call.method == "conversations.history":
            return self._history_answer(call, channel)
        return self._message_answer(call, channel)

    def _lookup_answer(self, email: str) -> dict:
        with self._lock:
            person = self._people.get(email.lower())
        if person is None:
            return _error("users_not_found")
        return {"ok": True, "user": {
            "id": person.user_id, "name": person.email.split("@")[0],
            "deleted": person.deleted, "is_bot": person.is_bot,
            "profile": {"email": person.email}}}

    def _publish_answer(self, call: Call) -> dict:
        """Like Slack: the user's Home becomes the view (a JSON object, or a JSON string in
        a form); a view that is not a home, or no user, is refused."""
        view, user = _json_field(call.payload.get("view")), call.payload.get("user_id")
        if not isinstance(view, dict) or view.get("type") != "home":
            return _error("invalid_arguments")
        if not isinstance(user, str) or not user:
            return _error("user_not_found")
        with self._lock:
            self.homes[user] = view
        return {"ok": True, "view": {"id": f"V{len(self.homes)}", **view}}

    def _open_answer(self, users: str) -> dict:
        """One user's DM, like Slack's answer to conversations.open with ``users``."""
        with self._lock:
            known = {person.user_id for person in self._people.values()}
            if users not in known:
                return _error("user_not_found")
            channel = self.dm_channel(users)
            self._dm_channels.add(channel)
        return {"ok": True, "channel": {"id": channel}}

    def _permalink_answer(self, channel: str, ts: str) -> dict:
        with self._lock:
            found = any(m["ts"] == ts for m in self._messages.get(channel, []))
        if not found:
            return _error("message_not_found")
        return {"ok": True, "channel": channel,
                "permalink": f"{PERMALINK_BASE}/{channel}/p{ts.replace('.', '')}"}

    def _info_answer(self, channel: str) -> dict:
        """Like Slack: a public channel the bot is not in is found, with is_member false."""
        known = channel in self.channels or channel in self._not_in_channel
        if not known:
            return _error("channel_not_found")
        return {"ok": True, "channel": {
            "id": channel, "name": f"name-of-{channel.lower()}", "is_channel": True,
            "is_member": channel not in self._not_in_channel,
            "is_archived": channel in self._archived}}

    def _message_answer(self, call: Call, channel: str) -> dict:
        ts = call.payload.get("ts") if call.method == "chat.update" else self._new_ts()
        message = {"type": "message", "user": "UBOT", "bot_id": "B1", "ts": ts,
                   "text": call.payload.get("text", ""), "blocks": call.payload.get("blocks", [])}
        metadata = _json_field(call.payload.get("metadata"))
        if metadata:
            message["metadata"] = metadata
        attachments = _json_field(call.payload.get("attachments"))
        if attachments is not None:  # like Slack: an update without them keeps the old ones
            message["attachments"] = attachments
        if call.payload.get("thread_ts") and call.method == "chat.postMessage":
            message["thread_ts"] = call.payload["thread_ts"]
        with self._lock:
            stored = self._messages[channel]
            if call.method == "chat.postMessage":
                stored.append(message)
            else:  # an update replaces text and blocks, and keeps metadata and attachments
                # unless given
                for i, old in enumerate(stored):
                    if old["ts"] == ts:
                        stored[i] = {**old, **message}
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _history_answer(self, call: Call, channel: str) -> dict:
        """Messages newer than ``oldest``, newest first, ``limit`` at a time; the cursor
        names the ts of the first message of the next page, so posts made between pages
        do not shift them."""
        payload = call.payload
        oldest = _ts_value(payload.get("oldest") or "0")
        before = _cursor_ts(payload.get("cursor")) if payload.get("cursor") else None
        try:
            limit = int(payload.get("limit") or HISTORY_DEFAULT_LIMIT)
        except ValueError:
            return _error("invalid_limit")
        if oldest is None:
            return _error("invalid_ts_oldest")
        if payload.get("cursor") and before is None:
            return _error("invalid_cursor")
        limit = max(1, min(limit, self.history_max_limit))
        with_metadata = _truthy(payload.get("include_all_metadata"))
        with self._lock:
            newest_first = list(reversed(self._messages.get(channel, [])))
        matching = [m for m in newest_first if _ts_value(m["ts"]) > oldest
                    and (before is None or _ts_value(m["ts"]) <= before)
                    and "thread_ts" not in m]  # like Slack: thread replies are not history
        page, rest = matching[:limit], matching[limit:]
        messages = [{key: value for key, value in m.items()
                     if key != "metadata" or with_metadata} for m in page]
        next_cursor = _cursor(rest[0]["ts"]) if rest else ""
        return {"ok": True, "messages": messages, "has_more": bool(rest),
                "pin_count": 0, "response_metadata": {"next_cursor": next_cursor}}

    def _new_ts(self) -> str:
        with self._lock:
            micros = self._next_ts
            if self._wall_clock_ts:
                micros = max(micros, time.time_ns() // 1_000)
            self._next_ts = micros + TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _error(code: str, method: str = "") -> dict:
    if code == "missing_scope":
        return {"ok": False, "error": code, "needed": _NEEDED_SCOPE.get(method, "chat:write"),
                "provided": "commands"}
    return {"ok": False, "error": code}


def _json_field(value):
    """A JSON-valued argument: an object in a JSON body, a JSON string in a form."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _truthy(value) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _ts_value(ts: str) -> Decimal | None:
    try:
        return Decimal(str(ts))
    except InvalidOperation:
        return None


def _cursor(ts: str) -> str:
    return base64.b64encode(f"{_CURSOR_PREFIX}{ts}".encode()).decode()


def _cursor_ts(cursor: str) -> Decimal | None:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except ValueError:
        return None
    if not text.startswith(_CURSOR_PREFIX):
        return None
    return _ts_value(text.removeprefix(_CURSOR_PREFIX))


def _bearer(headers: dict) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    return value.removeprefix("Bearer ").strip() or None


def _payload(body: bytes, content_type: str, query: str) -> dict:
    payload = dict(parse_qsl(query))
    if content_type.startswith("application/json"):
        parsed = json.loads(body or b"{}")
        payload.update(parsed if isinstance(parsed, dict) else {"_body": parsed})
    else:
        payload.update(parse_qsl(body.decode("utf-8")))
    return payload


def _handler(fake: FakeSlack):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            payload = _payload(body, self.headers.get("Content-Type", ""),
                               urlsplit(self.path).query)
            call = fake.record(self.path, dict(self.headers), payload)
            if fake.down:  # an outage: no fault is consumed, every call gets a 503
                self._send(503, {"ok": False, "error": "service_unavailable"}, {})
                return
            fault = fake.next_fault(call.method)
            if fault == "post_then_hang":
                fake.answer(call, fault)  # Slack does it; the answer never comes
            if fault in ("hang", "post_then_hang"):
                time.sleep(fake.hang_seconds)
                self.close_connection = True
                return
            self._send(*fake.answer(call, fault))

        def _send(self, status: int, body: dict, headers: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
