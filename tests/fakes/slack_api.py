"""A fake Slack Web API over HTTP: a recorder with faults on demand.

slack_sdk's WebClient reaches it through ``base_url``, like Slack itself. It answers
``chat.postMessage``, ``chat.update`` and ``auth.test`` the way Slack does, accepts
POSTs to ``/response/<anything>`` (a response_url), and records every call. It
checks only what Slack's answer depends on (the token, the channel); it validates no
payload. A test can make the next N calls of one method fail the way Slack fails them,
or take the whole API down.
"""

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

DEFAULT_CHANNELS = frozenset({"C_ALERTS", "C_SECURITY", "C_DEFAULT"})
RESPONSE_URL = "response_url"  # the method name under which response_url calls are recorded
FIRST_TS_MICROS = 1_700_000_000_000_100
# Extra fields Slack puts beside some error codes.
_ERROR_DETAILS = {"missing_scope": {"needed": "chat:write", "provided": "commands"}}


@dataclass(frozen=True)
class Call:
    method: str      # "chat.postMessage", or RESPONSE_URL for any /response/... path
    payload: dict    # the JSON or form body, merged with the query string
    headers: dict
    at: float        # time.monotonic() when it arrived
    path: str = ""


class FakeSlack:
    def __init__(self, *, token: str = "xoxb-test", channels=DEFAULT_CHANNELS,
                 retry_after: float = 1, hang_seconds: float = 5.0):
        self.token = token
        self.channels = set(channels)
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.calls: list[Call] = []
        self.down = False
        self._not_in_channel: set[str] = set()
        self._faults: dict[str, list[str]] = defaultdict(list)
        self._next_ts = FIRST_TS_MICROS
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # A short poll interval keeps stop() (one per test) from costing half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

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
        with Retry-After), "server_error" (500), "hang" (no answer), or any Slack error code
        such as "invalid_auth" or "channel_not_found" (200 with ok false)."""
        with self._lock:
            self._faults[method] += [fault] * times

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._not_in_channel.clear()
        self.down = False

    def set_down(self, down: bool) -> None:
        self.down = down

    def set_not_in_channel(self, channel: str) -> None:
        with self._lock:
            self._not_in_channel.add(channel)

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
        if fault:
            return 200, _error(fault), {}
        if call.method == RESPONSE_URL:
            return 200, {"ok": True}, {}
        return 200, self._api_answer(call), {}

    def _api_answer(self, call: Call) -> dict:
        token = _bearer(call.headers) or call.payload.get("token")
        if not token:
            return _error("not_authed")
        if token != self.token:
            return _error("invalid_auth")
        if call.method == "auth.test":
            return {"ok": True, "url": "https://test.slack.com/", "team": "Test",
                    "user": "voiso-bot", "team_id": "T1", "user_id": "UBOT", "bot_id": "B1"}
        if call.method in ("chat.postMessage", "chat.update"):
            return self._message_answer(call)
        return _error("unknown_method")

    def _message_answer(self, call: Call) -> dict:
        channel = call.payload.get("channel")
        if channel in self._not_in_channel:
            return _error("not_in_channel")
        if channel not in self.channels:
            return _error("channel_not_found")
        ts = call.payload.get("ts") if call.method == "chat.update" else self._new_ts()
        message = {"type": "message", "user": "UBOT", "bot_id": "B1", "ts": ts,
                   "text": call.payload.get("text", ""), "blocks": call.payload.get("blocks", [])}
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _new_ts(self) -> str:
        with self._lock:
            micros, self._next_ts = self._next_ts, self._next_ts + 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _error(code: str) -> dict:
    return {"ok": False, "error": code, **_ERROR_DETAILS.get(code, {})}


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
            if fault == "hang":
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
