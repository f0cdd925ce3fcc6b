"""Several mailbots started together on one SQLite database never exit on a lock: a new file's
switch to WAL (which SQLite refuses at once, without waiting, to the second process) is
tried again; migrations and the start-up check take turns; a pass the database held busy is
tried again at once instead of waiting for the poll; only an error waiting does not cure
stops the daemon, and it says which. Two processes creating the same signing key agree."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbot.app import load_signing_key
from mailbot.db.store import is_busy, is_transient, make_engine
from mailbot.errors import DatabaseFailed
from mailbot.ops import daemon
from mailbot.ops.observe import Monitor
from mailbot.ops.passes import PassReport
from mailbot.ops.watch import PassRequests
from mailbot.settings import Settings
from tests.conftest import REPO, AppFactory


def test_a_new_file_being_switched_to_wal_by_another_process_is_waited_for(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mailbot.db"
    # Another process has just created the file and holds it while it writes its first page
    # (the moment two mailbots started together meet).
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE first_page (x)")
    refused = sqlite3.connect(path, isolation_level=None, timeout=5)
    with pytest.raises(sqlite3.OperationalError, match="locked") as plain:
        refused.execute("PRAGMA journal_mode=WAL")  # SQLite alone: refused at once
    refused.close()
    assert is_busy(plain.value)
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    began = time.monotonic()

    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()

    assert mode == "wal"
    assert time.monotonic() - began >= 0.4  # it waited for the other, and did not fail
    engine.dispose()
    other.close()


def test_busy_and_lost_servers_are_transient_a_damaged_file_is_not() -> None:
    locked = sa.exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
    damaged = sa.exc.DatabaseError("SELECT", {}, sqlite3.DatabaseError("disk image is malformed"))
    assert is_transient(locked) and is_busy(locked)
    assert not is_transient(damaged)
    assert not is_transient(ValueError("database is locked"))


STARTER = """
import sys, time
from mailbot.db.store import make_engine, migrate, one_at_a_time
url, go = sys.argv[1], float(sys.argv[2])
while time.time() < go:
    pass
with one_at_a_time(url):
    engine = make_engine(url)
    migrate(engine)
print("ok")
"""


@pytest.mark.server  # runs mailbot's start-up in separate processes
def test_two_processes_opening_a_new_database_at_the_same_instant_both_start(
    tmp_path: Path,
) -> None:
    for round_ in range(10):
        url = f"sqlite:///{tmp_path / str(round_) / 'mailbot.db'}"
        go = time.time() + 1.5  # both start their first statement at this instant
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", STARTER, url, str(go)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [process.communicate(timeout=120) for process in processes]
        assert [p.returncode for p in processes] == [0, 0], results
        assert [out for out, _err in results] == ["ok\n", "ok\n"]


def database_error(text: str) -> sa.exc.DBAPIError:
    kind = sa.exc.OperationalError if "locked" in text else sa.exc.DatabaseError
    orig = (sqlite3.OperationalError if "locked" in text else sqlite3.DatabaseError)(text)
    return kind("INSERT", {}, orig)


def test_a_pass_the_database_held_busy_is_tried_again_at_once_not_left_for_the_poll(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app("2025-11-03T10:00:00-05:00")
    requests, stop = PassRequests(), threading.Event()
    asked: list[object] = []

    def busy_once(
        _app: object, should_stop: object = None, *, mailboxes: object = None
    ) -> PassReport:
        asked.append(mailboxes)
        if len(asked) == 1:
            raise database_error("database is locked")
        stop.set()
        return PassReport()

    monkeypatch.setattr(daemon, "run_pass", busy_once)
    requests.mailbox("renseignements")  # IDLE saw a message land

    daemon._pass_loop(app, requests, stop, Monitor(app))

    assert len(asked) == 2 and asked[0] == asked[1]  # the same mailbox, asked again


def test_a_database_error_waiting_does_not_cure_stops_the_daemon_naming_it(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app("2025-11-03T10:00:00-05:00")
    requests, stop = PassRequests(), threading.Event()
    passes: list[int] = []

    def damaged(
        _app: object, should_stop: object = None, *, mailboxes: object = None
    ) -> PassReport:
        passes.append(1)
        requests.everything()  # the poll asks again
        raise database_error("database disk image is malformed")

    monkeypatch.setattr(daemon, "run_pass", damaged)
    requests.everything()

    with pytest.raises(DatabaseFailed, match="database disk image is malformed"):
        daemon._pass_loop(app, requests, stop, Monitor(app))

    assert len(passes) == daemon.UNRECOVERABLE_PASSES


def test_two_processes_making_the_signing_key_at_once_get_the_same_one(
    fast_settings: Settings,
) -> None:
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        keys.append(load_signing_key(fast_settings, {}))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8 and len(set(keys)) == 1 and len(keys[0]) >= 32
    assert [p.name for p in fast_settings.data_dir.iterdir()] == ["signing.key"]


@pytest.mark.server  # runs mailbot as a separate process
def test_a_daemon_stopped_while_it_waits_for_its_turn_to_start_exits_0(tmp_path: Path) -> None:
    import fcntl
    import os
    import signal

    from tests.cli.test_entry import offline_config

    database = tmp_path / "data" / "mailbot.db"
    config = offline_config(tmp_path, database={"url": f"sqlite:///{database}"})
    database.parent.mkdir(parents=True)
    turn = os.open(database.with_name("mailbot.db.start"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(turn, fcntl.LOCK_EX)  # another mailbot is starting
    environ = {
        **os.environ,
        "MAILBOT_SIGNING_KEY": "k" * 32,
        "MAILBOT_IMAP_PASSWORD_RENSEIGNEMENTS": "x",
        "MAILBOT_IMAP_PASSWORD_PLAINTES": "x",
    }
    environ.pop("MAILBOT_DATABASE_URL", None)
    log = tmp_path / "daemon.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=REPO,
            env=environ,
            stderr=handle,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "waiting for its turn" not in log.read_text():
            time.sleep(0.1)
        assert process.poll() is None, log.read_text()

        process.send_signal(signal.SIGTERM)

        assert process.wait(30) == 0, log.read_text()
        assert "while starting: stopped" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(turn)
