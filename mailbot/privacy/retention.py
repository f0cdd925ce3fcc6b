"""Keep what the schedule requires, no longer: raw messages destroyed, then tickets
anonymised, a given number of days after they were finished; legal holds. Erasure on request
is in mailbot/privacy/erasure.py, the ledger applied again in mailbot/privacy/reapply.py.

Rules (calendar days, per queue, `[retention]` in the configuration). A ticket is *finished*
at its closing, or, answered and left (no activity since, no result still owed), at its last
activity (`updated_at`):

* **Raw messages**: a finished ticket's received and sent messages (the bytes: text and
  attachments) are emptied `raw_days` after it finished. Outgoing rows not sent yet keep theirs.
* **Anonymisation**: `anonymise_days` after it finished, the requester's address and name,
  the subject, the English basis, the texts of events and holds, message identifiers and
  hashes, and every address that is not mailbot's or the staff's are replaced or emptied;
  the reference, queue, category, language, status, dates, deadlines, holds' dates and
  outcomes stay, so `mailbot report` gives the same figures.
* **Mail of no ticket** (quarantined and set-aside messages, mail to staff, bounce states) is
  emptied `unlinked_days` after it was stored.
* **Erasure ledger**: before a batch destroys anything, it leaves its entry in the ledger
  kept in the mail store (mailbot/privacy/ledger.py: references, keyed hashes, mailbot's
  Message-IDs, the counters; nothing personal). `reapply.reapply_ledger` applies the entries
  again to a database restored from an older backup or rebuilt from the mail store.
* **Mail store**: when a message's bytes go (raw destruction, anonymisation, mail of no
  ticket, erasure), its copy in its mailbox's processed or quarantine folder is deleted first
  (`personal.delete_copies`: matched by Message-ID or size and proven by the stored SHA-256;
  \\Deleted then UID EXPUNGE), and the copy mailbot appended to a Sent folder. A mail store
  failure interrupts the batch before the database changes, so the next run does both.
* **Legal hold**: a ticket under legal hold is never destroyed or anonymised; released, it
  is due again by the same rules.
* **Not reopened**: only closed or answered tickets are due; a citizen who writes again
  reopens the ticket and stops the count.
* **Batches**: `batch_size` tickets a transaction, counted in the run's record in that same
  transaction; what is done is no longer due, so a run killed halfway is resumed by the next.

`due_today` decides when the daemon runs it (pure); `run_retention` is the effectful edge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, legal_holds, retention_rows, retention_runs, ticket_rows
from mailbot.db.store import reading, scrub_freed_pages
from mailbot.errors import NotFound
from mailbot.privacy import ledger, personal
from mailbot.settings import RetentionSettings, Settings
from mailbot.standards.business_calendar import BusinessCalendar

log = logging.getLogger(__name__)

DAEMON = "daemon"
# A dry run looks at this many tickets per queue and step at most (it changes nothing, so it
# cannot page by what is left).
DRY_RUN_LIMIT = 100_000

# Called after each committed batch with the number of batches so far (tests inject a crash).
AfterBatch = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Tickets finished at or before `raw` lose their raw messages; at or before `anonymise`,
    their personal information."""

    raw: datetime
    anonymise: datetime


def cutoffs(retention: RetentionSettings, queue: str, now: datetime) -> Cutoffs:
    period = retention.period(queue)
    return Cutoffs(
        raw=now - timedelta(days=period.raw_days),
        anonymise=now - timedelta(days=period.anonymise_days),
    )


def due_today(
    now: datetime,
    last_run: datetime | None,
    calendar: BusinessCalendar,
    retention: RetentionSettings,
    zone: Any,
) -> bool:
    """Once a business day, from `run_time` office time: not yet run today."""
    if not retention.enabled:
        return False
    local = now.astimezone(zone)
    if not calendar.is_business_day(local.date()) or local.time() < retention.run_time:
        return False
    return last_run is None or last_run.astimezone(zone).date() < local.date()


def keeps_for(settings: Settings) -> Callable[[str], bool]:
    """Addresses that stay: mailbot's own, the staff's (not a citizen's)."""
    return lambda address: address in ("", "mailbot") or settings.is_staff(address)


@dataclass
class RetentionReport:
    run_id: int
    dry_run: bool
    raw_destroyed: list[str] = field(default_factory=list)
    anonymised: list[str] = field(default_factory=list)
    unlinked: int = 0
    held: list[str] = field(default_factory=list)  # erase: left alone, under legal hold
    copies_deleted: int = 0  # copies deleted from the processed, quarantine and Sent folders

    def as_json(self) -> dict[str, object]:
        return {
            "run": self.run_id,
            "dry_run": self.dry_run,
            "raw_destroyed": self.raw_destroyed,
            "anonymised": self.anonymised,
            "unlinked": self.unlinked,
            "legal_hold": self.held,
            "mail_store_copies_deleted": self.copies_deleted,
        }

    def summary(self) -> str:
        held = f"; under legal hold: {', '.join(self.held)}" if self.held else ""
        raw, anonymised = len(self.raw_destroyed), len(self.anonymised)
        if self.dry_run:
            return (
                f"retention run #{self.run_id} (dry run, nothing changed): would destroy the "
                f"raw messages of {raw} ticket(s), anonymise {anonymised} ticket(s) and empty "
                f"{self.unlinked} row(s) of mail of no ticket{held}"
            )
        return (
            f"retention run #{self.run_id}: destroyed the raw messages of {raw} ticket(s), "
            f"anonymised {anonymised} ticket(s), emptied {self.unlinked} row(s) of mail of "
            f"no ticket{held}"
        )


def run_retention(
    app: App,
    *,
    trigger: str,
    actor: str,
    dry_run: bool = False,
    after_batch: AfterBatch | None = None,
) -> RetentionReport:
    """Everything due at the clock's `now`, in batches, each its own transaction. Each batch
    first leaves its entry in the erasure ledger (mailbot/privacy/ledger.py), then deletes
    the mail store's copies, then empties the rows."""
    settings, engine, now = app.settings, app.engine, app.clock.now()
    retention = settings.retention
    keeps = keeps_for(settings)
    limit = DRY_RUN_LIMIT if dry_run else retention.batch_size
    run_key = "" if dry_run else ledger.new_key()
    with engine.begin() as connection:
        run_id = retention_runs.start_run(
            connection, trigger, actor, now, dry_run=dry_run, ledger_key=run_key
        )
    report = RetentionReport(run_id, dry_run)
    batches = 0

    def destruction(kind: str, **values: Any) -> ledger.Destruction:
        return ledger.Destruction(
            kind=kind, run=run_key, trigger=trigger, actor=actor, at=now, **values
        )

    def batch(step: Callable[[Connection], bool]) -> None:
        nonlocal batches
        while True:
            with engine.begin() as connection:
                more = step(connection)
            if not more:
                return
            batches += 1
            if after_batch is not None:
                after_batch(batches)
            if dry_run:
                return

    def forget_tickets(
        connection: Connection,
        kind: str,
        due: list[retention_rows.DueTicket],
        counts: tuple[int, int, int],
    ) -> None:
        """The ledger entry, then the mail store's copies of these tickets' messages."""
        ids = [t.id for t in due]
        copies = retention_rows.copies_of_tickets(connection, ids)
        sent = retention_rows.sent_of_tickets(connection, ids)
        what = destruction(
            kind,
            refs=tuple(t.ref for t in due),
            sha256s=tuple(copy.sha256 for copy in copies),
            sent=tuple(retention_rows.outgoing_of_tickets(connection, ids)),
            counts=counts,
        )
        ledger.record(app, connection, what)
        report.copies_deleted += personal.delete_copies(app, copies, now)
        report.copies_deleted += personal.delete_sent_copies(app, sent, now)

    for mailbox in settings.mailboxes:
        cut = cutoffs(retention, mailbox.name, now)

        def anonymise_step(
            connection: Connection, queue: str = mailbox.name, cut: Cutoffs = cut
        ) -> bool:
            due = retention_rows.due_anonymisation(connection, queue, cut.anonymise, limit)
            if not due:
                return False
            refs = [t.ref for t in due]
            report.anonymised += refs
            if not dry_run:
                forget_tickets(connection, "anonymise", due, (0, len(due), 0))
                retention_rows.anonymise(connection, due, keeps, now)
            retention_runs.add_to_run(
                connection, run_id, anonymised=len(due), refs=[f"anonymised:{r}" for r in refs]
            )
            return True

        def raw_step(connection: Connection, queue: str = mailbox.name, cut: Cutoffs = cut) -> bool:
            due = retention_rows.due_raw(connection, queue, cut.raw, limit)
            if dry_run:  # what anonymisation would have emptied is not counted twice
                due = [t for t in due if t.ref not in report.anonymised]
            if not due:
                return False
            refs = [t.ref for t in due]
            report.raw_destroyed += refs
            if not dry_run:
                forget_tickets(connection, "raw", due, (len(due), 0, 0))
                retention_rows.destroy_raw(connection, [t.id for t in due], now)
            retention_runs.add_to_run(
                connection, run_id, raw_destroyed=len(due), refs=[f"raw:{r}" for r in refs]
            )
            return True

        batch(anonymise_step)
        batch(raw_step)

    unlinked_cutoff = now - timedelta(days=retention.unlinked_days)

    def unlinked_step(connection: Connection) -> bool:
        count = retention_rows.clear_unlinked(
            connection, unlinked_cutoff, keeps, limit, dry_run=True
        )
        if not count:
            return False
        if not dry_run:
            copies = retention_rows.unlinked_copies(connection, unlinked_cutoff, limit)
            outgoing = retention_rows.unlinked_outgoing(connection, unlinked_cutoff, limit)
            what = destruction(
                "unlinked",
                sha256s=tuple(copy.sha256 for copy in copies),
                sent=tuple(
                    retention_rows.with_aliases(connection, [out.message_id for out in outgoing])
                ),
                unlinked_before=unlinked_cutoff,
                counts=(0, 0, count),
            )
            ledger.record(app, connection, what)
            report.copies_deleted += personal.delete_copies(app, copies, now)
            report.copies_deleted += personal.delete_sent_copies(
                app, [(out.message_id, out.raw) for out in outgoing if out.journalled], now
            )
            retention_rows.clear_unlinked(connection, unlinked_cutoff, keeps, limit, dry_run=False)
        report.unlinked += count
        retention_runs.add_to_run(connection, run_id, unlinked=count)
        return True

    batch(unlinked_step)
    with engine.begin() as connection:
        retention_runs.finish_run(connection, run_id, now)
        access.record(
            connection,
            now,
            actor,
            "retention_dry_run" if dry_run else "retention_run",
            detail=f"run #{run_id}: raw {len(report.raw_destroyed)}, "
            f"anonymised {len(report.anonymised)}, unlinked {report.unlinked}",
        )
    if not dry_run:
        scrub_freed_pages(engine)
    log.info(
        "retention run #%s (%s): raw=%d anonymised=%d unlinked=%d%s",
        run_id,
        trigger,
        len(report.raw_destroyed),
        len(report.anonymised),
        report.unlinked,
        " (dry run)" if dry_run else "",
    )
    return report


def run_if_due(app: App) -> RetentionReport | None:
    """The daemon's daily run: once a business day from `run_time`; a run killed halfway
    (never finished) is run again at the next pass."""
    now = app.clock.now()
    with reading(app.engine) as connection:
        last = retention_runs.last_finished_run(connection, DAEMON)
    zone = app.settings.organisation.zone
    if not due_today(now, last, app.calendar, app.settings.retention, zone):
        return None
    return run_retention(app, trigger=DAEMON, actor="mailbot")


# --- legal hold ----------------------------------------------------------------------------------


def set_legal_hold_by_ref(app: App, ref: str, reason: str | None, actor: str) -> None:
    """The command line's `legal-hold REF --reason TEXT | --release`."""
    now = app.clock.now()
    with app.engine.begin() as connection:
        ticket = ticket_rows.ticket_by_ref(connection, ref)
        if ticket is None:
            raise NotFound(f"no ticket {ref}")
        legal_holds.change_legal_hold(connection, ticket.id, reason, actor, now)
        action = "legal_hold" if reason is not None else "legal_hold_release"
        access.record(connection, now, actor, action, ref)
