"""A fake Teams Workflows webhook over HTTP: a recorder with faults on demand.

Teams channels take posts through a Power Automate flow "when a Teams webhook request is
received"; its URL carries the flow's secret in a ``sig`` query parameter. This fake hands
out one such URL per name (``url("secops")``), answers a good post the way Workflows does,
**202 Accepted with an empty body** (accepted, not yet delivered), and records every
request. It checks only what the answer depends on, in this order:

* the path has the workflow shape and ``sig`` is the secret, else 404 / 401;
* a fault set with ``fail()`` for this URL, if any, answers instead;
* the method is POST (405), the Content-Type is application/json (400), the body is at most
  ``MAX_BODY_BYTES`` = 28 * 1024 = 28672 bytes as sent (413 above that; exactly 28672 is
  accepted), and the body parses as UTF-8 JSON (400).

It validates no card: the real trigger does not either; a bad card fails later, inside
the flow run, where the caller never hears of it. The same holds for size in the real
service, where a post over Teams' ~28 KB limit is accepted and then fails in the flow run;
the fake answers 413 instead, so that a test of the size guard has something to see.
Error bodies have Power Automate's shape, ``{"error": {"code", "message"}}``; their codes
are plausible, not a contract: tests should depend on the status.

``set_down(True)`` closes the listening socket, so that connecting is refused
(ECONNREFUSED, nothing sent), as when the service is unreachable; ``set_down(False)`` listens
again on the same port. That re-bind could in principle lose the port to another program
in between; it then raises rather than let a test pass for the wrong reason.
"""

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

MAX_BODY_BYTES = 28 * 1024  # Teams' message size limit ("about 28 KB"), read as KiB
SECRET = "test-secret"
FAULTS = frozenset({"rate_limited", "server_error", "bad_request", "not_found", "too_large",
                    "hang", "accept_then_hang"})
_PATH = re.compile(r"/workflows/(?P<name>[^/]+)/triggers/manual/paths/invoke")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_NO_ANSWER = None  # the status recorded for a call that got no answer


@dataclass(frozen=True)
class Call:
    name: str           # the workflow name in the URL; "" for a path of another shape
    body: bytes         # as sent
    headers: dict
    at: float           # time.monotonic() when it arrived
    status: int | None  # the status answered; None if no answer came (hang, accept_then_hang)
    method: str = "POST"
    path: str = ""      # the URL path and query, secret included


@dataclass(frozen=True)
class Answer:
    status: int | None
    body: dict | None = None  # JSON error body; None for an empty one
    headers: tuple = ()
    accepted: bool = False    # whether the post counts as taken by the flow


class FakeTeamsWebhook:
    def __init__(self, *, secret: str = SECRET, retry_after: float = 1,
                 hang_seconds: float = 5.0):
        self.secret = secret
        self.retry_after = retry_after  # seconds, sent in Retry-After with "rate_limited"
        self.hang_seconds = hang_seconds
        self.calls: list[Call] = []
        self.down = False
        self._posts: list[tuple[str, dict]] = []  # (name, body), oldest first
        self._faults: list[tuple[str, str | None]] = []  # (fault, name or None for any)
        self._lock = threading.Lock()
        self._released = threading.Event()  # ends hangs early on stop()
        self._started = self._stopped = False
        self._listener: _Listener | None = _Listener(0, _handler(self))
        self._port = self._listener.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def url(self, name: str = "secops") -> str:
        """The webhook URL of the workflow ``name``, shaped like a Power Automate one."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"workflow name {name!r}: use letters, digits, '-' and '_'")
        return (f"{self.base_url}/workflows/{name}/triggers/manual/paths/invoke"
                f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={quote(self.secret)}")

    def start(self) -> "FakeTeamsWebhook":
        with self._lock:
            self._started = True
            listener = self._listener
        if listener is not None:
            listener.serve()
        return self

    def stop(self) -> None:
        self._released.set()
        with self._lock:
            self._stopped = True
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def fail(self, fault: str, times: int = 1, name: str | None = None) -> None:
        """Answer the next ``times`` posts to workflow ``name`` (to any, if None) with
        ``fault``: "rate_limited" (429 with Retry-After: ``retry_after``), "server_error"
        (500), "bad_request" (400, the trigger's schema error), "not_found" (404, a deleted
        flow), "too_large" (413), "hang" (no answer for ``hang_seconds``, then the
        connection closes), or "accept_then_hang" (the post is taken, as ``posts()``
        shows, but no answer comes: the caller cannot know)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        with self._lock:
            self._faults += [(fault, name)] * times

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
        self.set_down(False)

    def set_down(self, down: bool) -> None:
        """Refuse connections (True) or take them again (False), on the same port."""
        with self._lock:
            if down == self.down or self._stopped:
                self.down = down
                return
            self.down = down
            old, self._listener = self._listener, None
            if not down:
                self._listener = _Listener(self._port, _handler(self))
            new, serve = self._listener, self._started
        if old is not None:
            old.close()
        if new is not None and serve:
            new.serve()

    def posts(self, name: str | None = None) -> list[dict]:
        """The JSON bodies accepted for workflow ``name`` (for all, if None), oldest first."""
        with self._lock:
            return [json.loads(json.dumps(body)) for posted_to, body in self._posts
                    if name is None or posted_to == name]

    def calls_to(self, name: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.name == name]

    def answer(self, method: str, path: str, headers: dict, body: bytes) -> Answer:
        """What a request gets, recorded; an accepted post is kept for ``posts()``."""
        name, answer = self._decide(method, path, headers, body)
        with self._lock:
            self.calls.append(Call(name, body, headers, time.monotonic(), answer.status,
                                   method, path))
            if answer.accepted:
                self._posts.append((name, json.loads(body)))
        return answer

    def hang(self) -> None:
        self._released.wait(self.hang_seconds)

    def _decide(self, method: str, path: str, headers: dict, body: bytes) -> tuple[str, Answer]:
        parts = urlsplit(path)
        match = _PATH.fullmatch(parts.path)
        if not match:
            return "", _error(404, "NotFound", "No workflow trigger has this path.")
        name = match["name"]
        if parse_qs(parts.query).get("sig") != [self.secret]:
            return name, _error(401, "DirectApiInvalidAuthorizationSignature",
                                "The provided authentication signature is not valid.")
        fault = self._next_fault(name)
        if fault:
            return name, self._fault_answer(fault, body)
        return name, self._check_post(method, headers, body)

    def _check_post(self, method: str, headers: dict, body: bytes) -> Answer:
        if method != "POST":
            return _error(405, "TriggerRequestMethodNotValid",
                          f"The HTTP method for this request is not valid: expected 'Post' "
                          f"and actual '{method}'.")
        content_type = _header(headers, "Content-Type").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(400, "InvalidRequestContent",
                          f"The request content type '{content_type}' is not supported: "
                          "expected 'application/json'.")
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "RequestEntityTooLarge",
                          f"The request body of {len(body)} bytes exceeds the limit of "
                          f"{MAX_BODY_BYTES} bytes.")
        try:
            json.loads(body.decode("utf-8"))
        except ValueError as error:  # UnicodeDecodeError is a ValueError too
            return _error(400, "InvalidRequestContent",
                          f"The request content is not valid and could not be deserialized: "
                          f"'{error}'.")
        return Answer(202, headers=(("x-ms-workflow-run-id", uuid.uuid4().hex),),
                      accepted=True)

    def _fault_answer(self, fault: str, body: bytes) -> Answer:
        if fault == "rate_limited":
            return _error(429, "WorkflowRequestsThrottled",
                          "The number of requests for this workflow exceeded the limit.",
                          (("Retry-After", f"{self.retry_after:g}"),))
        if fault == "server_error":
            return _error(500, "InternalServerError", "The server encountered an error.")
        if fault == "bad_request":
            return _error(400, "TriggerInputSchemaMismatch",
                          "The input body for trigger 'manual' of type 'Request' did not "
                          "match its schema definition.")
        if fault == "not_found":
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        if fault == "too_large":
            return _error(413, "RequestEntityTooLarge", "The request body is too large.")
        if fault == "accept_then_hang" and _parses(body):
            return Answer(_NO_ANSWER, accepted=True)
        return Answer(_NO_ANSWER)  # "hang", or nothing to accept

    def _next_fault(self, name: str) -> str | None:
        with self._lock:
            for i, (fault, only_for) in enumerate(self._faults):
                if only_for is None or only_for == name:
                    del self._faults[i]
                    return fault
        return None


class _Listener:
    """One listening socket and the thread that serves it."""

    def __init__(self, port: int, handler):
        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as error:
            raise RuntimeError(f"fake Teams webhook cannot listen on port {port} again: "
                               f"{error}") from error
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        # A short poll interval keeps stop() (one per test) from costing half a second.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever for an unserved one
            self.server.shutdown()
        self.server.server_close()


def _error(status: int, code: str, message: str, headers: tuple = ()) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}}, headers)


def _parses(body: bytes) -> bool:
    try:
        json.loads(body.decode("utf-8"))
    except ValueError:
        return False
    return True


def _header(headers: dict, name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), "")


def _handler(fake: FakeTeamsWebhook):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self._handle()

        do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

        def _handle(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            answer = fake.answer(self.command, self.path, dict(self.headers), body)
            if answer.status is _NO_ANSWER:
                fake.hang()
                self.close_connection = True
                return
            data = json.dumps(answer.body).encode() if answer.body is not None else b""
            self.send_response(answer.status)
            if data:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in answer.headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler
