"""moto's SQS server with each call atomic, as SQS's are.

moto changes a queue without a lock: a delete rebuilds the queue's list of messages, so
two deletes at once can bring a deleted message back, a send at the same moment as a
delete can be lost, and two receives at once can hand out one message twice. The
intake's drain (voisobot/drain.py) receives and deletes from many threads, so the tests
and the drain bench run moto behind this WSGI wrapper, which runs one SQS call at a time.
A long poll is not held under the lock: it is asked of moto as short polls (wait 0),
again whenever a call that can make a message visible has run (and every quarter second,
for visibility timeouts running out) until a message comes or the wait is over, so it
still returns as soon as a message is there and never blocks the other calls.
"""

import io
import json
import threading
import time

from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

RECHECK_SECONDS = 0.25  # a visibility timeout runs out without a call: look again
_RECEIVE = "AmazonSQS.ReceiveMessage"
# The calls that can make a message visible: a waiting long poll looks again after each.
_SHOWS_MESSAGES = {f"AmazonSQS.{name}" for name in (
    "SendMessage", "SendMessageBatch", "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch")}


class AtomicSqs:
    """WSGI middleware: one SQS JSON-protocol call at a time; long polls as short ones."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.changed = threading.Condition()  # notified after each call that may show one

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("AmazonSQS."):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        request = json.loads(body or b"{}")
        wait = float(request.get("WaitTimeSeconds", 0) or 0) if target == _RECEIVE else 0.0
        if wait:
            body = json.dumps({**request, "WaitTimeSeconds": 0}).encode()
        deadline = time.monotonic() + wait
        while True:
            status, headers, payload = self._once(environ, body)
            left = deadline - time.monotonic()
            if not wait or b'"Messages"' in payload or left <= 0:
                break
            with self.changed:
                self.changed.wait(min(left, RECHECK_SECONDS))
        if target in _SHOWS_MESSAGES:
            with self.changed:
                self.changed.notify_all()
        start_response(status, headers)
        return [payload]

    def _once(self, environ, body: bytes):
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers

        call = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        with self.lock:
            payload = b"".join(self.app(call, start_response))
        headers = [(k, v) for k, v in answer["headers"] if k.lower() != "content-length"]
        return answer["status"], [*headers, ("Content-Length", str(len(payload)))], payload


class AtomicMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer, its SQS calls made atomic (AtomicSqs)."""

    def _server_entry(self) -> None:
        app = AtomicSqs(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True,
                                   request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
