"""The erasure ledger, kept in the mail store: an entry written before mailbot destroys
anything, read back when the database is rebuilt or restored (effects: IMAP or Graph,
database).

The database cannot remember what it erased once it is lost, or replaced by a backup taken
before: so every erasure on request and every batch of a retention run first leaves an entry
(mailbot/privacy/ledger_entry.py: references, keyed hashes, mailbot's own Message-IDs,
each reference counter's high-water mark; nothing personal) in a folder of mailbot's own,
`ledger_folder`, of every configured mailbox, and only then deletes copies from the mail store
and rows from the database. If the entry cannot be kept, nothing is destroyed and the command
(or the next run) tries again.

Why the mail store: it is the one durable thing mailbot owns besides the database (the
journal of what was sent already lives there, mailbot/recovery/journal.py), it is backed up
with the mail, it outlives a lost or restored database by construction, and every instance
sharing a PostgreSQL database reads and writes the same mailboxes (a file in `data_dir` would
be one machine's, and lost with it). Each entry is kept in every mailbox, so a mailbox
removed from the configuration does not take the ledger with it.

Read back (`read_ledger`) by `mailbot reconcile`, `mailbot restore` and the first pass of a
new database (`start_new_database`), before anything else:
the counters start above every high-water mark (a reference once given is never given again,
even when the erasure deleted every message that carried it), the erasures and anonymisations
are applied again to what the database holds (mailbot/privacy/retention.py,
`reapply_ledger`), and the rebuild leaves out what they erased.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import ledger_rows
from mailbot.db.backup import INSTANCE_KEY
from mailbot.db.service_state import claim_meta, meta_value, set_meta
from mailbot.db.store import reading
from mailbot.errors import ImapError
from mailbot.mail import mime
from mailbot.privacy.ledger_entry import (
    Ledger,
    LedgerEntry,
    ReadEntry,
    address_hash,
    entry_text,
    message_hash,
    read_entry,
)

log = logging.getLogger(__name__)

LEDGER_HEADER = "X-Mailbot-Ledger"
_TAGS = re.compile(r"<[^>]+>")


def new_key() -> str:
    """A run's key in the ledger (and an entry's id)."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Destruction:
    """What a batch is about to destroy, as the caller knows it (in clear: hashed here)."""

    kind: str  # erase | anonymise | raw | unlinked
    run: str
    trigger: str
    actor: str
    at: datetime
    addresses: tuple[str, ...] = ()  # normalised
    refs: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    sha256s: tuple[str, ...] = ()
    sent: tuple[str, ...] = ()
    unlinked_before: datetime | None = None
    counts: tuple[int, int, int] = (0, 0, 0)


def entry_for(connection: Connection, key: bytes, what: Destruction) -> LedgerEntry:
    """The ledger entry of `what`: the hashes computed, the instance id and every counter
    read from the database on `connection`."""
    return LedgerEntry(
        entry=new_key(),
        instance=meta_value(connection, INSTANCE_KEY) or "",
        at=what.at,
        kind=what.kind,
        run=what.run,
        trigger=what.trigger,
        actor=what.actor,
        high_water=tuple(ledger_rows.counters(connection)),
        addresses=tuple(sorted({address_hash(key, a) for a in what.addresses if a})),
        refs=tuple(sorted(set(what.refs))),
        kept=tuple(sorted(set(what.kept))),
        messages=tuple(sorted({message_hash(key, s) for s in what.sha256s if s})),
        sent=tuple(sorted({m for m in what.sent if m})),
        unlinked_before=what.unlinked_before,
        counts=what.counts,
    )


def entry_message(app: App, entry: LedgerEntry, address: str) -> bytes:
    """The entry as a message of `address`'s ledger folder: a short notice for whoever opens
    the folder (templates/ledger.txt), then the entry's signed text."""
    zone = app.calendar.zone
    rendered = app.renderer.render(
        "ledger",
        {
            "kind": entry.kind,
            "day": entry.at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            "data": entry_text(entry, app.signing_key),
        },
        with_html=False,
    )
    domain = app.settings.organisation.message_id_domain
    headers = [
        mime.address("From", address, "mailbot"),
        mime.address("To", address),
        mime.unstructured("Subject", rendered.subject),
        f"Date: {format_datetime(entry.at)}{mime.CRLF}",
        f"Message-ID: <mb-ledger.{entry.entry}@{domain}>{mime.CRLF}",
        mime.unstructured(LEDGER_HEADER, entry.kind),
        f"Auto-Submitted: auto-generated{mime.CRLF}",
    ]
    return mime.write(headers, mime.Body(rendered.text))


def keep_entry(app: App, entry: LedgerEntry) -> None:
    """Put the entry in the ledger folder of every configured mailbox. An ImapError (or a
    folder that refuses it) propagates: the caller then destroys nothing."""
    for mailbox in app.settings.mailboxes:
        raw = entry_message(app, entry, mailbox.address)
        with app.open_mailbox(mailbox, app.clock.now()) as box:
            refused = box.append_copies(mailbox.ledger_folder, [(raw, entry.at)])
        if refused:
            raise ImapError(f"{mailbox.name}: the folder {mailbox.ledger_folder!r} refused it")
    log.info(
        "erasure ledger: %s entry kept (%d reference(s), %d message(s))",
        entry.kind,
        len(entry.refs),
        len(entry.messages) + len(entry.sent),
    )


def record(app: App, connection: Connection, what: Destruction) -> LedgerEntry:
    """`entry_for` then `keep_entry`: the entry is in the mail store when this returns."""
    entry = entry_for(connection, app.signing_key, what)
    keep_entry(app, entry)
    return entry


def message_text(raw: bytes) -> str:
    """The text of a ledger message (its plain part; an HTML one without its tags, should the
    server have turned it into HTML)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_body(("plain", "html"))
    if not isinstance(body, EmailMessage):
        return ""
    try:
        text = str(body.get_content())
    except (LookupError, ValueError):
        return ""
    if body.get_content_subtype() == "html":
        text = _TAGS.sub("\n", text).replace("&nbsp;", " ")
    return text


def read_ledger(app: App, failures: list[tuple[str, str]] | None = None) -> Ledger:
    """Every entry of every configured mailbox's ledger folder, once each. A mailbox that
    cannot be read raises ImapError naming it (a ledger read in part would forget erasures);
    with `failures`, each such mailbox is named there instead (its name, what failed) and the
    others are read."""
    found: dict[str, ReadEntry] = {}
    unreadable = 0
    limit = app.settings.daemon.max_message_bytes
    for mailbox in app.settings.mailboxes:
        try:
            with app.open_mailbox(mailbox, app.clock.now()) as box:
                messages = box.read_folder(mailbox.ledger_folder, limit)
        except ImapError as exc:
            named = ImapError(
                f"mailbox {mailbox.name}: the erasure ledger ({mailbox.ledger_folder}) could "
                f"not be read: {exc}"
            )
            if failures is None:
                raise named from exc
            failures.append((mailbox.name, str(named)))
            continue
        for message in messages:
            read = read_entry(message_text(message.raw), app.signing_key)
            if read is None:
                unreadable += 1
                continue
            known = found.get(read.entry.entry)
            if known is None or (read.verified and not known.verified):
                found[read.entry.entry] = read
    entries = tuple(sorted(found.values(), key=lambda read: (read.entry.at, read.entry.entry)))
    return Ledger(entries, unreadable, tuple(m.name for m in app.settings.mailboxes))


@dataclass(frozen=True, slots=True)
class Withheld:
    """What a rebuild leaves out because an erasure or the schedule destroyed it: received
    messages (by their keyed hash), a person's mail received up to their erasure (by the
    keyed hash of the address), and mailbot's own mail (by Message-ID)."""

    messages: frozenset[str] = frozenset()
    people: dict[str, datetime] = field(default_factory=dict)
    sent: frozenset[str] = frozenset()

    @staticmethod
    def of(ledger: Ledger) -> Withheld:
        people: dict[str, datetime] = {}
        for entry in ledger.verified:
            for person in entry.addresses:
                people[person] = max(people.get(person, entry.at), entry.at)
        return Withheld(
            messages=frozenset(h for entry in ledger.verified for h in entry.messages),
            people=people,
            sent=frozenset(m for entry in ledger.verified for m in entry.sent),
        )

    def holds_message(
        self, key: bytes, sha256: str, senders: Callable[[], Iterable[str]], at: datetime
    ) -> bool:
        """Whether a received message (its SHA-256, its From/Reply-To/Sender addresses
        normalised, read only when needed, its arrival) was erased: the very message, or mail
        of an erased person that arrived before their erasure."""
        if self.messages and message_hash(key, sha256) in self.messages:
            return True
        if not self.people:
            return False
        for sender in senders():
            erased = self.people.get(address_hash(key, sender))
            if erased is not None and at <= erased:
                return True
        return False


def raise_counters(connection: Connection, marks: dict[tuple[str, int], int]) -> list[str]:
    """Every counter at its high-water mark at least; the references it now continues after
    (the counters that rose)."""
    raised: list[str] = []
    for (prefix, year), last in sorted(marks.items()):
        if ledger_rows.raise_counter(connection, prefix, year, last):
            raised.append(f"{prefix}-{year}-{last:05d}")
    return raised


def start_above(app: App, ledger: Ledger) -> list[str]:
    """A database that holds no mail yet (new, or about to be rebuilt) takes the instance id
    the ledger names, and every counter starts above the ledger's high-water marks (any
    database: the marks only ever raise a counter). The references it continues after."""
    with app.engine.begin() as connection:
        instance = ledger.instance()
        if instance and ledger_rows.holds_no_mail(connection):
            set_meta(connection, INSTANCE_KEY, instance)
        return raise_counters(connection, ledger.high_water())


# The service_meta key a new database gets once it has read the ledger.
LEDGER_READ = "ledger_read"


def start_new_database(app: App, failures: list[tuple[str, str]]) -> list[str] | None:
    """Before the first mail a database takes in: the ledger read (once), and the database
    takes the instance id it names and starts above its high-water marks (a reference once
    given is never given again, even when everything that carried it was erased). The
    references it continues after; None when a mailbox's ledger could not be read (each
    named in `failures`): then no mail may be taken in yet. Nothing to do for a database
    that holds mail, or has read the ledger already."""
    with reading(app.engine) as connection:
        if meta_value(connection, LEDGER_READ) is not None or not ledger_rows.holds_no_mail(
            connection
        ):
            return []
    found = read_ledger(app, failures)
    if failures:
        return None
    above = start_above(app, found)
    with app.engine.begin() as connection:
        claim_meta(connection, LEDGER_READ, app.clock.now().isoformat())
    if above:
        log.warning("a new database: references continue after %s", ", ".join(above))
    return above
