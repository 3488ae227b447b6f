"""One bot per store: an exclusive lock on a file beside the store, held while the bot runs.

Two bots on one store would both post every alert. The lock is flock(2) on ``<store>.lock``:
the kernel releases it when the process ends, however it ends (kill -9 and a crash
included), so a stale lock never keeps the next bot from starting. The file stays; while
locked it holds the PID and host of the bot holding it, for the second bot's message.
Commands that only read the store or queue work in it (``check``, ``render``,
``redeliver``) take no lock: SQLite lets them share the store with the running bot.
"""

import fcntl
import os
import socket
from pathlib import Path

from voisobot.errors import ConfigError, StoreInUse

SUFFIX = ".lock"


def lock_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + SUFFIX)


class StoreLock:
    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, store_path: Path) -> "StoreLock":
        """The store's lock, or StoreInUse naming the bot that holds it."""
        path = lock_path(store_path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"store.path: cannot create the lock file {path} beside the "
                              f"store ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreInUse(f"the store {store_path} is in use by another bot ({holder}, "
                             f"locking {path}): run one bot per store; stop that one, or give "
                             "this one a store of its own (store.path)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        """Let the next bot start (twice does nothing more)."""
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _holder(fd: int) -> str:
    """Who holds the lock, as the holder wrote it."""
    words = os.pread(fd, 300, 0).decode("utf-8", "replace").split()
    if len(words) != 2 or not words[0].isdigit():
        return "its PID is not written yet"
    return f"PID {words[0]} on {words[1]}"
