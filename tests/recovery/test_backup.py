"""`mailbot backup` and `mailbot restore`: a copy that says what it is and carries a checksum;
a restore that is refused under any other mailbot command (naming it), over newer data, for a
damaged copy (the database in place untouched) and for another instance's copy; the database
it replaces kept beside it; PostgreSQL refused with the right tools named."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mailbot.app import App, build_app
from mailbot.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, main
from mailbot.cli.commands import COMMANDS
from mailbot.clock import FixedClock, parse_instant
from mailbot.db import backup
from mailbot.db.store import schema_revision
from mailbot.intake.ingest import IngestReport, ingest_mailbox
from mailbot.ops.passes import run_pass
from mailbot.recovery.restore import AppOn, RestoreReport, restore
from mailbot.settings import DatabaseSettings, Settings
from tests.conftest import TEST_SIGNING_KEY, AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import at, header, request


@pytest.fixture(autouse=True)
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `mailbot` run in-process finds in its environment (no server answers anyway)."""
    monkeypatch.setenv("MAILBOT_SIGNING_KEY", TEST_SIGNING_KEY)
    for name in ("RENSEIGNEMENTS", "PLAINTES"):
        monkeypatch.setenv(f"MAILBOT_IMAP_PASSWORD_{name}", "x")


def tickets(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(sa.text("SELECT ref FROM ticket"))]
    finally:
        engine.dispose()


def app_on(settings: Settings, memory: MemoryMailboxes, relay: RecordingSender, now: str) -> AppOn:
    """What `mailbot restore` builds on the copy, with the test's in-memory servers."""

    def build(engine: Engine) -> App:
        return build_app(
            settings,
            FixedClock(parse_instant(now)),
            {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY},
            engine,
            open_mailbox=memory,
            sender=relay,
        )

    return build


def restore_here(
    settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    path: Path,
    now: str = "2025-11-03T12:00:00-05:00",
    **options: Any,
) -> RestoreReport:
    return restore(
        settings.database_url,
        path,
        parse_instant(now),
        app_on(settings, memory, relay, now),
        force=options.get("force", False),
        other_instance=options.get("other_instance", False),
    )


def test_a_backup_records_what_it_is_and_a_restore_brings_it_back_keeping_the_one_it_replaces(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    url = fast_settings.database_url
    memory["renseignements"].deliver(request("<a@example.org>"), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    copy = tmp_path / "backups" / "night.db"

    facts = backup.take_backup(url, copy, app.clock.now())

    assert facts.schema == schema_revision(app.engine)
    assert len(facts.instance) == 32 and len(facts.checksum) == 64
    assert backup.backup_facts(copy) == facts
    memory["renseignements"].deliver(request("<b@example.org>"), at("2025-11-03T11:00"))
    run_pass(make_app("2025-11-03T11:01:00-05:00"))
    app.engine.dispose()
    assert tickets(url) == ["MRI-2025-00001", "MRI-2025-00002"]
    # The database holds newer data than the copy: refused unless forced.
    with pytest.raises(backup.BackupRefused, match="newer"):
        restore_here(fast_settings, memory, relay, copy)
    assert tickets(url) == ["MRI-2025-00001", "MRI-2025-00002"]

    done = restore_here(fast_settings, memory, relay, copy, force=True)

    assert tickets(url) == ["MRI-2025-00001"]
    database = backup.sqlite_path(url)
    assert done.kept == database.with_name("mailbot.db.before-restore-20251103T170000Z")
    assert tickets(f"sqlite:///{done.kept}") == ["MRI-2025-00001", "MRI-2025-00002"]
    assert any(f"kept at {done.kept}" in line for line in done.lines())
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        pending = connection.execute(
            sa.text("SELECT value FROM service_meta WHERE key = :key"),
            {"key": backup.RECONCILE_PENDING},
        ).scalar()
        instance = connection.execute(
            sa.text("SELECT value FROM service_meta WHERE key = 'instance_id'")
        ).scalar()
        has_facts = sa.inspect(connection).has_table(backup.BACKUP_TABLE)
    engine.dispose()
    assert pending is not None and "restored" in pending
    assert instance == facts.instance
    assert not has_facts


def test_a_restore_is_refused_while_a_mailbot_holds_the_database_and_says_which(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    url = fast_settings.database_url
    app = make_app("2025-11-03T10:01:00-05:00")
    copy = tmp_path / "night.db"
    backup.take_backup(url, copy, app.clock.now())
    database = backup.sqlite_path(url)

    with backup.running_lock(url), pytest.raises(backup.DatabaseInUse) as refused:
        restore_here(fast_settings, memory, relay, copy, force=True)

    assert f"mailbot run (pid {os.getpid()}" in str(refused.value)
    assert "systemctl stop mailbot" in str(refused.value)
    lock = backup.DatabaseLock(database).hold_exclusive()
    lock.release()
    assert backup.living_holders(database) == []  # released: nobody is named any more


def test_a_holder_killed_without_releasing_is_not_named(tmp_path: Path) -> None:
    database = tmp_path / "mailbot.db"
    folder = backup.holders_path(database)
    folder.mkdir()
    (folder / "4242-dead").write_text("mailbot erase (pid 4242, user x)")  # nobody locks it

    assert backup.living_holders(database) == []
    assert not (folder / "4242-dead").exists()


def test_a_backup_from_a_newer_mailbot_is_refused(
    make_app: AppFactory, fast_settings: Settings, tmp_path: Path
) -> None:
    url = fast_settings.database_url
    app = make_app("2025-11-03T10:01:00-05:00")
    copy = tmp_path / "night.db"
    backup.take_backup(url, copy, app.clock.now())

    with pytest.raises(backup.BackupRefused, match="newer version"):
        backup.restore_backup(
            url,
            copy,
            app.clock.now(),
            force=True,
            known_schemas=frozenset(),
            prepare=lambda _copy, _facts: None,
        )


def page_size(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:18], "big") or 65536


def everything_of(path: Path) -> dict[str, bytes]:
    """The database in place, byte for byte, with its write-ahead log."""
    return {
        suffix: path.with_name(path.name + suffix).read_bytes()
        for suffix in ("", "-wal")
        if path.with_name(path.name + suffix).exists()
    }


@pytest.mark.parametrize("damage", ["three pages overwritten", "one byte of a message"])
def test_a_damaged_backup_is_refused_and_the_database_in_place_is_unchanged(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
    damage: str,
) -> None:
    url = fast_settings.database_url
    for n in range(12):  # enough pages that three in the middle are data
        memory["renseignements"].deliver(
            request(f"<r{n}@example.org>", body="bourses " * 400), at("2025-11-03T10:00")
        )
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    copy = tmp_path / "night.db"
    backup.take_backup(url, copy, app.clock.now())
    app.engine.dispose()
    data = bytearray(copy.read_bytes())
    if damage == "three pages overwritten":
        size = page_size(copy)
        middle = len(data) // size // 2
        for page in (middle - 1, middle, middle + 1):
            data[page * size : (page + 1) * size] = os.urandom(size)
    else:
        # A byte of a stored message: SQLite's integrity check does not read the bytes of a
        # value, the checksum does.
        spot = bytes(data).index(b"bourses bourses bourses")
        data[spot] = ord("B")
    copy.write_bytes(bytes(data))
    database = backup.sqlite_path(url)
    before = everything_of(database)

    with pytest.raises(backup.BackupRefused, match="damaged"):
        restore_here(fast_settings, memory, relay, copy, force=True)

    assert everything_of(database) == before
    assert not list(database.parent.glob("*.before-restore-*"))
    assert not list(database.parent.glob(".mailbot.db.restoring*"))


def other_instance_backup(
    make_app: AppFactory, fast_settings: Settings, memory: MemoryMailboxes, tmp_path: Path
) -> Path:
    """A backup of another instance (its own database, its own id) with a queued message,
    and this instance's database in place."""
    url = f"sqlite:///{tmp_path / 'other' / 'mailbot.db'}"
    elsewhere = fast_settings.model_copy(update={"database": DatabaseSettings(url=url)})
    memory["renseignements"].deliver(request("<theirs@example.org>"), at("2025-11-03T10:00"))
    theirs = make_app("2025-11-03T10:01:00-05:00", elsewhere)
    # Stored and answered in the outbox, not sent yet.
    ingest_mailbox(theirs, theirs.settings.mailbox("renseignements"), IngestReport(), never)
    copy = tmp_path / "theirs.db"
    backup.take_backup(elsewhere.database_url, copy, theirs.clock.now())
    theirs.engine.dispose()
    make_app("2025-11-03T09:00:00-05:00").engine.dispose()  # this instance's database
    return copy


def never() -> bool:
    return False


def outbox_states(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(sa.text("SELECT state, last_error FROM outbox"))
            return [(str(state), str(error)) for state, error in found]
    finally:
        engine.dispose()


def test_another_instances_backup_is_refused_and_with_other_instance_its_mail_is_held(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    copy = other_instance_backup(make_app, fast_settings, memory, tmp_path)
    url = fast_settings.database_url
    ours = backup.database_instance(backup.sqlite_path(url))
    theirs = backup.backup_facts(copy).instance
    assert ours and theirs and ours != theirs
    before = everything_of(backup.sqlite_path(url))

    with pytest.raises(backup.BackupRefused, match="another instance") as refused:
        restore_here(fast_settings, memory, relay, copy, force=True)

    assert theirs in str(refused.value) and "--other-instance" in str(refused.value)
    assert everything_of(backup.sqlite_path(url)) == before

    done = restore_here(fast_settings, memory, relay, copy, force=True, other_instance=True)

    said = "\n".join(done.lines())
    assert "2 queued message(s) are held, not sent" in said, said
    assert {state for state, _error in outbox_states(url)} == {"held"}
    assert all("another instance" in error for _state, error in outbox_states(url))
    assert backup.database_instance(backup.sqlite_path(url)) == ours
    app = make_app("2025-11-03T12:00:00-05:00")
    run_pass(app)
    # Neither their acknowledgement nor their staff notice left (this instance's own digest
    # of the morning does).
    purposes = [header(sent.raw, "X-Mailbot-Purpose") for sent in relay.sent]
    assert "acknowledgement" not in purposes and "notice" not in purposes, purposes


def test_backup_on_postgresql_is_refused_naming_its_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.test_entry import offline_config

    config = offline_config(
        tmp_path, database={"url": "postgresql+psycopg://mailbot@127.0.0.1:1/mailbot"}
    )
    monkeypatch.setenv("MAILBOT_SIGNING_KEY", "k" * 32)

    code = main(["--config", str(config), "backup", str(tmp_path / "copy.db")])

    assert code == EXIT_CONFIG
    error = capsys.readouterr().err
    assert "pg_dump" in error and "continuous archiving" in error


def test_the_commands_write_and_restore_a_copy(
    make_app: AppFactory,
    fast_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.cli.test_entry import offline_config

    config = offline_config(tmp_path, database={"url": fast_settings.database_url})
    make_app("2025-11-03T10:01:00-05:00").engine.dispose()
    copy = tmp_path / "copy.db"

    assert main(["--config", str(config), "backup", str(copy)]) == EXIT_OK
    assert "checksum sha256:" in capsys.readouterr().out
    assert main(["--config", str(config), "backup", str(copy)]) == EXIT_CONFIG
    code = main(["--config", str(config), "restore", str(copy)])
    said = capsys.readouterr()
    # No mail server to read the ledger from: restored all the same, and it says so.
    assert code == EXIT_OK, said.err
    assert "next pass reconciles" in said.out and "ledger not read" in said.out
    assert "the database it replaced is kept at" in said.out
    with backup.running_lock(fast_settings.database_url):
        assert main(["--config", str(config), "restore", str(copy)]) == EXIT_FAILURE


# --- one writer at a restore: every command that writes holds the database -------------------


# Each command as typed, and the function it runs while it holds the database.
WRITERS: dict[str, tuple[list[str], str]] = {
    "run": (["run", "--once"], "mailbot.ops.daemon.run_once"),
    "reconcile": (["reconcile"], "mailbot.recovery.reconcile.reconcile"),
    "erase": (
        ["erase", "--requester", "a@example.org", "--reason", "demande 1"],
        "mailbot.privacy.erasure.erase_requester",
    ),
    "legal-hold": (
        ["legal-hold", "MRI-2025-00001", "--reason", "dossier 7"],
        "mailbot.privacy.retention.set_legal_hold_by_ref",
    ),
    "retention run": (["retention", "run"], "mailbot.privacy.retention.run_retention"),
    "quarantine retry": (
        ["quarantine", "retry", "1"],
        "mailbot.intake.quarantine.retry_quarantined",
    ),
    # A command's own handler: its line of the command table.
    "show": (["show", "MRI-2025-00001"], "show"),
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_restore_is_refused_while_each_writing_command_runs_and_names_it(
    command: str,
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.cli.test_entry import offline_config

    config = offline_config(tmp_path, database={"url": fast_settings.database_url})
    memory["renseignements"].deliver(request("<a@example.org>"), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)  # MRI-2025-00001
    app.engine.dispose()
    copy = tmp_path / "copy.db"
    assert main(["--config", str(config), "backup", str(copy)]) == EXIT_OK
    argv, target = WRITERS[command]
    seen: dict[str, object] = {}

    def while_it_runs(*_args: object, **_kwargs: object) -> Any:
        # The command holds the database now: a restore (with --force) tries to replace it.
        seen["code"] = main(["--config", str(config), "restore", str(copy), "--force"])
        seen["said"] = capsys.readouterr().err
        raise SystemExit(0)

    if target in COMMANDS:
        monkeypatch.setitem(COMMANDS, target, replace(COMMANDS[target], run=while_it_runs))
    else:
        module, _, name = target.rpartition(".")
        monkeypatch.setattr(__import__(module, fromlist=[name]), name, while_it_runs)
    with pytest.raises(SystemExit):
        main(["--config", str(config), "--now", "2025-11-03T10:05:00-05:00", *argv])

    assert seen["code"] == EXIT_FAILURE
    said = str(seen["said"])
    assert f"mailbot {command} (pid {os.getpid()}" in said, said
    # Done, the command no longer holds it: the restore goes ahead.
    assert main(["--config", str(config), "restore", str(copy), "--force"]) == EXIT_OK


def test_a_command_started_during_a_restore_is_refused(
    make_app: AppFactory,
    fast_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.cli.test_entry import offline_config

    config = offline_config(tmp_path, database={"url": fast_settings.database_url})
    make_app("2025-11-03T10:01:00-05:00").engine.dispose()
    lock = backup.DatabaseLock(backup.sqlite_path(fast_settings.database_url), "restore")
    lock.hold_exclusive()
    try:
        code = main(["--config", str(config), "--now", "2025-11-03T10:05:00-05:00", "tickets"])
    finally:
        lock.release()

    assert code == EXIT_FAILURE
    assert "a restore is replacing it" in capsys.readouterr().err


def test_a_damaged_database_in_place_is_replaced_and_kept_beside_it(
    make_app: AppFactory,
    fast_settings: Settings,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    tmp_path: Path,
) -> None:
    memory["renseignements"].deliver(request("<a@example.org>"), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    copy = tmp_path / "night.db"
    backup.take_backup(fast_settings.database_url, copy, app.clock.now())
    app.engine.dispose()
    database = backup.sqlite_path(fast_settings.database_url)
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    database.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))  # the disk went bad

    done = restore_here(fast_settings, memory, relay, copy)

    assert tickets(fast_settings.database_url) == ["MRI-2025-00001"]
    assert done.kept is not None and done.kept.read_bytes().startswith(b"SQLite format 3")
