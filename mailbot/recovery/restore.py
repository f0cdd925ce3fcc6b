"""`mailbot restore`: a backup put in place of the SQLite database, with what the mail store's
erasure ledger says applied to it before it replaces anything (effects: files, database,
IMAP or Graph).

mailbot/db/backup.py does the file work (the exclusive lock, the checksum and integrity
check, the copy beside the database, the database in place kept as
`….before-restore-<instant>`); here the copy is brought to this mailbot's schema and checked
against this instance, then the ledger (mailbot/privacy/ledger.py) is applied to it: the
erasures and anonymisations done since the backup are done again, the reference counters
start above the ledger's high-water marks, and the runs go back into `retention history`.
A backup of another instance (its id differs from the database in place's, or, with no
database in place, from the ledger's) is refused unless `other_instance` is given; then its
queued mail is held, never sent from this instance's addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from mailbot.app import App
from mailbot.db import backup, ledger_rows, service_state
from mailbot.db.store import known_revisions, make_engine, scrub_freed_pages
from mailbot.errors import ConfigError, ImapError
from mailbot.privacy.ledger import read_ledger, start_above
from mailbot.privacy.reapply import Reapplied, reapply_ledger

log = logging.getLogger(__name__)

# Builds the application on the copy's engine (migrating it): `build_app` with the settings
# and the clock of the command, or the tests' in-memory servers.
AppOn = Callable[[Engine], App]


@dataclass
class Prepared:
    """What was done to the copy before it took the database's place."""

    this_instance: str = ""  # "" when neither the database in place nor the ledger names one
    backup_instance: str = ""
    other_instance: bool = False  # restored although another instance's (`--other-instance`)
    held: int = 0  # that instance's queued messages held
    ledger: Reapplied | None = None  # None: the mail store could not be read
    ledger_error: str = ""
    above: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RestoreReport:
    path: Path
    facts: backup.BackupFacts
    kept: Path | None  # the database it replaced, kept beside it
    prepared: Prepared

    def lines(self) -> list[str]:
        facts, prepared = self.facts, self.prepared
        checked = (
            "its checksum and SQLite's integrity check passed"
            if facts.checksum
            else "SQLite's integrity check passed (it carries no checksum: made by an earlier "
            "mailbot)"
        )
        found = [
            f"restored {self.path} (taken {facts.taken_at.isoformat()}, schema {facts.schema}, "
            f"instance {prepared.backup_instance or 'unknown'}): {checked}"
        ]
        if self.kept is not None:
            found.append(f"the database it replaced is kept at {self.kept}")
        else:
            found.append("there was no database in place")
        if prepared.other_instance:
            found.append(
                f"this is instance {prepared.backup_instance}'s backup, not this instance's "
                f"({prepared.this_instance}): its {prepared.held} queued message(s) are held, "
                "not sent (`mailbot show REF` lists them; a person decides)"
            )
        if prepared.ledger is not None:
            found.append(prepared.ledger.summary())
        else:
            found.append(
                f"ledger not read ({prepared.ledger_error}): the first pass applies it when it "
                "reconciles the database with the mail store"
            )
        if prepared.above:
            found.append(f"references continue after {', '.join(prepared.above)}")
        found.append("the next pass reconciles it with the mail store")
        return found


def restore(
    url: str, path: Path, now: datetime, app_on: AppOn, *, force: bool, other_instance: bool
) -> RestoreReport:
    """Restore the backup at `path` over the SQLite database of `url` (see the module's
    docstring); BackupRefused or DatabaseInUse say why not, and then nothing has changed."""
    database = backup.sqlite_path(url)

    def prepare(copy: Path, facts: backup.BackupFacts) -> Prepared:
        return _prepare(copy, facts, database, path, now, app_on, other_instance=other_instance)

    done = backup.restore_backup(
        url, path, now, force=force, known_schemas=known_revisions(), prepare=prepare
    )
    return RestoreReport(path, done.facts, done.kept, done.prepared)


def _prepare(
    copy: Path,
    facts: backup.BackupFacts,
    database: Path,
    path: Path,
    now: datetime,
    app_on: AppOn,
    *,
    other_instance: bool,
) -> Prepared:
    prepared = Prepared(backup_instance=facts.instance)
    engine = make_engine(f"sqlite:///{copy}")
    app = app_on(engine)  # the copy migrated to this mailbot's schema
    try:
        ledger = None
        try:
            ledger = read_ledger(app)
        except (ImapError, ConfigError) as exc:  # no server, or no password to log in with
            prepared.ledger_error = str(exc)
        prepared.this_instance = backup.database_instance(database) or (
            ledger.instance() if ledger is not None else ""
        )
        theirs = prepared.backup_instance
        if prepared.this_instance and theirs and theirs != prepared.this_instance:
            if not other_instance:
                raise backup.BackupRefused(
                    f"{path} is a backup of another instance ({theirs}), not of this one "
                    f"({prepared.this_instance}): its mail and references belong to other "
                    "mailboxes. Nothing was changed; give --other-instance to restore it "
                    "anyway (its queued mail is then held, not sent)"
                )
            prepared.other_instance = True
        with engine.begin() as connection:
            if prepared.other_instance:
                prepared.held = ledger_rows.hold_pending(
                    connection,
                    f"held: restored from another instance's backup ({theirs}); not sent",
                    now,
                )
            if prepared.this_instance:
                service_state.set_meta(connection, backup.INSTANCE_KEY, prepared.this_instance)
        if ledger is not None:
            prepared.above = start_above(app, ledger)
            prepared.ledger = reapply_ledger(app, ledger)
        scrub_freed_pages(engine)
    finally:
        app.parse_ahead.close()
        engine.dispose()
    return prepared
