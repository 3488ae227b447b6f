"""How Slack reaches the bot: Socket Mode (the default: an outbound WebSocket, no public
URL) or HTTP mode (Bolt's /slack/events behind the checks of front_door.py, served by
waitress, a production WSGI server, and nothing else on that port: health and metrics are on
the operations listener, ops.py). Either runs beside the scheduler and stops with it.
"""

import logging
import threading
import time

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from waitress.server import create_server

from voisobot.errors import VoisoBotError
from voisobot.logs import Quieted
from voisobot.slack.front_door import FrontDoor

log = logging.getLogger(__name__)
# slack_sdk's Socket Mode client logs each session's life at INFO; SocketMode says in one line
# when it is connected. Its reconnecting after a drop stays at INFO.
SOCKET_MODE_LOG = logging.getLogger("voisobot.socket_mode")
SOCKET_MODE_LOG.addFilter(Quieted(
    "A new session has been established", "Starting to receive messages from a new connection",
    "Stopped receiving messages from a connection", "The connection has been closed",
    "Using non-ssl socket to connect"))

EVENTS_PATH = "/slack/events"
RECONNECT_INITIAL_SECONDS = 2.0
RECONNECT_MAX_SECONDS = 120.0
CLOSE_WAIT_SECONDS = 5.0  # for slack_sdk's Socket Mode client to close, per try
# Slack refuses the app-level token for good: trying again changes nothing.
BAD_APP_TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "not_allowed_token_type",
                                  "token_revoked", "account_inactive", "missing_scope"})


class SlackConnectionError(VoisoBotError):
    pass


# --- HTTP mode ------------------------------------------------------------------------------

def wsgi_app(front_door: FrontDoor):
    """POST /slack/events to the front door (which checks each request, then hands it to
    Bolt); anything else 404 with its body unread."""

    def application(environ, start_response):
        if (environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")) == ("POST", EVENTS_PATH):
            return front_door(environ, start_response)
        return not_found(start_response)

    return application


def not_found(start_response) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", "9")])
    return [b"Not Found"]


class HttpServer:
    """waitress in a thread of this process, so the scheduler runs beside it."""

    def __init__(self, application, host: str, port: int, threads: int,
                 max_body_bytes: int, *, serves: str = f"HTTP mode: Slack requests to "
                 f"{EVENTS_PATH}", name: str = "http"):
        """Listens at once (an address in use raises OSError here); ``serves`` says what,
        in the log line of start()."""
        self.serves = serves
        # waitress refuses a body of max_request_body_size bytes or more with 413, a
        # chunked one as soon as it has read that much: one more than the front door's
        # limit, so that a body of exactly max_body_bytes passes both.
        self.server = create_server(application, host=host, port=port, threads=threads,
                                    max_request_body_size=max_body_bytes + 1,
                                    ident="voisobot")
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)
        self.stopped = False

    @property
    def port(self) -> int:
        return self.server.effective_port

    @property
    def url(self) -> str:
        return f"http://{self.server.effective_host}:{self.port}"

    def start(self) -> None:
        self.thread.start()
        log.info("%s on %s", self.serves, self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let requests in hand finish and their answers go out, then end
        the loop and close every socket.

        No socket is closed while waitress's loop may be waiting on it (select() on a
        closed descriptor kills the loop thread with EBADF): the channels leave the loop's
        map first, the loop is woken and sees an empty map, and only once it has ended
        are they closed. Stopping twice does nothing more."""
        if self.stopped:
            return
        self.stopped = True
        if not self.thread.is_alive():  # never started: no loop waits on the sockets
            self.server.task_dispatcher.shutdown(timeout=timeout)
            self.server.close()
            return
        server = self.server
        server.accepting = False
        server.del_channel()  # no new connection is accepted; the socket closes below
        server.task_dispatcher.shutdown(timeout=timeout)
        channels = list(server._map.values())
        _wait_until_flushed(channels, time.monotonic() + min(timeout, 2.0))
        server._map.clear()
        server.trigger.pull_trigger()  # wake the loop: it finds its map empty and returns
        self.thread.join(timeout)
        for channel in channels:
            channel.close()
        server.socket.close()


def _wait_until_flushed(channels: list, deadline: float) -> None:
    """Until the answers already written are sent (or the deadline)."""
    while any(getattr(channel, "total_outbufs_len", 0) for channel in channels) \
            and time.monotonic() < deadline:
        time.sleep(0.01)


# --- Socket Mode ----------------------------------------------------------------------------

class SocketMode:
    """The Socket Mode connection, opened in the background and retried with backoff, so
    a Slack outage at start-up does not stop the intake; a token Slack refuses is
    reported once in words and not retried."""

    def __init__(self, app: App, app_token: str):
        self.handler = SocketModeHandler(app, app_token, logger=SOCKET_MODE_LOG)
        self.stopping = threading.Event()
        self.connected = threading.Event()
        self.refused: str | None = None  # Slack's error, when it refused SLACK_APP_TOKEN
        self.thread = threading.Thread(target=self._connect, name="socket-mode", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _connect(self) -> None:
        delay = RECONNECT_INITIAL_SECONDS
        while not self.stopping.is_set():
            try:
                self.handler.connect()
            except SlackApiError as exc:
                code = exc.response.get("error", "")
                if code in BAD_APP_TOKEN_ERRORS:
                    self.refused = code
                    log.error("Slack refused SLACK_APP_TOKEN (%s): create an app-level token "
                              "with the connections:write scope (Basic Information → "
                              "App-Level Tokens) and restart; /voiso and the buttons are off "
                              "until then", code)
                    return
                log.warning("Socket Mode: Slack answered %s; retrying in %.1f s", code, delay)
            except Exception as exc:
                log.warning("Socket Mode: cannot reach Slack (%s); retrying in %.1f s",
                            exc, delay)
            else:
                self.connected.set()
                log.info("Socket Mode: connected; /voiso and the buttons are live")
                return
            self.stopping.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        if self.connected.is_set():
            self._close()

    def _close(self) -> None:
        """Close the Socket Mode client, without hanging the stop: slack_sdk's session runner
        clears its session's "terminated" flag when it starts a run, so a close that lands
        just before that leaves the runner reading a closed socket forever, and close()
        waiting for it. Closing runs on its own thread; if it has not finished in time, the
        flag is set again, which ends the runner's loop."""
        closer = threading.Thread(target=self.handler.close, name="socket-mode-close",
                                  daemon=True)
        closer.start()
        closer.join(CLOSE_WAIT_SECONDS)
        if closer.is_alive():
            self.handler.client.current_session_state.terminated = True
            closer.join(CLOSE_WAIT_SECONDS)
        if closer.is_alive():
            log.warning("Socket Mode: the connection did not close within %.0f s; stopping "
                        "without it", 2 * CLOSE_WAIT_SECONDS)
