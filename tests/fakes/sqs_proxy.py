"""A fault-injecting HTTP proxy in front of the moto SQS server.

The bot reaches it through ``sqs.endpoint_url``, like any SQS-compatible
server. By default it forwards every request; a test can make the next N calls
of one operation fail the way AWS fails them (throttling, AccessDenied, 500) or
hang past the client's read timeout. Errors use the SQS JSON protocol shapes.
"""

import http.client
import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ERRORS = {
    "throttle": (400, "RequestThrottled", "com.amazonaws.sqs#RequestThrottled", "Rate exceeded"),
    "server_error": (500, "InternalError", "com.amazonaws.sqs#InternalError",
                     "We encountered an internal error. Please try again."),
    "no_such_queue": (400, "AWS.SimpleQueueService.NonExistentQueue",
                      "com.amazonaws.sqs#QueueDoesNotExist", "The specified queue does not exist."),
    "invalid_address": (400, "InvalidAddress", "com.amazonaws.sqs#InvalidAddress",
                        "The address https://sqs.eu-west-1.amazonaws.com/ is not valid for this "
                        "endpoint."),
    "bad_credentials": (403, "InvalidClientTokenId",
                        "com.amazon.coral.service#UnrecognizedClientException",
                        "The security token included in the request is invalid."),
    # An SSE-KMS queue whose key the caller may not use, or that is disabled.
    "kms_access_denied": (400, "KMS.AccessDeniedException", "com.amazonaws.sqs#KmsAccessDenied",
                          "User: arn:aws:iam::123456789012:user/voiso-bot is not authorized "
                          "to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:"
                          "123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
    "kms_disabled": (400, "KMS.DisabledException", "com.amazonaws.sqs#KmsDisabled",
                     "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-"
                     "1234567890ab is disabled."),
}


class SqsFaultProxy:
    def __init__(self, upstream: str, hang_seconds: float = 5.0):
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.hang_seconds = hang_seconds
        self.calls: list[str] = []
        self._faults: dict[str, list[str]] = defaultdict(list)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SqsFaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, operation: str, fault: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``operation`` (e.g. "ReceiveMessage") with
        ``fault``: throttle, server_error, no_such_queue, invalid_address, bad_credentials,
        access_denied, kms_access_denied, kms_disabled, hang."""
        with self._lock:
            self._faults[operation] += [fault] * times

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(self, operation: str) -> int:
        return self.calls.count(operation)

    def _next_fault(self, operation: str) -> str | None:
        with self._lock:
            self.calls.append(operation)
            pending = self._faults.get(operation)
            return pending.pop(0) if pending else None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                target = self.headers.get("X-Amz-Target", "")
                operation = target.rsplit(".", 1)[-1] if target else "Query"
                fault = proxy._next_fault(operation)
                if fault == "hang":
                    time.sleep(proxy.hang_seconds)
                    self.close_connection = True
                    return
                if fault:
                    self._send_error(fault, operation)
                    return
                self._forward(body)

            def _send_error(self, fault: str, operation: str):
                if fault == "access_denied":
                    status, code = 400, "AccessDenied"
                    type_ = "com.amazon.coral.service#AccessDeniedException"
                    message = (f"User: arn:aws:iam::123456789012:user/voiso-bot is not authorized "
                               f"to perform: sqs:{operation.lower()} on resource: arn:aws:sqs:"
                               "us-east-1:123456789012:test because no identity-based policy "
                               f"allows the sqs:{operation.lower()} action")
                else:
                    status, code, type_, message = _ERRORS[fault]
                payload = json.dumps({"__type": type_, "message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("x-amzn-query-error", f"{code};Sender")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _forward(self, body: bytes):
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request("POST", self.path, body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                conn.close()

        return Handler
