"""One bot per store: a second runtime on the same store refuses to start, naming the store
and the PID holding it; a clean stop, a failed start and kill -9 all let the next one start;
commands that share the store with a running bot take no lock."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_bot import count, send_unique_events, wait_for, write_config
from voisobot import cli, config, runtime
from voisobot.errors import ConfigError, StoreInUse
from voisobot.store_lock import StoreLock, lock_path

ROOT = Path(__file__).resolve().parents[2]


def make_cfg(tmp_path, store: str = "store.sqlite3") -> config.Config:
    return config.from_dict({"sqs": {"queue_url": "http://127.0.0.1:9/000000000000/q",
                                     "endpoint_url": "http://127.0.0.1:9"},
                             "store": {"path": store}, "ops": {"port": 0}}, base_dir=tmp_path)


def in_use_message(store) -> str:
    return (f"the store {store} is in use by another bot (PID {os.getpid()} on "
            f"{socket.gethostname()}, locking {store}.lock): run one bot per store; stop that "
            "one, or give this one a store of its own (store.path)")


def test_a_second_runtime_on_one_store_refuses_naming_the_store_and_the_pid(tmp_path):
    cfg = make_cfg(tmp_path)
    first = runtime.build(cfg)
    try:
        with pytest.raises(StoreInUse) as refused:
            runtime.build(cfg)
        assert str(refused.value) == in_use_message(cfg.store_path)
        assert lock_path(cfg.store_path).read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    finally:
        first.stop()


def test_two_runtimes_on_two_stores_both_run(tmp_path):
    first, second = runtime.build(make_cfg(tmp_path)), runtime.build(make_cfg(tmp_path, "b.db"))
    first.stop()
    second.stop()


def test_a_clean_stop_releases_the_store(tmp_path):
    cfg = make_cfg(tmp_path)
    first = runtime.build(cfg)
    first.start()
    first.stop()
    first.stop()  # twice does nothing more
    second = runtime.build(cfg)
    second.stop()
    assert lock_path(cfg.store_path).read_text() == ""  # no holder named after a clean stop


def test_a_runtime_that_fails_to_build_releases_the_store(tmp_path):
    cfg = make_cfg(tmp_path, "a-directory")
    (tmp_path / "a-directory").mkdir()  # SQLite cannot open it
    with pytest.raises(Exception, match="unable to open database file"):
        runtime.build(cfg)
    StoreLock.acquire(cfg.store_path).release()


def test_a_store_in_a_missing_directory_is_a_config_error_naming_the_lock_file(tmp_path):
    cfg = make_cfg(tmp_path, "no/such/dir/store.sqlite3")
    with pytest.raises(ConfigError, match=r"store\.path: cannot create the lock file "
                       r".*/no/such/dir/store\.sqlite3\.lock beside the store"):
        runtime.build(cfg)


def test_commands_that_share_the_store_take_no_lock(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[sqs]\nqueue_url = "http://127.0.0.1:9/000000000000/q"\n'
                    'endpoint_url = "http://127.0.0.1:9"\n[store]\npath = "store.sqlite3"\n',
                    encoding="utf-8")
    running = runtime.build(config.load(path))
    try:
        assert cli.main(["--config", str(path), "redeliver"], {}) == 0
        assert cli.main(["--config", str(path), "render", "user/user_added"], {}) == 0
        cli.main(["--config", str(path), "check"], {})
        assert "in use" not in "".join(capsys.readouterr())
        with pytest.raises(StoreInUse):  # and the running bot still holds it
            StoreLock.acquire(running.config.store_path)
    finally:
        running.stop()


# --- bot.py run, as deployed ---------------------------------------------------------------

def start_worker(path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "bot.py", "--config", str(path), "run"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_second_bot_py_run_refuses_and_one_starts_after_kill_9(
        sqs_admin, make_queue, moto_server, tmp_path):
    queue_url = make_queue(VisibilityTimeout=1)
    path = write_config(tmp_path, queue_url, moto_server["url"])
    store = tmp_path / "store.sqlite3"
    first = start_worker(path)
    try:
        send_unique_events(sqs_admin, queue_url, 1)
        wait_for(lambda: count(store, "events") == 1, what="the first bot at work")
        second = subprocess.run([sys.executable, "bot.py", "--config", str(path), "run"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines()[-1] == (
            f"error: the store {store} is in use by another bot (PID {first.pid} on "
            f"{socket.gethostname()}, locking {store}.lock): run one bot per store; stop that "
            "one, or give this one a store of its own (store.path)")
        assert first.poll() is None, "the first bot must go on"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        third = start_worker(path)
        try:
            send_unique_events(sqs_admin, queue_url, 2)
            wait_for(lambda: count(store, "events") == 3, what="the bot after kill -9 at work")
            assert third.poll() is None
        finally:
            third.terminate()
            _, err = third.communicate(timeout=30)
        assert third.returncode == 0, err
    finally:
        first.kill()
