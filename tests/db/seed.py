"""Rows for the database contract tests, written with the database modules' own insert
functions; literal instants (`at`) and small defaults, so a test names only what it is about."""

from __future__ import annotations

from datetime import date, datetime
from itertools import count

from sqlalchemy.engine import Connection

from mailbot.clock import parse_instant
from mailbot.db import inbound_rows, outbox_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow

QUEUE = "renseignements"
_numbers = count(1)


def at(text: str) -> datetime:
    """An aware UTC instant from ISO text with an offset (`2025-03-09T07:00:00Z`)."""
    return parse_instant(text)


def ticket(
    connection: Connection,
    ref: str,
    *,
    received_at: str = "2025-03-03T14:00:00Z",
    mailbox: str = QUEUE,
    category: str = "information",
    requester: str = "citoyen@example.org",
    status: str | None = None,
) -> TicketRow:
    """A ticket opened at `received_at` (its receipt date is that UTC date), open or `status`."""
    received = at(received_at)
    row = ticket_rows.insert_ticket(
        connection,
        {
            "ref": ref,
            "mailbox": mailbox,
            "category": category,
            "requester": requester,
            "requester_name": "",
            "language": "fr",
            "subject": "Demande",
            "received_at": received,
            "receipt_date": received.date(),
            "due_date": None,
        },
        received,
    )
    if status is not None:
        ticket_rows.set_status_where(connection, row.id, received, status, was=row.status)
    return row


def inbound(
    connection: Connection,
    *,
    ticket_id: int | None = None,
    kind: str = "new_request",
    state: str = "processed",
    message_id: str = "",
    mailbox: str = QUEUE,
    uidvalidity: int = 1,
    uid: int | None = None,
    stored_at: str = "2025-03-03T14:00:00Z",
    fingerprint: str = "",
    sha256: str = "",
    flags: str = "",
    raw: bytes = b"Subject: x\r\n\r\nbody\r\n",
) -> int:
    """A stored inbound message; its id."""
    number = next(_numbers)
    stored = at(stored_at)
    return inbound_rows.insert_inbound(
        connection,
        {
            "mailbox": mailbox,
            "folder": "INBOX",
            "uidvalidity": uidvalidity,
            "uid": number if uid is None else uid,
            "message_id": message_id,
            "sha256": sha256 or f"{number:064x}",
            "fingerprint": fingerprint,
            "size": len(raw),
            "raw": raw,
            "internal_date": stored,
            "state": state,
            "reason": "",
            "kind": kind,
            "rules": "",
            "ticket_id": ticket_id,
            "flags": flags,
            "stored_at": stored,
        },
    )


def queued(
    connection: Connection,
    key: str,
    *,
    now: str = "2025-03-03T14:00:00Z",
    purpose: str = "acknowledgement",
    ticket_id: int | None = None,
    recipient: str = "citoyen@example.org",
    message_id: str | None = None,
    after_id: int | None = None,
) -> int:
    """An outbox row under dedupe key `key` (which must be new); its id."""
    row_id = outbox_rows.queue_message(
        connection,
        ticket_id=ticket_id,
        purpose=purpose,
        dedupe_key=key,
        message_id=message_id or f"<{key}@mri.gouv.qc.ca>",
        envelope_from="",
        recipient=recipient,
        raw=b"Subject: x\r\n\r\nbody\r\n",
        now=at(now),
        after_id=after_id,
    )
    assert row_id is not None, f"dedupe key {key!r} already queued"
    return row_id


def day(text: str) -> date:
    return date.fromisoformat(text)
