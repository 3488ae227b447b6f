"""The front door of /slack/events in HTTP mode: every request is checked here, cheapest
check first, before Bolt sees it.

1. Size: a Content-Length over ``http.max_body_bytes`` gets 413 with the body unread
   (waitress itself refuses bodies over the limit, chunked ones too: serve.HttpServer).
2. Signature: ``X-Slack-Signature`` must be the HMAC of the timestamp and the body under
   SLACK_SIGNING_SECRET, and the timestamp within 5 minutes of now; else 401.
3. Shape: the body must be one of Slack's (slack/requests.py); else 400.
4. Replay: a signature acted on before is answered without acting, and audited
   (replays.py).

Bolt's own signature check is off (bot.slack_app): it would refuse nothing that passed
here, and it logs the whole body of a request it refuses, so a stranger's 50 MB POST
would be a 50 MB log line. A refusal here is one short log line that quotes nothing the
sender wrote: a fixed reason, the size and the peer's address.
"""

import hashlib
import hmac
import logging
import re
import time

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse

from voisobot.errors import VoisoBotError
from voisobot.slack import requests as slack_requests
from voisobot.slack.replays import WINDOW_SECONDS, Replays

log = logging.getLogger(__name__)

_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class Refused(VoisoBotError):
    """A request answered with ``status`` and not acted on; ``reason`` is a fixed phrase."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class FrontDoor:
    """The WSGI application of /slack/events (POST only; serve.wsgi_app routes to it)."""

    def __init__(self, app: App, signing_secret: str, max_body_bytes: int, replays: Replays):
        self.app, self.max_body_bytes, self.replays = app, max_body_bytes, replays
        self.secret = signing_secret.encode("utf-8")

    def __call__(self, environ, start_response):
        size = 0
        try:
            size = _declared_size(environ)
            if size > self.max_body_bytes:
                raise Refused("413 Content Too Large",
                              f"a body over http.max_body_bytes ({self.max_body_bytes})")
            body = environ["wsgi.input"].read(size) if size else b""
            signature = self._verified(environ, body)
            request, bolt_request = _read(environ, body)
            if (first_seen := self.replays.first_seen(signature)) is not None:
                self.replays.record(request, first_seen)
                log.warning("ignored a replayed request to /slack/events from %s: first "
                            "received at %s", _peer(environ), first_seen)
                # 200, not an error: the request was acted on once already, and when the
                # repeat is Slack's own retry of a slow answer, a 2xx ends the retries
                # instead of counting a failure against the app. A replayer learns nothing.
                return _answer(start_response, "200 OK")
        except Refused as refused:
            log.warning("refused a request to /slack/events from %s: %s (%d bytes)",
                        _peer(environ), refused.reason, size)
            return _answer(start_response, refused.status)
        return self._dispatch(bolt_request, start_response)

    def _verified(self, environ, body: bytes) -> str:
        """The request's signature, once it is Slack's for this body and recent."""
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not timestamp or not signature:
            raise Refused("401 Unauthorized", "no Slack signature")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise Refused("401 Unauthorized", "a timestamp that is not a number")
        if abs(time.time() - int(timestamp)) > WINDOW_SECONDS:
            raise Refused("401 Unauthorized", "a timestamp more than 5 minutes from now")
        if not hmac.compare_digest(signature, self._signature(timestamp, body)):
            raise Refused("401 Unauthorized", "a signature that does not match the body")
        return signature

    def _signature(self, timestamp: str, body: bytes) -> str:
        """Slack's v0 signature of these bytes. Not slack_sdk's SignatureVerifier: it
        decodes the body as UTF-8 first and raises on any other bytes."""
        signed = b"v0:" + timestamp.encode("ascii") + b":" + body
        return "v0=" + hmac.new(self.secret, signed, hashlib.sha256).hexdigest()

    def _dispatch(self, request: BoltRequest, start_response):
        response = self.app.dispatch(request)
        answer = WsgiHttpResponse(status=response.status, headers=response.headers,
                                  body=response.body)
        start_response(answer.status, answer.get_headers())
        return answer.get_body()


def _declared_size(environ) -> int:
    declared = environ.get("CONTENT_LENGTH") or "0"
    if not declared.isascii() or not declared.isdigit():
        raise Refused("400 Bad Request", "a Content-Length that is not a number")
    return int(declared)


def _read(environ, body: bytes) -> tuple[slack_requests.SlackRequest, BoltRequest]:
    """The signed body as one of Slack's shapes, and as Bolt reads it."""
    try:
        request = slack_requests.read(body, environ.get("CONTENT_TYPE"))
    except slack_requests.BadBody as exc:
        raise Refused("400 Bad Request", str(exc)) from None
    try:
        return request, BoltRequest(body=body.decode("utf-8"),
                                    query=environ.get("QUERY_STRING", ""),
                                    headers=WsgiHttpRequest(environ).get_headers())
    except Exception:  # Bolt's reading of odd fields, e.g. an "enterprise" that is a number
        raise Refused("400 Bad Request", "a body Bolt cannot read") from None


def _answer(start_response, status: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", "0")])
    return []


def _peer(environ) -> str:
    """The connection's address (waitress's, not a header the sender wrote)."""
    return str(environ.get("REMOTE_ADDR") or "an unknown address")
