"""The daemon on IMAP IDLE, against the real servers: new mail is answered without waiting for
the poll, a dropped IDLE connection loses nothing and repeats nothing, two instances share
the mailboxes, and a server without IDLE is polled."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbot.errors import ImapError
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from mailbot.transport.imap import ImapMailbox
from tests.conftest import REPO, AppFactory, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import INFO, citizen_request, parsed

pytestmark = pytest.mark.server

# The poll is far away: only IDLE can explain an answer within the test's patience.
FAR_POLL: dict[str, object] = {"poll_seconds": 600, "idle_renew_minutes": 1}
PATIENCE = 60.0


def citizen(n: int) -> str:
    return f"citoyen{n}@example.org"


def environ_for(settings: Settings) -> dict[str, str]:
    environ = subprocess_environ(settings)
    environ.pop("MAILBOT_DATABASE_URL", None)
    if not settings.database_url.startswith("sqlite"):
        environ["MAILBOT_DATABASE_URL"] = settings.database_url  # the test's PostgreSQL
    return environ


@contextmanager
def daemons(config: Path, environ: dict[str, str], count: int = 1) -> Iterator[Path]:
    """`count` daemons (`mailbot run`, real clock) on `config`; stopped with SIGTERM."""
    logs = [config.parent / f"daemon-{n}.log" for n in range(count)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
            cwd=REPO,
            env=environ,
            stderr=log.open("w"),
        )
        for log in logs
    ]
    try:
        # Every daemon started (migrations and the start-up check done, one after the other
        # on SQLite: a loaded machine may take a while), then a moment for IDLE.
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline and not all(
            "mailbot daemon started" in log.read_text() for log in logs
        ):
            assert all(process.poll() is None for process in processes), [
                log.read_text()[-3000:] for log in logs
            ]
            time.sleep(0.2)
        time.sleep(2)
        yield logs[0]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process, log in zip(processes, logs, strict=True):
            assert process.wait(60) == 0, log.read_text()[-3000:]


def acknowledgements(sandbox: Sandbox, people: list[str]) -> Counter[str]:
    """How many acknowledgements each request got (by its Message-ID)."""
    found: Counter[str] = Counter()
    for person in people:
        for raw in sandbox.delivered_to(person):
            found[str(parsed(raw)["In-Reply-To"])] += 1
    return found


def wait_for(sandbox: Sandbox, people: list[str], expected: int) -> Counter[str]:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        found = acknowledgements(sandbox, people)
        if sum(found.values()) >= expected:
            break
        time.sleep(0.2)
    time.sleep(1)  # anything sent twice would arrive now
    return acknowledgements(sandbox, people)


def test_new_mail_is_answered_at_once_without_waiting_for_the_poll(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    people = [citizen(n) for n in range(3)]
    sandbox.accept_mail_for(*people)
    config = write_sandbox_config(tmp_path / "m.toml", sandbox, tmp_path / "data", daemon=FAR_POLL)
    with daemons(config, environ_for(settings)) as log:
        for n, person in enumerate(people):
            sandbox.deliver(INFO, citizen_request(f"<idle-{n}@example.org>", sender=person))
            time.sleep(1)
        found = wait_for(sandbox, people, len(people))
    assert found == Counter({f"<idle-{n}@example.org>": 1 for n in range(3)}), log.read_text()


def test_an_idle_connection_dropped_mid_burst_loses_nothing_and_repeats_nothing(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    people = [citizen(n) for n in range(40)]
    sandbox.accept_mail_for(*people)
    config = write_sandbox_config(tmp_path / "m.toml", sandbox, tmp_path / "data", daemon=FAR_POLL)
    with daemons(config, environ_for(settings)) as log:
        for n, person in enumerate(people):
            sandbox.deliver(INFO, citizen_request(f"<burst-{n}@example.org>", sender=person))
            if n % 10 == 5:
                # The server drops every session of the mailbox: IDLE's and a pass's alike.
                sandbox.kick(INFO)
            time.sleep(0.05)
        found = wait_for(sandbox, people, len(people))
    assert len(found) == len(people), log.read_text()[-3000:]
    assert set(found.values()) == {1}
    assert "IDLE connection lost" in log.read_text()
    assert sandbox.fetch_all(INFO) == []


def test_two_instances_on_the_same_mailboxes_answer_each_request_once(
    sandbox: Sandbox, settings: Settings, tmp_path: Path
) -> None:
    people = [citizen(n) for n in range(30)]
    sandbox.accept_mail_for(*people)
    config = write_sandbox_config(tmp_path / "m.toml", sandbox, tmp_path / "data", daemon=FAR_POLL)
    environ = environ_for(settings)
    with daemons(config, environ, count=2):
        for n, person in enumerate(people):
            sandbox.deliver(INFO, citizen_request(f"<twice-{n}@example.org>", sender=person))
            time.sleep(0.1)
        found = wait_for(sandbox, people, len(people))
    assert len(found) == len(people)
    assert set(found.values()) == {1}
    url = environ.get("MAILBOT_DATABASE_URL") or f"sqlite:///{tmp_path / 'data' / 'mailbot.db'}"
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        tickets = connection.execute(sa.text("SELECT count(*) FROM ticket")).scalar_one()
        stored = connection.execute(sa.text("SELECT count(*) FROM inbound_message")).scalar_one()
    engine.dispose()
    assert (tickets, stored) == (len(people), len(people))


def test_a_server_without_idle_is_polled(settings: Settings, tmp_path: Path) -> None:
    from mailbot.sandbox.servers import make_sandbox_dir

    root = make_sandbox_dir("mailbot-no-idle-")
    with Sandbox(root=root, idle=False) as plain:
        plain.accept_mail_for(citizen(0))
        config = write_sandbox_config(
            tmp_path / "m.toml", plain, tmp_path / "data", daemon={"poll_seconds": 2}
        )
        with daemons(config, environ_for(settings)) as log:
            plain.deliver(INFO, citizen_request("<polled@example.org>", sender=citizen(0)))
            found = wait_for(plain, [citizen(0)], 1)
        assert found == Counter({"<polled@example.org>": 1})
        assert "offers no IDLE" in log.read_text()


@pytest.mark.parametrize("ending", ["stopped", "killed", "kicked"])
def test_an_idle_wait_ends_as_soon_as_the_server_goes_away(
    sandbox: Sandbox, make_app: AppFactory, ending: str
) -> None:
    # The renewal is far away: a dead connection must end the wait at once (the watcher then
    # reconnects with backoff), not keep it spinning on a closed socket until the renewal.
    app = make_app("2025-11-03T10:00:00-05:00")
    mailbox = app.settings.mailbox("renseignements")
    end = {"stopped": sandbox.stop_imap, "killed": sandbox.crash_imap}.get(
        ending, lambda: sandbox.kick(INFO)
    )
    with ImapMailbox(app.settings.imap, app.logins.imap(mailbox), app.clock.now()) as imap:
        imap.select(mailbox.folder)
        threading.Timer(1.0, end).start()
        began = time.monotonic()
        with pytest.raises(ImapError):
            imap.wait_for_mail(10 * PATIENCE, lambda: False)
    # Not a speed figure: a wait that ran to its deadline would take ten times as long.
    assert time.monotonic() - began < PATIENCE
