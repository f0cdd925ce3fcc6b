"""`mailbot backup` and `mailbot restore`: a consistent copy that says what it is, a restore
that never runs under a mailbot nor over newer data, PostgreSQL refused with the right tools
named."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from mailbot.cli import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, main
from mailbot.db import backup
from mailbot.ops.passes import run_pass
from mailbot.settings import Settings
from mailbot.store import known_revisions, schema_revision
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes
from tests.intake.test_pipeline import at, request


def tickets(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(sa.text("SELECT ref FROM ticket"))]
    finally:
        engine.dispose()


def test_a_backup_records_its_schema_and_instant_and_a_restore_brings_it_back(
    make_app: AppFactory, fast_settings: Settings, memory: MemoryMailboxes, tmp_path: Path
) -> None:
    url = fast_settings.database_url
    memory["renseignements"].deliver(request("<a@example.org>"), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    copy = tmp_path / "backups" / "night.db"

    facts = backup.take_backup(url, copy, app.clock.now())

    assert facts.schema == schema_revision(app.engine)
    assert backup.backup_facts(copy) == facts
    memory["renseignements"].deliver(request("<b@example.org>"), at("2025-11-03T11:00"))
    run_pass(make_app("2025-11-03T11:01:00-05:00"))
    app.engine.dispose()
    assert tickets(url) == ["MRI-2025-00001", "MRI-2025-00002"]
    # The database holds newer data than the copy: refused unless forced.
    with pytest.raises(backup.BackupRefused, match="newer"):
        backup.restore_backup(
            url, copy, app.clock.now(), force=False, known_schemas=known_revisions()
        )
    assert tickets(url) == ["MRI-2025-00001", "MRI-2025-00002"]

    backup.restore_backup(url, copy, app.clock.now(), force=True, known_schemas=known_revisions())

    assert tickets(url) == ["MRI-2025-00001"]
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        pending = connection.execute(
            sa.text("SELECT value FROM service_meta WHERE key = :key"),
            {"key": backup.RECONCILE_PENDING},
        ).scalar()
        has_facts = sa.inspect(connection).has_table(backup.BACKUP_TABLE)
    engine.dispose()
    assert pending is not None and "restored" in pending
    assert not has_facts


def test_a_restore_is_refused_while_a_mailbot_holds_the_database(
    make_app: AppFactory, fast_settings: Settings, tmp_path: Path
) -> None:
    url = fast_settings.database_url
    app = make_app("2025-11-03T10:01:00-05:00")
    copy = tmp_path / "night.db"
    backup.take_backup(url, copy, app.clock.now())
    database = backup.sqlite_path(url)

    with backup.running_lock(url), pytest.raises(backup.DatabaseInUse, match="running"):
        backup.restore_backup(
            url, copy, app.clock.now(), force=True, known_schemas=known_revisions()
        )

    assert backup.DatabaseLock(database).hold_exclusive() is not None


def test_a_backup_from_a_newer_mailbot_is_refused(
    make_app: AppFactory, fast_settings: Settings, tmp_path: Path
) -> None:
    url = fast_settings.database_url
    app = make_app("2025-11-03T10:01:00-05:00")
    copy = tmp_path / "night.db"
    backup.take_backup(url, copy, app.clock.now())

    with pytest.raises(backup.BackupRefused, match="newer version"):
        backup.restore_backup(url, copy, app.clock.now(), force=True, known_schemas=frozenset())


def test_backup_on_postgresql_is_refused_naming_its_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ops.test_cli_edges import offline_config

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
    from tests.ops.test_cli_edges import offline_config

    config = offline_config(tmp_path, database={"url": fast_settings.database_url})
    make_app("2025-11-03T10:01:00-05:00").engine.dispose()
    copy = tmp_path / "copy.db"

    assert main(["--config", str(config), "backup", str(copy)]) == EXIT_OK
    assert main(["--config", str(config), "backup", str(copy)]) == EXIT_CONFIG
    assert main(["--config", str(config), "restore", str(copy)]) == EXIT_OK
    assert "next pass reconciles" in capsys.readouterr().out
    with backup.running_lock(fast_settings.database_url):
        assert main(["--config", str(config), "restore", str(copy)]) == EXIT_FAILURE
