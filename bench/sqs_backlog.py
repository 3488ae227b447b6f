"""A backlog server for bench_drain.py: the few SQS JSON-protocol calls the intake makes,
each in constant time, so that a queue 20,000 deep can be drained at the rate the bot
reaches rather than at the rate moto serves (moto's receive and delete cost time in
proportion to the queue's depth: platform-facts, "never a throughput yardstick").

It keeps what SQS promises the intake: a received message is invisible for the queue's
visibility timeout and comes back if it is not deleted by then, a delete takes the receipt
handle of the last receive, a long poll returns as soon as a message is there. Not more: one
queue, no attributes beyond the counts, no dead-letter queue. Served in a process of its own
(``python bench/sqs_backlog.py`` prints its port).
"""

import hashlib
import itertools
import json
import sys
import threading
import time
import uuid
from collections import OrderedDict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VISIBILITY_SECONDS = 60.0


class Queue:
    def __init__(self):
        self.visible: deque[dict] = deque()
        self.in_flight: OrderedDict[str, tuple[float, dict]] = OrderedDict()  # handle -> due
        self.changed = threading.Condition()
        self.ids = itertools.count()

    def send(self, entries: list[dict]) -> list[dict]:
        done = []
        with self.changed:
            for entry in entries:
                message = {"MessageId": str(uuid.uuid4()), "Body": entry["MessageBody"],
                           "SentTimestamp": str(int(time.time() * 1000))}
                self.visible.append(message)
                done.append({"Id": entry["Id"], "MessageId": message["MessageId"],
                             "MD5OfMessageBody": _md5(entry["MessageBody"])})
            self.changed.notify_all()
        return done

    def receive(self, count: int, wait: float) -> list[dict]:
        deadline = time.monotonic() + wait
        with self.changed:
            while True:
                self._return_expired()
                if self.visible or time.monotonic() >= deadline:
                    break
                self.changed.wait(min(0.25, deadline - time.monotonic()))
            taken = [self.visible.popleft() for _ in range(min(count, len(self.visible)))]
            due = time.monotonic() + VISIBILITY_SECONDS
            answer = []
            for message in taken:
                handle = f"{message['MessageId']}#{next(self.ids)}"
                self.in_flight[handle] = (due, message)
                answer.append({"MessageId": message["MessageId"], "ReceiptHandle": handle,
                               "MD5OfBody": _md5(message["Body"]), "Body": message["Body"],
                               "Attributes": {"SentTimestamp": message["SentTimestamp"],
                                              "ApproximateReceiveCount": "1"}})
            return answer

    def delete(self, entries: list[dict]) -> tuple[list[dict], list[dict]]:
        with self.changed:
            for entry in entries:
                self.in_flight.pop(entry["ReceiptHandle"], None)  # SQS: a stale handle is ok
        return [{"Id": entry["Id"]} for entry in entries], []

    def counts(self) -> dict[str, str]:
        with self.changed:
            return {"ApproximateNumberOfMessages": str(len(self.visible)),
                    "ApproximateNumberOfMessagesNotVisible": str(len(self.in_flight))}

    def _return_expired(self) -> None:
        now = time.monotonic()
        while self.in_flight:
            handle, (due, message) = next(iter(self.in_flight.items()))
            if due > now:
                return
            del self.in_flight[handle]
            self.visible.append(message)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


QUEUE = Queue()


def answer(action: str, request: dict, host: str) -> dict:
    if action == "CreateQueue":
        return {"QueueUrl": f"http://{host}/123456789012/{request['QueueName']}"}
    if action == "SendMessageBatch":
        return {"Successful": QUEUE.send(request["Entries"]), "Failed": []}
    if action == "ReceiveMessage":
        messages = QUEUE.receive(int(request.get("MaxNumberOfMessages", 1)),
                                 float(request.get("WaitTimeSeconds", 0)))
        return {"Messages": messages} if messages else {}
    if action == "DeleteMessageBatch":
        done, failed = QUEUE.delete(request["Entries"])
        return {"Successful": done, "Failed": failed}
    if action == "GetQueueAttributes":
        return {"Attributes": QUEUE.counts()}
    raise KeyError(action)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
    # The head and the body are two writes: with Nagle's algorithm the body would wait for
    # the client's delayed ACK of the head (40 ms on Linux), a latency SQS does not have.
    disable_nagle_algorithm = True

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        action = self.headers.get("X-Amz-Target", "").removeprefix("AmazonSQS.")
        try:
            status, payload = 200, answer(action, json.loads(body or b"{}"),
                                          self.headers.get("Host", ""))
        except KeyError:
            status, payload = 400, {"__type": "com.amazonaws.sqs#UnsupportedOperation",
                                    "message": f"not served here: {action}"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # the bench prints tables, not access logs
        pass


def serve() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(serve())
