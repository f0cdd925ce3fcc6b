"""Recovery from the mail store: bring back what the database lacks (effects: IMAP or Graph,
database).

Everything mailbot knows came to it as mail, and every message it handled stays in the mail
store until retention removes it: what came in, in the processed and quarantine folders; what
went out, in the Sent folders, each copy carrying its ticket's reference and its purpose
(mailbot/recovery/journal.py). `reconcile` reads them all and, in arrival order (INTERNALDATE), runs
every message the database does not hold through the same pipeline as a live pass, as of its
arrival, with three differences:

* a ticket gets the reference its citizen was given (the acknowledgement found in Sent,
  threaded under the citizen's message, says which); a ticket whose reference nobody was told
  gets one past every reference the store or the database holds, so a reference once given
  is never given again;
* a message the pipeline queues that the Sent folder shows was already sent is recorded as
  sent then, with its original Message-ID (one Exchange gave it over Graph is recorded as an
  alias of the row's own instead, as a live pass does), and never sent again (nor a staff
  notice twice);
  one found nowhere stays queued and goes out (where the mailbox keeps no journal,
  `sent_copy = "none"`, it is taken as sent: nothing can tell);
* copies in Sent that no message accounts for (reminders, digests, alerts) become sent rows,
  so their dedupe keys keep them from going out again.

The erasure ledger (mailbot/privacy/ledger.py) is read first: the counters start above its
high-water marks, its erasures and anonymisations are applied again to what the database
holds, and what they erased is left out of the replay and of the Sent copies kept.

Nothing is moved on the server, nothing is sent. Running it again changes nothing.
`store_ahead` is the start-up check: the store holds recent mail the database does not know.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import graph_rows, inbound_rows, journal_rows, ledger_rows
from mailbot.db.backup import RECONCILE_PENDING
from mailbot.db.journal_rows import REPLAYED_UIDVALIDITY, PendingRow
from mailbot.db.outbox_rows import OutboxRow
from mailbot.db.service_state import drop_meta
from mailbot.db.store import chunks, reading
from mailbot.errors import ImapError
from mailbot.intake.pipeline import process_fetched
from mailbot.mail.render import (
    CHECK_PURPOSE,
    JOURNAL_KEY_HEADER,
    JOURNAL_REF_HEADER,
    PURPOSE_HEADER,
)
from mailbot.privacy import personal
from mailbot.privacy.ledger import Withheld, read_ledger, start_above
from mailbot.privacy.ledger_entry import split
from mailbot.privacy.reapply import Reapplied, reapply_ledger
from mailbot.sending.outbox import SendPolicy, record
from mailbot.sending.queueing import sending_mailbox
from mailbot.settings import MailboxSettings
from mailbot.tickets.clocks import meet_sent
from mailbot.transport.base import FetchedMessage, SendResult

log = logging.getLogger(__name__)

LEASE_OWNER = "reconcile"
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# How many of the newest messages of each folder the start-up check compares.
RECENT = 20
# Messages replayed per transaction.
COMMIT_EVERY = 20
# On a database that holds mail, unknown mail that arrived this long before its newest is
# still brought back (delayed delivery); older unknown mail was removed by retention.
REPLAY_MARGIN = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SentEntry:
    """A copy of a message mailbot sent, as the Sent folder holds it."""

    message_id: str
    ref: str
    purpose: str
    key: str
    recipient: str
    in_reply_to: str
    sent_at: datetime
    raw: bytes


@dataclass(frozen=True, slots=True)
class FolderMessage:
    """A message of a processed or quarantine folder."""

    mailbox: MailboxSettings
    folder: str
    message: FetchedMessage


@dataclass
class ReconcileReport:
    replayed: int = 0
    known: int = 0
    recorded_sent: int = 0
    presumed_sent: int = 0
    left_to_send: int = 0
    sent_only: int = 0
    withheld: int = 0  # messages in the store that an erasure or the schedule destroyed
    references: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ledger: Reapplied = field(default_factory=Reapplied)
    above: list[str] = field(default_factory=list)  # references the counters continue after

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.errors:
            return "reconcile not done: " + "; ".join(self.errors)
        above = f"; references continue after {', '.join(self.above)}" if self.above else ""
        return (
            f"reconciled: {self.replayed} message(s) brought back ({self.known} already known, "
            f"{self.withheld} left out as erased), "
            f"{len(self.references)} ticket(s) rebuilt, {self.recorded_sent} sent message(s) "
            f"recorded as sent, {self.presumed_sent} presumed sent, {self.sent_only} found only "
            f"in Sent, {self.left_to_send} still to send; {self.ledger.summary()}{above}"
        )


def _first_id(value: object) -> str:
    found = _MESSAGE_ID.findall(str(value or ""))
    return found[0] if found else ""


def _head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0] + b"\r\n\r\n"


def is_check_copy(raw: bytes) -> bool:
    """A copy of `mailbot check`'s round-trip message: no part of the service."""
    head = BytesHeaderParser().parsebytes(_head(raw))
    return str(head.get(PURPOSE_HEADER, "")).strip().lower() == CHECK_PURPOSE


def read_sent_entry(raw: bytes, sent_at: datetime) -> SentEntry | None:
    """The journal entry a Sent copy holds; None for mail that is not ours (staff's own mail
    in a server-kept Sent folder) and for `mailbot check`'s own message."""
    head = BytesHeaderParser().parsebytes(_head(raw))
    purpose = str(head.get(PURPOSE_HEADER, "")).strip()
    if not purpose or purpose.lower() == CHECK_PURPOSE:
        return None
    recipients = getaddresses([str(value) for value in head.get_all("To", [])])
    return SentEntry(
        message_id=_first_id(head.get("Message-ID")),
        ref=str(head.get(JOURNAL_REF_HEADER, "")).strip(),
        purpose=purpose,
        key=str(head.get(JOURNAL_KEY_HEADER, "")).strip(),
        recipient=recipients[0][1].lower() if recipients else "",
        in_reply_to=_first_id(head.get("In-Reply-To")),
        sent_at=sent_at,
        raw=raw,
    )


class _Journal:
    """The Sent copies not yet accounted for, to be matched with the rows a replay queues:
    by dedupe key where the copy has one, else the oldest copy of the same ticket, purpose
    and recipient."""

    def __init__(self, entries: list[SentEntry]) -> None:
        self._by_key: dict[str, SentEntry] = {}
        self._by_shape: dict[tuple[str, str, str], deque[SentEntry]] = defaultdict(deque)
        self._used: set[str] = set()
        for entry in sorted(entries, key=lambda e: e.sent_at):
            if entry.key:
                self._by_key.setdefault(entry.key, entry)
            self._by_shape[(entry.ref, entry.purpose, entry.recipient)].append(entry)
        self.entries = entries

    def take(self, ref: str, row: PendingRow) -> SentEntry | None:
        entry = self._by_key.get(row.dedupe_key)
        if entry is not None and entry.message_id not in self._used:
            self._used.add(entry.message_id)
            return entry
        queue = self._by_shape.get((ref, row.purpose, row.recipient.lower()))
        while queue:
            entry = queue.popleft()
            if entry.message_id not in self._used:
                self._used.add(entry.message_id)
                return entry
        return None

    def drop(self, message_ids: set[str]) -> None:
        self._used |= message_ids

    def left(self) -> list[SentEntry]:
        return [entry for entry in self.entries if entry.message_id not in self._used]


def read_store(app: App) -> tuple[list[FolderMessage], list[SentEntry]]:
    """Every message of every mailbox's processed and quarantine folders, and our copies in
    the Sent folders (each folder read once)."""
    arrivals: list[FolderMessage] = []
    entries: dict[str, SentEntry] = {}
    limit = app.settings.daemon.max_message_bytes
    for mailbox in app.settings.mailboxes:
        with app.open_mailbox(mailbox, app.clock.now()) as box:
            for folder in (mailbox.processed_folder, mailbox.quarantine_folder):
                arrivals += [
                    FolderMessage(mailbox, folder, message)
                    for message in box.read_folder(folder, limit)
                    if not is_check_copy(message.raw)
                ]
            if mailbox.sent_copy == "none":
                continue
            for message in box.read_folder(mailbox.sent_folder, limit):
                entry = read_sent_entry(message.raw, message.internal_date)
                if entry is not None and entry.message_id:
                    entries.setdefault(entry.message_id, entry)
    arrivals.sort(key=lambda a: (a.message.internal_date, a.mailbox.name, a.folder, a.message.uid))
    return arrivals, list(entries.values())


def reconcile(app: App) -> ReconcileReport:
    """Bring back from the mail store what the database lacks (see the module's docstring).
    The erasure ledger first (mailbot/privacy/ledger.py): its erasures are applied again to
    what the database holds, the counters start above its high-water marks, and what it
    erased is left out of the rebuild; then applied once more to what was rebuilt."""
    report = ReconcileReport()
    try:
        found = read_ledger(app)
        arrivals, entries = read_store(app)
    except ImapError as exc:
        # Half a store would look like mail never sent: nothing is done without all of it.
        report.errors.append(str(exc))
        return report
    report.above = start_above(app, found)
    report.ledger = reapply_ledger(app, found)
    withheld = Withheld.of(found)
    erased_sent = [entry for entry in entries if entry.message_id in withheld.sent]
    entries = [entry for entry in entries if entry.message_id not in withheld.sent]
    policy = SendPolicy.of(app.settings, meet_sent)
    prefix = app.settings.organisation.ticket_prefix
    with app.engine.begin() as connection:
        journal = _Journal(entries)
        # Rows the database holds as pending that the Sent folder shows went out.
        by_message_id = {entry.message_id: entry for entry in entries}
        for row in journal_rows.pending_rows(connection):
            copy = by_message_id.get(row.message_id)
            if copy is not None:
                _record_sent(connection, app, row, copy, policy, report)
        journal.drop({e.message_id for e in entries} & journal_rows.outbox_message_ids(connection))
        hashes = journal_rows.known_hashes(connection)
        newest = journal_rows.newest_arrival(connection)
        highest: dict[tuple[str, int], int] = defaultdict(int)
        named = [*journal_rows.known_refs(connection), *(e.ref for e in (*entries, *erased_sent))]
        for ref in named:
            parts = split(ref)
            if parts is not None:
                highest[parts[:2]] = max(highest[parts[:2]], parts[2])
        for (ref_prefix, year), last in found.high_water().items():
            highest[(ref_prefix, year)] = max(highest[(ref_prefix, year)], last)
        # Past every reference seen, from the start: a reconciliation stopped halfway never
        # leaves a counter that would give a reference again.
        _raise_counters(connection, highest)
    told = {
        entry.in_reply_to: entry.ref
        for entry in entries
        if entry.purpose == "acknowledgement" and entry.in_reply_to and entry.ref
    }
    unknown = []
    for arrival in arrivals:
        digest = hashlib.sha256(arrival.message.raw).hexdigest()
        if digest in hashes:
            continue
        raw = arrival.message.raw

        def senders(raw: bytes = raw) -> frozenset[str]:
            return personal.addresses_in(_head(raw))

        if withheld.holds_message(app.signing_key, digest, senders, arrival.message.internal_date):
            report.withheld += 1
            continue
        unknown.append(arrival)
    if newest is not None:
        # A database that holds mail lacks only what came after it, and what arrived a
        # little before (a slow relay): older mail it does not know was destroyed or
        # anonymised by retention on purpose, and is not brought back.
        unknown = [a for a in unknown if a.message.internal_date > newest - REPLAY_MARGIN]
    report.known = len(arrivals) - len(unknown) - report.withheld
    for batch in chunks(unknown, COMMIT_EVERY):
        # A few messages a transaction (a savepoint each, in the pipeline): a stop halfway
        # keeps what was committed, and running again goes on from there.
        with app.engine.begin() as connection:
            for arrival in batch:
                message = arrival.message
                year = app.calendar.office_date(message.internal_date).year
                wanted = told.get(_first_id(_message_id_header(message.raw)))
                _replay(
                    connection, app, arrival, year, prefix, wanted, highest, journal, policy, report
                )
                report.replayed += 1
    with app.engine.begin() as connection:
        for entry in journal.left():
            _keep_sent_only(connection, app, entry)
            report.sent_only += 1
        _raise_counters(connection, highest)
    # What the rebuild brought back of an erased person under a reference the ledger does not
    # name (a ticket whose acknowledgement was never kept) is found by their address.
    again = reapply_ledger(app, found)
    report.ledger.tickets += again.tickets
    report.ledger.messages += again.messages
    report.ledger.sent += again.sent
    report.ledger.erasures = max(report.ledger.erasures, again.erasures)
    with app.engine.begin() as connection:
        drop_meta(connection, RECONCILE_PENDING)
    log.warning("%s", report.summary())
    return report


def _raise_counters(connection: Connection, highest: dict[tuple[str, int], int]) -> None:
    """Every counter at `highest` at least, and `highest` at every counter: a daemon that
    gave references meanwhile is never set back."""
    for (prefix, year), last in list(highest.items()):
        current = journal_rows.counter_value(connection, prefix, year)
        if last > current:
            ledger_rows.raise_counter(connection, prefix, year, last)
        highest[(prefix, year)] = max(last, current)


def _message_id_header(raw: bytes) -> str:
    head = BytesHeaderParser().parsebytes(_head(raw))
    return str(head.get("Message-ID", ""))


def _replay(
    connection: Connection,
    app: App,
    arrival: FolderMessage,
    year: int,
    prefix: str,
    wanted: str | None,
    highest: dict[tuple[str, int], int],
    journal: _Journal,
    policy: SendPolicy,
    report: ReconcileReport,
) -> None:
    """One message through the pipeline as of its arrival, its ticket under the reference
    its citizen was told, and what it queued recorded as sent where Sent shows it was."""
    before = journal_rows.highest_outbox_id(connection)
    # A daemon may have given references since the last transaction: never set it back.
    highest[(prefix, year)] = max(
        highest[(prefix, year)], journal_rows.counter_value(connection, prefix, year)
    )
    parts = split(wanted) if wanted else None
    forced = (
        parts is not None
        and parts[:2] == (prefix, year)
        and journal_rows.ticket_id_of(connection, str(wanted)) is None
    )
    if forced and parts is not None:
        journal_rows.set_counter(connection, prefix, year, parts[2] - 1)
    else:
        journal_rows.set_counter(connection, prefix, year, highest[(prefix, year)])
    uid = journal_rows.next_replayed_uid(connection, arrival.mailbox.name)
    message = replace(arrival.message, uid=uid)
    at = message.internal_date
    process_fetched(
        connection, app, arrival.mailbox, REPLAYED_UIDVALIDITY, message, at, known_new=True
    )
    inbound_rows.record_moves(
        connection, arrival.mailbox.name, REPLAYED_UIDVALIDITY, [uid], arrival.folder, at
    )
    allocated = journal_rows.counter_value(connection, prefix, year)
    if forced and parts is not None and allocated == parts[2]:
        report.references.append(str(wanted))
    elif not forced and allocated > highest[(prefix, year)]:
        report.references.append(f"{prefix}-{year}-{allocated:05d}")
    highest[(prefix, year)] = max(highest[(prefix, year)], allocated)
    journal_rows.set_counter(connection, prefix, year, highest[(prefix, year)])
    for row in journal_rows.pending_rows(connection, before):
        ref = journal_rows.ref_of(connection, row.ticket_id) if row.ticket_id is not None else ""
        copy = journal.take(ref, row)
        if copy is not None:
            _record_sent(connection, app, row, copy, policy, report)
        elif sending_mailbox(app.settings, row.raw).sent_copy == "none":
            _record_sent(connection, app, row, None, policy, report)
        else:
            report.left_to_send += 1


def _record_sent(
    connection: Connection,
    app: App,
    row: PendingRow,
    copy: SentEntry | None,
    policy: SendPolicy,
    report: ReconcileReport,
) -> None:
    """Record `row` as sent when its copy says (or, with no journal, when it was queued),
    through the outbox's own record (clocks met, the ticket's history), never sending it."""
    when = copy.sent_at if copy is not None else row.created_at
    journal_rows.lease_for(connection, row.id, LEASE_OWNER, when + timedelta(minutes=10))
    leased = OutboxRow(
        id=row.id,
        ticket_id=row.ticket_id,
        purpose=row.purpose,
        message_id=row.message_id,
        envelope_from=row.envelope_from,
        recipient=row.recipient,
        raw=row.raw,
        attempts=row.attempts,
        created_at=row.created_at,
        lease_owner=LEASE_OWNER,
    )
    record(connection, app, leased, when, SendResult("sent"), policy)
    if copy is not None and _domain(copy.message_id) != _domain(row.message_id):
        # Sent under a Message-ID the transport gave it (Exchange, over Graph): as a live
        # pass does, that id stands for the row's own, whose signed token a reply citing
        # Exchange's id then carries (mailbot/db/graph_rows.py, `message_alias`).
        graph_rows.record_alias(connection, copy.message_id, row.message_id, app.clock.now())
        journal_rows.mark_journalled(connection, row.id, row.message_id, app.clock.now())
        report.recorded_sent += 1
    elif copy is not None:
        journal_rows.mark_journalled(connection, row.id, copy.message_id, app.clock.now())
        report.recorded_sent += 1
    else:
        journal_rows.mark_journalled(connection, row.id, row.message_id, app.clock.now())
        report.presumed_sent += 1


def _domain(message_id: str) -> str:
    return message_id.rpartition("@")[2].rstrip(">").lower()


def _keep_sent_only(connection: Connection, app: App, entry: SentEntry) -> None:
    ticket_id = journal_rows.ticket_id_of(connection, entry.ref) if entry.ref else None
    journal_rows.insert_sent_copy(
        connection,
        {
            "ticket_id": ticket_id,
            "purpose": entry.purpose[:32],
            "dedupe_key": entry.key or f"journal:{entry.message_id}"[:300],
            "message_id": entry.message_id,
            "envelope_from": "",
            "recipient": entry.recipient,
            "raw": entry.raw,
            "state": "sent",
            "attempts": 1,
            "next_attempt_at": entry.sent_at,
            "last_error": "",
            "created_at": entry.sent_at,
            "sent_at": entry.sent_at,
            "sent_copy_at": app.clock.now(),
        },
    )


def identifiers_kept(app: App) -> timedelta:
    """How long the database surely keeps a message's identifiers: retention empties them
    (`unlinked_days` after mail of no ticket was stored, `anonymise_days` after a ticket is
    finished); older mail in the store may be unknown to a database that is not behind."""
    retention = app.settings.retention
    days = [retention.unlinked_days, retention.anonymise_days]
    days += [period.anonymise_days for _queue, period in retention.queues]
    return timedelta(days=min(days))


def store_ahead(app: App) -> list[str]:
    """What the mail store holds that the database does not know, among the newest messages
    of each mailbox's processed and Sent folders younger than retention's horizon (empty:
    they agree). A mailbox that cannot be reached says nothing here (the pass will report
    it)."""
    with reading(app.engine) as connection:
        known = {value.lower() for value in journal_rows.known_message_ids(connection)}
    horizon = app.clock.now() - identifiers_kept(app)
    found: list[str] = []
    for mailbox in app.settings.mailboxes:
        folders = [mailbox.processed_folder]
        if mailbox.sent_copy != "none":
            folders.append(mailbox.sent_folder)
        try:
            with app.open_mailbox(mailbox, app.clock.now()) as box:
                for folder in folders:
                    ours_only = folder == mailbox.sent_folder
                    for arrived, head in box.recent_heads(folder, RECENT):
                        if arrived < horizon:
                            continue
                        if ours_only and PURPOSE_HEADER.lower().encode() not in head.lower():
                            continue
                        if is_check_copy(head):
                            continue  # `mailbot check`'s own message, wherever it is
                        message_id = _first_id(_message_id_header(head)).lower()
                        if message_id and message_id not in known:
                            found.append(f"{mailbox.name}/{folder}")
                            break
        except ImapError as exc:
            log.warning("start-up check of %s skipped: %s", mailbox.name, exc)
    return found
