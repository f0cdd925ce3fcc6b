"""A pass over one mailbox: new messages stored and processed, then moved out of the inbox.

Order, for nothing lost and nothing twice: fetch a batch (bounded by count and by bytes); in
database transactions of a few messages each (a savepoint per message, so a poison message is
quarantined alone) store each message with its outcome and advance the checkpoint; commit;
only then move the batch on the server. A message stored but not yet moved (the process
stopped in between) is moved on the next pass, never processed again; a crash before a commit
leaves those messages in the inbox, untouched, for the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mailbot.app import App
from mailbot.db import inbound_rows
from mailbot.db.store import reading
from mailbot.intake.pipeline import Processed, goes_to_quarantine, process_fetched
from mailbot.logformat import log_fields
from mailbot.settings import MailboxSettings
from mailbot.transport.base import Mailbox
from mailbot.transport.parse_ahead import Chunk

log = logging.getLogger(__name__)

StopCheck = Callable[[], bool]
# Messages per transaction: few enough that the sender, writing its outcomes beside the
# ingestion, never waits long for SQLite's one write lock; the batch is moved after them all.
COMMIT_EVERY = 20


@dataclass
class IngestReport:
    """What ingestion did in one pass, over every mailbox."""

    fetched: int = 0
    moved: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, label: str, n: int = 1) -> None:
        self.outcomes[label] = self.outcomes.get(label, 0) + n


def batches(
    uids: Sequence[int], sizes: Mapping[int, int], *, count: int, budget: int, cap: int
) -> Iterable[list[int]]:
    """`uids` cut into batches of at most `count` messages and `budget` bytes, so memory is
    bounded by bytes, not by count: a message larger than the budget goes alone, and one over
    `cap` (only its headers will be fetched) counts for nothing."""
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if size > cap:
            size = 0
        if batch and (len(batch) >= count or total + size > budget):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def ingest_mailbox(
    app: App, mailbox: MailboxSettings, report: IngestReport, should_stop: StopCheck
) -> None:
    """Store and process each new message of `mailbox`, then move it out of the inbox."""
    daemon = app.settings.daemon
    with app.open_mailbox(mailbox, app.clock.now()) as box:
        uidvalidity = box.prepare(mailbox)
        _warn_if_uidvalidity_changed(app, mailbox.name, uidvalidity)
        uids = box.list_uids()
        with reading(app.engine) as connection:
            stored = inbound_rows.stored_outcomes(connection, mailbox.name, uidvalidity, uids)
        # Stored but not yet moved (the process stopped in between): move, never reprocess.
        _move(
            app,
            box,
            mailbox,
            uidvalidity,
            {
                uid: goes_to_quarantine(state, flags.split(","))
                for uid, (state, flags) in stored.items()
            },
            report,
        )
        new = [uid for uid in uids if uid not in stored]
        sizes = box.sizes(new) if new else {}
        for batch in batches(
            new,
            sizes,
            count=daemon.fetch_batch,
            budget=daemon.fetch_batch_bytes,
            cap=daemon.max_message_bytes,
        ):
            fetched = list(box.fetch(batch, daemon.max_message_bytes))
            to_quarantine: dict[int, bool] = {}
            for chunk in app.parse_ahead.chunks(fetched, COMMIT_EVERY):
                _store(app, mailbox, uidvalidity, chunk, to_quarantine, report, should_stop)
                if should_stop():
                    break
            _move(app, box, mailbox, uidvalidity, to_quarantine, report)
            if should_stop():
                return


def _store(
    app: App,
    mailbox: MailboxSettings,
    uidvalidity: int,
    messages: Chunk,
    to_quarantine: dict[int, bool],
    report: IngestReport,
    should_stop: StopCheck,
) -> None:
    """Store and process `messages` (each with its parse, if done ahead) in one transaction,
    a savepoint each."""
    with app.engine.begin() as connection:
        # Checked inside the write transaction: another instance may have stored some.
        known = inbound_rows.stored_outcomes(
            connection, mailbox.name, uidvalidity, [m.uid for m, _ in messages]
        )
        for message, mail in messages:
            if message.uid in known:
                state, flags = known[message.uid]
                processed = Processed(state, "already_stored", tuple(flags.split(",")))
            else:
                now = app.clock.now()
                processed = process_fetched(
                    connection, app, mailbox, uidvalidity, message, now, known_new=True, mail=mail
                )
            to_quarantine[message.uid] = processed.goes_to_quarantine
            report.count(processed.label)
            report.fetched += 1
            if should_stop():
                break
        if to_quarantine:
            inbound_rows.advance_checkpoint(
                connection, mailbox.name, uidvalidity, max(to_quarantine), app.clock.now()
            )


def _warn_if_uidvalidity_changed(app: App, mailbox: str, uidvalidity: int) -> None:
    """A new UIDVALIDITY (the mailbox was rebuilt or restored) is worth a person's look.

    Nothing is processed twice: a message seen before is recognised by its fingerprint and
    set aside as a duplicate.
    """
    with reading(app.engine) as connection:
        known = inbound_rows.known_uidvalidities(connection, mailbox)
    if known and uidvalidity not in known:
        log.warning(
            "UIDVALIDITY changed (%s, was %s); earlier messages found again are recognised by "
            "their fingerprint and set aside as duplicates",
            uidvalidity,
            max(known),
            extra=log_fields(mailbox=mailbox),
        )


def _move(
    app: App,
    box: Mailbox,
    mailbox: MailboxSettings,
    uidvalidity: int,
    to_quarantine: Mapping[int, bool],
    report: IngestReport,
) -> None:
    """Move stored messages to the processed or quarantine folder and record it."""
    by_folder: dict[str, list[int]] = {}
    for uid, quarantine in to_quarantine.items():
        folder = mailbox.quarantine_folder if quarantine else mailbox.processed_folder
        by_folder.setdefault(folder, []).append(uid)
    now = app.clock.now()
    for folder, uids in by_folder.items():
        box.move(sorted(uids), folder)
        report.moved += len(uids)
        with app.engine.begin() as connection:
            inbound_rows.record_moves(connection, mailbox.name, uidvalidity, uids, folder, now)
