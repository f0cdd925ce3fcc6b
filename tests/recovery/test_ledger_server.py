"""Recovery keeps its promises against the real servers (Dovecot, SMTP), with the commands as
an operator types them: after `mailbot erase`, the loss of the database and `mailbot
reconcile`, a new request gets a reference no citizen was ever told; after `mailbot restore`
of a backup older than the erasure and one pass, not one byte of the person is left in the
database's files (the search finds a control string that is there) nor in the mail store,
and `retention history` still lists the erasure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbot.app import App
from mailbot.db import backup
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox, maildir_for
from mailbot.settings import DatabaseSettings, Settings
from tests.conftest import (
    REPO,
    AppFactory,
    fresh_database,
    subprocess_environ,
    write_sandbox_config,
)
from tests.intake.test_spine import INFO, citizen_request, office

ANA, BOB, ZOE, DORA = (f"{name}@example.org" for name in ("ana", "bob", "zoe", "dora"))
ZOE_WORDS = ("Pelletier", "zircon-mot-unique", "Ma demande Zircon")
CONTROL = "quartz-mot-unique"


def mailstore_bytes(sandbox: Sandbox) -> bytes:
    """Every file of the mailboxes mailbot manages (messages, Dovecot's indexes and caches),
    but the erasure ledger's folder (references and keyed hashes, nothing personal)."""
    found = []
    for address in (INFO, "plaintes@mri.gouv.qc.ca"):
        root = maildir_for(sandbox.root, address).parent
        found += [
            path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and "registre-mailbot" not in str(path).lower()
        ]
    return b"\n".join(found).lower()


def messages_in_store(sandbox: Sandbox) -> bytes:
    """Every message (not index) of the mailboxes mailbot manages, the ledger's aside."""
    found = []
    for address in (INFO, "plaintes@mri.gouv.qc.ca"):
        root = maildir_for(sandbox.root, address).parent
        found += [
            path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
            and path.parent.name in ("cur", "new")
            and "registre-mailbot" not in str(path).lower()
        ]
    return b"\n".join(found).lower()


def refs(app: App) -> dict[str, str]:
    with app.engine.connect() as connection:
        found = connection.execute(sa.text("SELECT requester, ref FROM ticket"))
        return {requester: ref for requester, ref in found}


def three_requests(sandbox: Sandbox, make_app: AppFactory, custom: Settings) -> dict[str, str]:
    sandbox.accept_mail_for(ANA, BOB, ZOE, DORA)
    sandbox.deliver(
        INFO, citizen_request("<a@example.org>", sender=ANA), office("2025-11-03T10:00")
    )
    sandbox.deliver(
        INFO,
        citizen_request("<b@example.org>", sender=BOB, body=f"Bonjour {CONTROL}."),
        office("2025-11-03T10:01"),
    )
    zoe = citizen_request(
        "<z@example.org>", sender=ZOE, subject="Ma demande Zircon", body="zircon-mot-unique"
    ).replace("Josée Tremblay".encode(), "Zoé Pelletier".encode())
    sandbox.deliver(INFO, zoe, office("2025-11-03T10:02"))
    app = make_app("2025-11-03T10:05:00-05:00", custom)
    assert run_pass(app).ok
    told = refs(app)
    app.engine.dispose()
    return told


def command(
    config: Path, settings: Settings, now: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(config), "--now", now, *args],
        cwd=REPO,
        env=subprocess_environ(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_after_erase_and_the_database_lost_reconcile_never_gives_a_reference_twice(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    told = three_requests(sandbox, make_app, settings)
    assert told[ZOE] == "MRI-2025-00003"
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")

    erased = command(
        config,
        settings,
        "2025-11-04T10:00:00-05:00",
        "erase",
        "--requester",
        ZOE,
        "--reason",
        "demande 2025-090",
    )

    assert erased.returncode == 0, erased.stderr
    # No message in the store says her reference any more (Dovecot's index cache may keep
    # the Message-ID of an expunged message until it rewrites it: not read by a rebuild).
    assert b"mri-2025-00003" not in messages_in_store(sandbox)
    with fresh_database(tmp_path / "new" / "mailbot.db") as url:
        lost = settings.model_copy(update={"database": DatabaseSettings(url=url)})
        new_config = write_sandbox_config(
            tmp_path / "new.toml", sandbox, tmp_path / "new", database={"url": url}
        )
        rebuilt = command(new_config, lost, "2025-11-04T11:00:00-05:00", "reconcile")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "references continue after MRI-2025-00003" in rebuilt.stdout, rebuilt.stdout
        sandbox.deliver(
            INFO, citizen_request("<d@example.org>", sender=DORA), office("2025-11-04T11:01")
        )
        ran = command(new_config, lost, "2025-11-04T11:05:00-05:00", "run", "--once")
        assert ran.returncode == 0, ran.stderr

        app = make_app("2025-11-04T11:10:00-05:00", lost)
        assert refs(app) == {ANA: told[ANA], BOB: told[BOB], DORA: "MRI-2025-00004"}
        [ack] = sandbox.delivered_to(DORA)
        assert b"MRI-2025-00004" in ack
        app.engine.dispose()


def database_files(settings: Settings) -> bytes:
    database = backup.sqlite_path(settings.database_url)
    return b"".join(
        path.read_bytes().lower()
        for path in (
            database,
            *(database.with_name(database.name + s) for s in ("-wal", "-journal")),
        )
        if path.exists()
    )


def test_a_backup_older_than_an_erasure_restored_then_one_pass_leaves_no_byte_of_the_person(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("backup and restore copy a SQLite database (PostgreSQL: pg_dump)")
    three_requests(sandbox, make_app, settings)
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    night = tmp_path / "night.db"
    assert (
        command(config, settings, "2025-11-03T18:00:00-05:00", "backup", str(night)).returncode == 0
    )
    erased = command(
        config, settings, "2025-11-04T10:00:00-05:00", "erase", "--requester", ZOE, "--reason", "d"
    )
    assert erased.returncode == 0, erased.stderr
    everything = [word.lower().encode() for word in (ZOE, *ZOE_WORDS)]
    assert all(word in night.read_bytes().lower() for word in everything)  # the backup has her

    restored = command(
        config, settings, "2025-11-04T12:00:00-05:00", "restore", str(night), "--force"
    )
    ran = command(config, settings, "2025-11-04T12:05:00-05:00", "run", "--once")
    history = command(config, settings, "2025-11-04T12:06:00-05:00", "retention", "history")

    assert restored.returncode == 0, restored.stderr
    assert "ledger: 1 erasure(s) re-applied (of 1 on record)" in restored.stdout, restored.stdout
    assert "the database it replaced is kept at" in restored.stdout
    assert ran.returncode == 0, ran.stderr
    files = database_files(settings)
    assert CONTROL.encode() in files  # the search finds what is there
    assert [word for word in everything if word in files] == []
    store = mailstore_bytes(sandbox)
    assert CONTROL.encode() in store
    assert [word for word in everything if word in store] == []
    assert "erase" in history.stdout and "anonymised:MRI-2025-00003" in history.stdout
