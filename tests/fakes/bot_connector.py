"""A fake Bot Connector service over HTTP: where a Teams bot's replies go.

A Teams bot answers through the Bot Connector REST API at the ``serviceUrl`` that each
incoming activity carries, so a test points that at ``FakeBotConnector.base_url`` and sees
every reply here, without Azure. It answers the three calls a bot makes:

* ``POST /v3/conversations/{id}/activities``: a new activity, **201** ``{"id": "<new id>"}``;
* ``POST /v3/conversations/{id}/activities/{activityId}``: a reply to one, 201 likewise;
* ``PUT /v3/conversations/{id}/activities/{activityId}``: an update in place, **200**
  ``{"id": "<activityId>"}`` (404 for an id it never handed out);
* ``GET /v3/conversations/{id}/members/{memberId}``: one member of a conversation, **200**
  with what ``members`` holds for that id (a TeamsChannelAccount: ``email``,
  ``userPrincipalName``, ``aadObjectId``, ``name``), else 404 ``MemberNotFoundInConversation``.

Anything else is 404. ``fail()`` makes the next calls answer 429 (with Retry-After) or 500,
as the real service does under throttling or trouble, or ("post_then_hang") take the call
as usual and hold its answer back until ``release()`` or ``stop()``: the bot's call times out
although the activity was posted. It checks no token: the real one
would, and the bot under test has no Azure credentials.
"""

import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

FAULTS = {"rate_limited": 429, "server_error": 500}
HANG = "post_then_hang"  # taken, then no answer until released
HANG_LIMIT_SECONDS = 30.0  # a held answer goes out by then even if nobody releases it


@dataclass(frozen=True)
class Call:
    method: str
    conversation_id: str  # "" for a path of another shape
    activity_id: str      # the one replied to or updated; "" for a new activity
    body: dict | None     # the JSON sent, None if it did not parse
    headers: dict
    status: int
    member_id: str = ""   # the member asked about by a GET of one member
    new_id: str = ""      # the id handed out for a new activity


class FakeBotConnector:
    def __init__(self, retry_after: float = 0, members: dict[str, dict] | None = None):
        """``members``: a member's account id (29:…) -> what GET of that member answers."""
        self.retry_after = retry_after
        self.members: dict[str, dict] = dict(members or {})
        self.calls: list[Call] = []
        self._faults: list[str] = []
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeBotConnector":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def fail(self, fault: str, times: int = 1) -> None:
        """Answer the next ``times`` calls with ``fault``: "rate_limited", "server_error" or
        "post_then_hang"."""
        if fault not in FAULTS and fault != HANG:
            raise ValueError(f"unknown fault {fault!r}; expected one of "
                             f"{sorted([*FAULTS, HANG])}")
        with self._lock:
            self._faults += [fault] * times

    def release(self) -> None:
        """Let the held answers go (the bot stopped waiting for them long ago)."""
        self._released.set()

    def sent(self) -> list[dict]:
        """The activities taken (created or replied), oldest first."""
        with self._lock:
            return [call.body for call in self.calls
                    if call.method == "POST" and call.status == 201]

    def member_lookups(self) -> list[Call]:
        """The GETs of one member, oldest first."""
        with self._lock:
            return [call for call in self.calls if call.method == "GET" and call.member_id]

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        conversation, activity_id, member_id, known_path = _parts(path)
        parsed = _json(body) if method != "GET" else None
        with self._lock:
            hang = bool(known_path and self._faults and self._faults[0] == HANG)
            if hang:
                self._faults.pop(0)
            status, reply = self._decide(method, known_path, activity_id, member_id, parsed)
            new_id = reply.get("id", "") if status == 201 else ""
            self.calls.append(Call(method, conversation, activity_id, parsed, headers, status,
                                   member_id, new_id))
        if hang:
            self._released.wait(HANG_LIMIT_SECONDS)
        return status, reply

    def _decide(self, method: str, known_path: bool, activity_id: str, member_id: str,
                parsed: dict | None) -> tuple[int, dict]:
        allowed = ("GET",) if member_id else ("POST", "PUT")
        if not known_path or method not in allowed:
            return 404, {"error": {"code": "NotFound", "message": "no such API"}}
        if self._faults:
            fault = self._faults.pop(0)
            return FAULTS[fault], {"error": {"code": fault, "message": fault}}
        if member_id:
            if member_id not in self.members:
                return 404, {"error": {"code": "MemberNotFoundInConversation",
                                       "message": "no such member"}}
            return 200, {"id": member_id, **self.members[member_id]}
        if parsed is None:
            return 400, {"error": {"code": "BadArgument", "message": "not JSON"}}
        if method == "PUT":
            if activity_id not in self._ids:
                return 404, {"error": {"code": "ActivityNotFound", "message": "no activity"}}
            return 200, {"id": activity_id}
        new_id = uuid.uuid4().hex
        self._ids.add(new_id)
        return 201, {"id": new_id}


def _parts(path: str) -> tuple[str, str, str, bool]:
    """(conversation id, activity id, member id, whether the path has the API's shape)."""
    parts = path.split("?")[0].strip("/").split("/")
    if len(parts) in (4, 5) and parts[0] == "v3" and parts[1] == "conversations" \
            and parts[3] == "activities":
        return unquote(parts[2]), unquote(parts[4]) if len(parts) == 5 else "", "", True
    if len(parts) == 5 and parts[:2] == ["v3", "conversations"] and parts[3] == "members":
        return unquote(parts[2]), "", unquote(parts[4]), True
    return "", "", "", False


def _json(body: bytes) -> dict | None:
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _handler(fake: FakeBotConnector):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, reply = fake.answer(self.command, self.path, dict(self.headers), body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", f"{fake.retry_after:g}")
            self.end_headers()
            self.wfile.write(data)

        do_PUT = do_GET = do_DELETE = do_PATCH = do_POST

    return Handler
