"""Where a person's mail lives beyond their tickets, for erasure and access requests.

* Inbound rows of no ticket (automatic replies, list mail, held and quarantined messages),
  and the person's messages held on someone else's ticket: a row is the person's when one
  of its From, Reply-To or Sender addresses, normalised as mailbot normalises an address
  (`addresses.normalise_address`), is theirs. Rows are read in chunks and matched here
  (`addresses_in` is pure); old rows need no extra column.
* Copies in the mail store: every message mailbot fetched stays in its mailbox's processed
  or quarantine folder. `delete_copies` deletes the ones whose bytes hash to a stored row's
  SHA-256 (found by Message-ID, or by size when it has none), \\Deleted then UID EXPUNGE of
  those UIDs only. The copies of what mailbot sent that it appended to a Sent folder
  (`sent_copy = "append"`) are deleted the same way (`delete_sent_copies`); staff notices in
  staff mailboxes, and Sent copies a server keeps itself (`sent_copy = "server"`), are out
  of reach.

`addresses_in` is pure; the rest reads the database or talks to IMAP.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import retention_rows
from mailbot.db.retention_rows import StoredCopy
from mailbot.mail.addresses import normalise_address, parse_addresses
from mailbot.sending.queueing import sending_mailbox
from mailbot.transport.base import Copies

log = logging.getLogger(__name__)

ADDRESS_HEADERS = ("from", "reply-to", "sender")
CHUNK = 200


def normalised(address: str) -> str:
    """`address` as mailbot stores and compares addresses."""
    return normalise_address(address) or address.strip().lower()


def addresses_in(raw: bytes) -> frozenset[str]:
    """The normalised From, Reply-To and Sender addresses of a message (its headers only)."""
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    found: set[str] = set()
    for name in ADDRESS_HEADERS:
        for value in headers.get_all(name) or ():
            text = str(value)
            for address in parse_addresses(text) or ():
                found.add(normalised(address.address))
    return frozenset(found)


def unlinked_of(connection: Connection, address: str) -> Iterator[tuple[StoredCopy, bytes]]:
    """The inbound rows of no ticket that are `address`'s, with their bytes."""
    wanted = normalised(address)
    after = 0
    while True:
        chunk = retention_rows.unlinked_raw(connection, after, CHUNK)
        if not chunk:
            return
        for copy, raw in chunk:
            if wanted in addresses_in(raw):
                yield copy, raw
        after = chunk[-1][0].id


def messages_of(
    connection: Connection, address: str, *, skip_tickets: Sequence[int] = ()
) -> list[StoredCopy]:
    """Every received row still holding its bytes whose From, Reply-To or Sender is
    `address`'s, whatever ticket it sits on (none; someone else's, where mail from a person
    other than the requester is held), except the tickets in `skip_tickets`. Only the
    header block of each row is read."""
    wanted = normalised(address)
    found: list[StoredCopy] = []
    after = 0
    while True:
        chunk = retention_rows.inbound_heads(connection, after, CHUNK, skip_tickets=skip_tickets)
        if not chunk:
            return found
        found += [copy for copy, _ticket, head in chunk if wanted in addresses_in(head)]
        after = chunk[-1][0].id


def delete_copies(app: App, copies: Sequence[StoredCopy], now: datetime) -> int:
    """Delete these rows' copies from every processed and quarantine folder of their
    mailboxes; how many were deleted. An IMAP failure raises (nothing after it is done)."""
    deleted = 0
    configured = {mailbox.name for mailbox in app.settings.mailboxes}
    for name, mine in _by_mailbox(copies):
        if name not in configured:
            log.warning("mail store: mailbox %s is no longer configured; its copies stay", name)
            continue
        mailbox = app.settings.mailbox(name)
        wanted = Copies(
            digests=frozenset(c.sha256 for c in mine if c.sha256),
            message_ids=tuple(sorted({c.message_id for c in mine if c.message_id})),
            sizes=frozenset(c.size for c in mine if not c.message_id),
        )
        with app.open_mailbox(mailbox, now) as box:
            for folder in dict.fromkeys((mailbox.processed_folder, mailbox.quarantine_folder)):
                deleted += box.delete_copies(folder, wanted)
    log.info("mail store: %d stored cop(ies) deleted", deleted)
    return deleted


def delete_sent_copies(app: App, sent: Sequence[tuple[str, bytes]], now: datetime) -> int:
    """Delete the copies of these sent messages (Message-ID, bytes) that mailbot appended to
    its mailboxes' Sent folders (`sent_copy = "append"`, mailbot/recovery/journal.py); how many.
    Each is
    found by its Message-ID and proven by the hash of the bytes mailbot appended."""
    grouped: dict[str, list[tuple[str, bytes]]] = {}
    for message_id, raw in sent:
        mailbox = sending_mailbox(app.settings, raw)
        if mailbox.sent_copy == "append":
            grouped.setdefault(mailbox.name, []).append((message_id, raw))
    deleted = 0
    for name, mine in sorted(grouped.items()):
        mailbox = app.settings.mailbox(name)
        wanted = Copies(
            digests=frozenset(hashlib.sha256(raw).hexdigest() for _id, raw in mine),
            message_ids=tuple(sorted({message_id for message_id, _raw in mine if message_id})),
        )
        with app.open_mailbox(mailbox, now) as box:
            deleted += box.delete_copies(mailbox.sent_folder, wanted)
    log.info("mail store: %d Sent cop(ies) deleted", deleted)
    return deleted


def _by_mailbox(copies: Iterable[StoredCopy]) -> list[tuple[str, list[StoredCopy]]]:
    grouped: dict[str, list[StoredCopy]] = {}
    for copy in copies:
        grouped.setdefault(copy.mailbox, []).append(copy)
    return sorted(grouped.items())
