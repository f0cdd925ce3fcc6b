"""The Alembic migrations build exactly the schema the models describe, and re-run harmlessly."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import mailbot.db.models  # noqa: F401  (registers the tables)
from mailbot.db.store import MIGRATIONS, make_engine, migrate, schema_revision


def test_migrations_match_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    migrate(engine)
    migrate(engine)  # start-up runs it every time

    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)

    assert differences == []
    assert schema_revision(engine) is not None


def test_holds_of_tickets_already_open_stay_pauses(tmp_path: Path) -> None:
    """0004_complete_request: a hold written before it (an `attente`) becomes kind "wait"."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.execute(
            sa.text(
                "INSERT INTO ticket (id, ref, mailbox, category, status, requester,"
                " requester_name, language, subject, received_at, receipt_date, english_allowed,"
                " created_at, updated_at) VALUES (1, 'MRI-2025-00001', 'renseignements',"
                " 'information', 'on_hold', 'a@example.org', '', 'fr', '',"
                " '2025-11-03 15:00:00', '2025-11-03', 0, '2025-11-03 15:00:00',"
                " '2025-11-03 15:00:00')"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO ticket_hold (ticket_id, started_at, reason, started_by, ended_by)"
                " VALUES (1, '2025-11-04 14:00:00', 'formulaire', 'agent@x.org', '')"
            )
        )
    migrate(engine)

    with engine.connect() as connection:
        kinds = connection.execute(sa.text("SELECT kind, reason FROM ticket_hold")).all()
    assert [tuple(row) for row in kinds] == [("wait", "formulaire")]


def test_a_hold_in_force_gets_the_owner_of_the_first_hold_since_its_last_release(
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from mailbot.db.store import MIGRATIONS

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        connection.execute(
            sa.text(
                "INSERT INTO ticket (id, ref, mailbox, category, status, requester,"
                " requester_name, language, subject, received_at, receipt_date,"
                " english_allowed, created_at, updated_at, legal_hold_reason, legal_hold_at)"
                " VALUES (1, 'MRI-2025-00001', 'renseignements', 'information', 'open',"
                " 'a@example.org', '', 'fr', '', '2025-11-03 15:00:00', '2025-11-03', 0,"
                " '2025-11-03 15:00:00', '2025-11-03 15:00:00', 'x', '2025-11-05 15:00:00')"
            )
        )
        for number, (kind, actor) in enumerate(
            [
                ("legal_hold", "old.owner"),
                ("legal_hold_released", "old.owner"),
                ("legal_hold", "juriste"),
                ("legal_hold", "intrus@mri.gouv.qc.ca"),
            ]
        ):
            connection.execute(
                sa.text(
                    "INSERT INTO ticket_event (ticket_id, at, kind, actor, detail)"
                    " VALUES (1, :at, :kind, :actor, '')"
                ),
                {"at": f"2025-11-0{number + 4} 15:00:00", "kind": kind, "actor": actor},
            )
    migrate(engine)

    with engine.connect() as connection:
        owner = connection.execute(
            sa.text("SELECT legal_hold_by, legal_hold_via FROM ticket")
        ).one()
    assert tuple(owner) == ("juriste", "cli")
