"""Killed with SIGKILL mid-pass and restarted: every request still gets exactly one ack."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from tests.conftest import REPO, AppFactory, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of

REQUESTS = 240


def stored_count(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM inbound_message").fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet


def stored_counter(url: str) -> Callable[[], int]:
    """How many messages the test's database holds: the SQLite file read-only, or the
    PostgreSQL database (the PostgreSQL rerun, where the subprocess writes there)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return lambda: stored_count(path)
    import sqlalchemy as sa

    engine = sa.create_engine(url, pool_size=1)

    def count() -> int:
        try:
            with engine.connect() as connection:
                query = sa.text("SELECT count(*) FROM inbound_message")
                return int(connection.execute(query).scalar_one())
        except sa.exc.ProgrammingError:
            return 0  # the schema is not there yet

    return count


def children_of(pid: int) -> list[int]:
    """The processes `pid` started that still run (the parsing worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and f"\nPPid:\t{pid}\n" in _status(entry.name):
            found.append(int(entry.name))
    return found


def _status(pid: str) -> str:
    try:
        return (Path("/proc") / pid / "status").read_text()
    except OSError:  # gone meanwhile
        return ""


def ended(pid: int) -> bool:
    status = _status(str(pid))
    return not status or "\nState:\tZ" in status  # a zombie has ended


@pytest.mark.parametrize(
    ("fetch_batch", "kill_after"),
    [(20, 25), (100, 1)],
    ids=["between-batches", "inside-a-batch"],
)
def test_sigkill_in_the_middle_of_a_pass_loses_nothing_and_sends_nothing_twice(
    sandbox: Sandbox, settings: Settings, tmp_path: Path, fetch_batch: int, kill_after: int
) -> None:
    """Killed again and again while it stores messages: between fetched batches, or inside
    one (a batch of 100 is stored in transactions of 20 and moved once all are committed, so
    a kill just after a commit leaves stored messages unmoved and the next transaction open)."""
    for n in range(REQUESTS):
        sandbox.deliver(
            INFO, citizen_request(f"<req-{n}@example.org>"), received_at=office("2025-11-03T10:00")
        )
    data = tmp_path / "data"
    config = write_sandbox_config(
        tmp_path / "mailbot.toml",
        sandbox,
        data,
        daemon={"fetch_batch": fetch_batch},
        classification={"per_address_daily_limit": 10_000, "burst_limit": 10_000},
    )
    command = [
        sys.executable,
        "-m",
        "mailbot",
        "--config",
        str(config),
        "--now",
        "2025-11-03T10:05:00-05:00",
        "run",
        "--once",
    ]
    environ = subprocess_environ(settings)
    stored = stored_counter(settings.database_url)
    kills = 0
    workers: list[int] = []
    for _attempt in range(40):
        before = stored()
        process = subprocess.Popen(
            command, cwd=REPO, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Let it store a few more messages, then kill it without warning.
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            count = stored()
            # Kill during ingestion only: a kill between the SMTP server's 250 and our commit
            # is the one window where a resend (same Message-ID) is possible; see README.
            if before + kill_after <= count < REQUESTS:
                workers += children_of(process.pid)
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        if process.wait(60) == 0:
            break
    else:
        raise AssertionError("mailbot never completed a pass")

    assert kills >= 2, "the test must interrupt the pass mid-batch at least twice"
    if fetch_batch > 20:  # batches of several chunks: the parsing worker was at work
        assert workers, "the parsing worker was never seen"
    deadline = time.monotonic() + 10
    while not all(ended(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(ended(pid) for pid in workers), "a parsing worker outlived its killed mailbot"
    assert stored() == REQUESTS
    assert sandbox.fetch_all(INFO) == []
    acks = [parsed(raw) for raw in sandbox.fetch_all(CITIZEN)]
    per_request = Counter(str(ack["In-Reply-To"]) for ack in acks)
    assert len(per_request) == REQUESTS
    assert set(per_request.values()) == {1}


# A process that leases every due outbox row as mailbot's sender does, then hangs: killed
# with SIGKILL, it leaves the rows leased and unsent, as a crash mid-relay does.
LEASE_HOLDER = """
import sys, time
from datetime import datetime, timedelta
from mailbot.db import outbox_rows
from mailbot.sending.leases import lease_owner
from mailbot.db.store import make_engine

now = datetime.fromisoformat(sys.argv[2])
with make_engine(sys.argv[1]).begin() as connection:
    until = now + timedelta(minutes=10)
    leased = outbox_rows.lease(connection, now, until, lease_owner(), 100, paced=None)
print(len(leased), flush=True)
time.sleep(600)
"""


def test_after_a_kill_mid_relay_the_reply_is_resent_at_the_next_start_with_its_answer_time(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings
) -> None:
    from tests.staff.test_staff_server import citizen_replies, open_ticket, staff_reply, ticket_row

    _app, notice = open_ticket(sandbox, make_app)
    sandbox.deliver(INFO, staff_reply(notice, "La bourse est offerte."), office("2025-11-04T09:00"))
    sandbox.stop_smtp()  # the reply is applied and queued at 09:05; the relay is down
    run_pass(make_app("2025-11-04T09:05:00-05:00"))
    sandbox.start_smtp()
    holder = subprocess.Popen(
        [sys.executable, "-c", LEASE_HOLDER, settings.database_url, "2025-11-04T14:10:00+00:00"],
        cwd=REPO,
        env=subprocess_environ(settings),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and int(holder.stdout.readline()) >= 1
        # A live process's lease is not taken (a second instance on the same database).
        run_pass(make_app("2025-11-04T09:11:00-05:00"))
        assert citizen_replies(sandbox) == []
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)

    # The next start, well within the dead process's 10-minute lease, sends the reply.
    app = make_app("2025-11-04T09:12:00-05:00")
    run_pass(app)

    [reply] = citizen_replies(sandbox)
    assert "La bourse est offerte." in text_of(parsed(reply))
    answered = ticket_row(app).answered_at
    assert answered is not None and answered.isoformat() == "2025-11-04T14:05:00+00:00"
