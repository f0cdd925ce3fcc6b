"""Nothing lost even when the database is, against the real servers (Dovecot, SMTP): a
restore of last night's backup, or no backup at all, and the mail store brings back every
ticket under the reference its citizen was told, without a second acknowledgement, answer or
staff notice; a restore under a running daemon is refused; a daemon on a database behind its
mail store refuses to start and names `mailbot reconcile`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbot.app import App, build_app
from mailbot.cli import EXIT_BEHIND
from mailbot.clock import FixedClock
from mailbot.db import backup
from mailbot.ops.passes import run_pass
from mailbot.recovery.reconcile import reconcile
from mailbot.recovery.restore import restore
from mailbot.sandbox.cli import sandbox_environ
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import DatabaseSettings, Settings
from tests.conftest import (
    REPO,
    TEST_SIGNING_KEY,
    AppFactory,
    subprocess_environ,
    write_sandbox_config,
)
from tests.intake.test_spine import INFO, citizen_request, office
from tests.privacy.test_retention import notice_for, staff_reply

AGENT = "agent.info@mri.gouv.qc.ca"
ANA, BOB, CARL, DORA = (f"{name}@example.org" for name in ("ana", "bob", "carl", "dora"))


def refs(app: App) -> dict[str, str]:
    with app.engine.connect() as connection:
        found = connection.execute(sa.text("SELECT requester, ref FROM ticket"))
        return {requester: ref for requester, ref in found}


def status_of(app: App, ref: str) -> str:
    with app.engine.connect() as connection:
        return str(
            connection.execute(
                sa.text("SELECT status FROM ticket WHERE ref = :ref"), {"ref": ref}
            ).scalar_one()
        )


def sqlite_only(settings: Settings) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("backup and restore copy a SQLite database (PostgreSQL: pg_dump)")


def first_requests(sandbox: Sandbox, make_app: AppFactory, custom: Settings) -> None:
    sandbox.accept_mail_for(ANA, BOB, CARL, DORA)
    for n, citizen in enumerate((ANA, BOB)):
        sandbox.deliver(
            INFO,
            citizen_request(f"<req-{n}@example.org>", sender=citizen),
            received_at=office(f"2025-11-03T10:0{n}"),
        )
    run_pass(make_app("2025-11-03T10:05:00-05:00", custom))


def more_requests_and_an_answer(
    sandbox: Sandbox, make_app: AppFactory, custom: Settings
) -> dict[str, str]:
    """A third request (that arrived before the others: a slow relay) and a staff answer to
    the first; the references every citizen was told."""
    sandbox.deliver(
        INFO,
        citizen_request("<req-2@example.org>", sender=CARL),
        received_at=office("2025-11-03T09:30"),
    )
    app = make_app("2025-11-03T11:00:00-05:00", custom)
    run_pass(app)
    told = refs(app)
    notice = notice_for(sandbox, AGENT, told[ANA])
    sandbox.deliver(
        INFO,
        staff_reply(notice, "Voici la réponse.", AGENT, INFO, "<answer-1@mri.gouv.qc.ca>"),
        received_at=office("2025-11-03T11:01"),
    )
    run_pass(make_app("2025-11-03T11:05:00-05:00", custom))
    return told


def mail_received(sandbox: Sandbox) -> dict[str, int]:
    return {who: len(sandbox.delivered_to(who)) for who in (ANA, BOB, CARL, AGENT)}


def close(app: App) -> None:
    app.parse_ahead.close()
    app.engine.dispose()


def check_rebuilt(sandbox: Sandbox, app: App, told: dict[str, str], before: dict[str, int]) -> None:
    """Every ticket back under its reference, the answer recorded, nothing sent twice."""
    assert refs(app) == told
    assert status_of(app, told[ANA]) == "answered"
    assert mail_received(sandbox) == before
    assert before[ANA] == 2 and before[BOB] == before[CARL] == 1  # acks, and ANA's answer


def test_a_restored_backup_and_one_pass_bring_back_everything_sent_since(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    sqlite_only(settings)
    first_requests(sandbox, make_app, settings)
    night = tmp_path / "backups" / "night.db"
    backup.take_backup(settings.database_url, night, office("2025-11-03T10:30"))
    told = more_requests_and_an_answer(sandbox, make_app, settings)
    before = mail_received(sandbox)
    database = backup.sqlite_path(settings.database_url)
    # The disk is lost: the database and its write-ahead log with it.
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)

    restore(
        settings.database_url,
        night,
        office("2025-11-03T12:00"),
        lambda engine: build_app(
            settings,
            FixedClock(office("2025-11-03T12:00")),
            sandbox_environ(settings, {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY}),
            engine,
        ),
        force=False,
        other_instance=False,
    )
    app = make_app("2025-11-03T12:00:00-05:00")
    report = run_pass(app)

    assert report.ok, report.summary()
    check_rebuilt(sandbox, app, told, before)
    sandbox.deliver(
        INFO, citizen_request("<req-9@example.org>", sender=DORA), office("2025-11-03T12:01")
    )
    run_pass(make_app("2025-11-03T12:05:00-05:00"))
    assert refs(app)[DORA] == "MRI-2025-00004"
    assert len(sandbox.delivered_to(DORA)) == 1


def test_with_no_backup_reconcile_rebuilds_an_empty_database(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    first_requests(sandbox, make_app, settings)
    told = more_requests_and_an_answer(sandbox, make_app, settings)
    before = mail_received(sandbox)
    url = f"sqlite:///{tmp_path / 'new' / 'mailbot.db'}"
    empty = settings.model_copy(update={"database": DatabaseSettings(url=url)})
    config = write_sandbox_config(
        tmp_path / "mailbot.toml", sandbox, tmp_path / "new", database={"url": url}
    )
    command = [sys.executable, "-m", "mailbot", "--config", str(config)]
    environ = subprocess_environ(empty)
    at = ["--now", "2025-11-03T12:00:00-05:00"]

    refused = subprocess.run(
        [*command, *at, "run", "--once"], env=environ, capture_output=True, text=True, timeout=120
    )
    done = subprocess.run(
        [*command, *at, "reconcile"], env=environ, capture_output=True, text=True, timeout=300
    )

    assert refused.returncode == EXIT_BEHIND, refused.stderr
    assert "mailbot reconcile" in refused.stderr
    assert done.returncode == 0, done.stderr
    assert "4 message(s) brought back" in done.stdout
    app = make_app("2025-11-03T12:00:00-05:00", empty)
    run_pass(app)
    check_rebuilt(sandbox, app, told, before)
    sandbox.deliver(
        INFO, citizen_request("<req-9@example.org>", sender=DORA), office("2025-11-03T12:01")
    )
    run_pass(make_app("2025-11-03T12:05:00-05:00", empty))
    assert refs(app)[DORA] == "MRI-2025-00004"
    assert reconcile(app).replayed == 0  # again: nothing to bring back


def test_a_restore_under_a_running_daemon_is_refused(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    sqlite_only(settings)
    first_requests(sandbox, make_app, settings)
    night = tmp_path / "night.db"
    backup.take_backup(settings.database_url, night, office("2025-11-03T10:30"))
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    command = [sys.executable, "-m", "mailbot", "--config", str(config)]
    environ = subprocess_environ(settings)
    at = ["--now", "2025-11-03T12:00:00-05:00"]
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([*command, *at, "run"], env=environ, cwd=REPO, stderr=log)
    try:
        database = backup.sqlite_path(settings.database_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not backup.lock_path(database).exists():
            time.sleep(0.2)
        time.sleep(1)  # the lock file exists once the daemon holds it
        assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()

        refused = subprocess.run(
            [*command, "restore", str(night), "--force"],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert refused.returncode == 1, refused.stderr
        assert f"mailbot run (pid {daemon.pid}" in refused.stderr
        assert "systemctl stop mailbot" in refused.stderr
        assert "MRI-2025-00002" in refs(make_app("2025-11-03T12:00:00-05:00"))[BOB]
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
