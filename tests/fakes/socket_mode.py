"""A fake Slack Socket Mode endpoint: a WebSocket server that hands envelopes to the app.

slack_sdk's built-in SocketModeClient reaches it through the URL that
``apps.connections.open`` returns (FakeSlack's ``socket_url``); on a port other than 443
the client speaks plain TCP, no TLS. Like Slack, the fake completes the handshake, says
hello, answers pings with pongs and close with close. A test sends an envelope (a slash
command, a button press, an event) to the newest connection and waits for the ack the
app sends back with the same envelope_id; every ack is recorded. On stop it says goodbye
with a close frame, so the client stops reading at once instead of spinning on a dead
socket (it reconnects later through ``apps.connections.open``; see ``stop``).
Standard library only: one thread accepts, one pings, one per connection reads.
"""

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid

# RFC 6455: the GUID the server appends to Sec-WebSocket-Key to prove it speaks WebSocket.
_WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR = 1001, 1002
_MAX_HANDSHAKE = 16 * 1024
# Short, so that stop() is prompt: accepts and stuck writes re-check the stop flag this often.
_POLL_SECONDS = 0.1
_JOIN_SECONDS = 2.0
# Slack sets accepts_response_payload on slash commands and on these interactive payloads
# (their ack may carry a response); everything else is acked empty.
_RESPONDING_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


class FakeSocketMode:
    def __init__(self, *, ping_interval: float | None = 0.2):
        """``ping_interval``: how often to ping every connection, as Slack does (None:
        never). Short by default for speed: a ping wakes the client's reader, which
        otherwise sits in a 3-second recv holding the lock that client.close() and a
        reconnect's handover wait for."""
        self.ping_interval = ping_interval
        self.acks: list[dict] = []  # every message with an envelope_id the client sent
        self.connections = 0  # handshakes completed (a reconnect counts again)
        self._acks_by_id: dict[str, dict] = {}
        self._peers: set[_Peer] = set()  # every open socket, handshaken or not
        self._live: list[_Peer] = []  # handshaken and greeted, oldest first
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._stopped = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_SECONDS)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="fake-socket-mode")
        self._pinger = threading.Thread(target=self._ping_loop, daemon=True,
                                        name="fake-socket-mode-ping")

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"ws://{host}:{port}/link?ticket=test"

    def start(self) -> "FakeSocketMode":
        self._acceptor.start()
        if self.ping_interval is not None:
            self._pinger.start()
        return self

    def stop(self) -> None:
        """Send close (1001) on every connection, then close them and the listener. The
        client's monitor (every ping_interval) then calls apps.connections.open and fails
        to connect until the client is closed: close the client first for quiet logs."""
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
            peers, live, threads = list(self._peers), set(self._live), list(self._threads)
        self._stopping.set()
        for peer in peers:  # a close frame only where the handshake made it WebSocket
            peer.close(CLOSE_GOING_AWAY if peer in live else None)
        for thread in (self._acceptor, self._pinger):
            if thread.is_alive():
                thread.join(_JOIN_SECONDS)
        self._listener.close()  # only now: closing under a thread in accept() is undefined
        for thread in threads:
            thread.join(_JOIN_SECONDS)

    def wait_connected(self, timeout: float = 5.0) -> bool:
        """Whether a client is connected (handshake done, hello sent), waiting up to
        ``timeout`` seconds for one."""
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._live), timeout)

    def send(self, type_: str, payload: dict, timeout: float = 5.0, *,
             accepts_response_payload: bool | None = None) -> dict | None:
        """Send an envelope of ``type_`` ("slash_commands", "interactive", "events_api")
        to the newest connection and return the client's ack, or None if no client is
        connected or no ack comes within ``timeout`` seconds (Slack itself waits 3)."""
        deadline = time.monotonic() + timeout
        envelope_id = str(uuid.uuid4())
        if accepts_response_payload is None:
            accepts_response_payload = type_ == "slash_commands" or (
                type_ == "interactive" and payload.get("type") in _RESPONDING_INTERACTIONS)
        envelope = {"envelope_id": envelope_id, "type": type_, "payload": payload,
                    "accepts_response_payload": accepts_response_payload}
        if type_ == "events_api":  # Slack adds these to events only
            envelope.update(retry_attempt=0, retry_reason="")
        if not self._send_text(envelope, timeout):
            return None
        with self._cond:
            self._cond.wait_for(lambda: envelope_id in self._acks_by_id,
                                max(0.0, deadline - time.monotonic()))
            return self._acks_by_id.get(envelope_id)

    def disconnect(self, reason: str = "refresh_requested", timeout: float = 5.0) -> bool:
        """Ask the newest client to reconnect, as Slack does before it recycles a
        connection: the client opens a new one (apps.connections.open again), then drops
        this one without a close frame. False if no client is connected."""
        return self._send_text({"type": "disconnect", "reason": reason,
                                "debug_info": {"host": "applink-fake"}}, timeout)

    # --- connections ------------------------------------------------------------------

    def _send_text(self, message: dict, timeout: float) -> bool:
        if not self.wait_connected(timeout):
            return False
        with self._cond:
            peer = self._live[-1] if self._live else None
        if peer is None:
            return False
        try:
            peer.send(OP_TEXT, json.dumps(message).encode())
        except OSError:
            return False  # the client dropped the connection meanwhile
        return True

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer = _Peer(sock, self._stopping)
            thread = threading.Thread(target=self._serve, args=(peer,), daemon=True,
                                      name="fake-socket-mode-peer")
            with self._cond:
                if self._stopped:  # accepted while stop() was running
                    peer.close()
                    return
                self._peers.add(peer)
                self._threads.append(thread)
            thread.start()

    def _ping_loop(self) -> None:
        while not self._stopping.wait(self.ping_interval):
            with self._cond:
                peers = list(self._live)
            for peer in peers:
                with contextlib.suppress(OSError):  # its reader thread sees the loss
                    peer.send(OP_PING, b"fake-ping")

    def _serve(self, peer: "_Peer") -> None:
        try:
            answer = _handshake(peer)
            if answer is not None:
                self._greet(peer, answer)
                self._read_frames(peer)
        except (OSError, ValueError):
            pass  # the client went away, or stop() shut the socket
        finally:
            with self._cond:
                self._peers.discard(peer)
                if peer in self._live:
                    self._live.remove(peer)
                self._cond.notify_all()
            peer.close()

    def _greet(self, peer: "_Peer", answer: bytes) -> None:
        with self._cond:
            self.connections += 1
        # What Slack sends first; the client ignores it, but a test may read the log.
        hello = {"type": "hello", "num_connections": 1,
                 "debug_info": {"host": "applink-fake", "build_number": 1,
                                "approximate_connection_time": 18060},
                 "connection_info": {"app_id": "A_TEST"}}
        peer.send(OP_TEXT, json.dumps(hello).encode(), preamble=answer)
        with self._cond:
            self._live.append(peer)
            self._cond.notify_all()

    def _read_frames(self, peer: "_Peer") -> None:
        message = b""
        while True:
            fin, opcode, masked, data = _read_frame(peer)
            if not masked:  # RFC 6455 5.1: a server must fail an unmasked client frame
                peer.send(OP_CLOSE, struct.pack("!H", CLOSE_PROTOCOL_ERROR))
                return
            if opcode == OP_PING:
                peer.send(OP_PONG, data)  # the client's stale check wants its payload back
            elif opcode == OP_CLOSE:
                peer.send(OP_CLOSE, data[:2])  # echo the status code, then hang up
                return
            elif opcode in (OP_TEXT, OP_CONTINUATION):
                message += data
                if fin:
                    self._received(message)
                    message = b""

    def _received(self, text: bytes) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        with self._cond:
            self.acks.append(message)
            self._acks_by_id[message["envelope_id"]] = message
            self._cond.notify_all()


class _Peer:
    """One client socket: bytes received but not parsed yet, and a send lock so that the
    reader's pongs and a test's envelopes never interleave mid-frame."""

    def __init__(self, sock: socket.socket, stopping: threading.Event):
        sock.settimeout(_POLL_SECONDS)
        self.sock = sock
        self._stopping = stopping
        self._buffer = b""
        self._send_lock = threading.Lock()

    def read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read_until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self._buffer:
            if len(self._buffer) > limit:
                raise ValueError("no end of headers")
            self._fill()
        data, _, self._buffer = self._buffer.partition(marker)
        return data

    def _fill(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                # Reading on: stop() ends a read by shutdown, after its close frame. A
                # reader that quit on the stop flag could close the socket before that.
                continue
            if not chunk:
                raise ConnectionResetError("closed by the client")
            self._buffer += chunk
            return

    def send(self, opcode: int, data: bytes, *, preamble: bytes = b"") -> None:
        # Not sendall(): with a timeout it gives up on a big frame the client reads slowly.
        remaining = memoryview(preamble + _frame(opcode, data))
        with self._send_lock:
            while remaining:
                try:
                    remaining = remaining[self.sock.send(remaining):]
                except TimeoutError:
                    if self._stopping.is_set():
                        raise ConnectionAbortedError("stopping") from None

    def close(self, code: int | None = None) -> None:
        """Say goodbye with ``code`` if given (best effort), then close. shutdown() first:
        it wakes the reader thread, which close() alone may not."""
        if code is not None:
            with contextlib.suppress(OSError):
                self.send(OP_CLOSE, struct.pack("!H", code))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _handshake(peer: _Peer) -> bytes | None:
    """Read the HTTP upgrade request; return the 101 answer, to be sent in one write
    with the hello frame. One write matters: the client reads the answer a byte at a
    time up to the blank line's CR and leaves the LF for its frame reader, which copes
    with it only when a frame comes in the same read. None (after a 400) if it is not a
    WebSocket upgrade."""
    head = peer.read_until(b"\r\n\r\n", _MAX_HANDSHAKE).decode("latin-1")
    request_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    key = headers.get("sec-websocket-key")
    if not request_line.startswith("GET ") or not key \
            or headers.get("upgrade", "").lower() != "websocket":
        peer.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return None
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {_accept_key(key)}\r\n\r\n").encode()


def _accept_key(key: str) -> str:
    digest = hashlib.sha1((key + _WEBSOCKET_GUID).encode()).digest()
    return base64.b64encode(digest).decode()


def _frame(opcode: int, data: bytes) -> bytes:
    """A final, unmasked frame (servers must not mask), with the shortest length form."""
    first = bytes([0x80 | opcode])
    if len(data) < 126:
        return first + bytes([len(data)]) + data
    if len(data) < 1 << 16:
        return first + struct.pack("!BH", 126, len(data)) + data
    return first + struct.pack("!BQ", 127, len(data)) + data


def _read_frame(peer: _Peer) -> tuple[bool, int, bool, bytes]:
    """(fin, opcode, masked, unmasked payload) of the next frame."""
    first, second = peer.read(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", peer.read(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", peer.read(8))
    masked = bool(second & 0x80)
    mask = peer.read(4) if masked else b""
    data = peer.read(size)
    if masked:  # XOR as one big integer: a byte loop is slow on 64-bit-length frames
        repeated = (mask * (size // 4 + 1))[:size]
        data = (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
            size, "big")
    return bool(first & 0x80), first & 0x0F, masked, data
