"""A citizen's request referred to another body: built whole (the citizen's messages, every
file), so its size is checked before anything is queued, then queued from the queue's official
address (mailbot/tickets/referral.py decides it)."""

from __future__ import annotations

import email
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import outbox_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail.parse import CarriedFile
from mailbot.mail.render import Envelope, compose
from mailbot.sending.queueing import ATTACHING, journal_headers, message_id
from mailbot.standards import authority


@dataclass(frozen=True, slots=True)
class BuiltReferral:
    """A referral ready to queue: its Message-ID, its bytes as the relay will receive them
    (journal headers included) and the size of each file it carries."""

    message_id: str
    raw: bytes
    file_sizes: tuple[int, ...]


def build_referral(
    app: App,
    ticket: TicketRow,
    *,
    address: str,
    values: Mapping[str, Any],
    files: Sequence[CarriedFile],
    now: datetime,
) -> BuiltReferral:
    """The citizen's messages (their text in the body, every file whole) to the body
    `address`, from the queue's official address with the staff's note. A reply to it
    carries the ticket's token."""
    queue = authority.queue_of(app.settings, ticket)
    rendered = app.renderer.render(
        "referral",
        {"ticket": ticket, "queue": queue, "org": app.settings.organisation, **values},
    )
    new_id = message_id(app, ticket.ref)
    envelope = Envelope(
        from_address=queue.address,
        from_name=queue.display_name,
        to_address=address,
        message_id=new_id,
        date=now,
        reply_to=queue.address,
    )
    message = compose(
        envelope,
        rendered,
        auto_submitted=None,
        loop_token=app.settings.organisation.message_id_domain,
    )
    if files:
        built = email.message_from_bytes(message, _class=EmailMessage, policy=ATTACHING)
        for file in files:
            maintype, _, subtype = file.content_type.partition("/")
            if maintype in ("message", "multipart", "text"):
                # Carried as the bytes they are: the email package would re-encode them.
                maintype, subtype = "application", "octet-stream"
            built.add_attachment(
                file.payload,
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=file.filename,
            )
        message = built.as_bytes()
    raw = journal_headers(ticket.ref, "referral", None) + message
    return BuiltReferral(new_id, raw, tuple(len(file.payload) for file in files))


def queue_referral(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    built: BuiltReferral,
    *,
    address: str,
    dedupe: str,
    author: str,
    inbound_id: int,
    now: datetime,
) -> int | None:
    """Queue a built referral once per `dedupe` (None when it was queued already)."""
    row = outbox_rows.queue_message(
        connection,
        ticket_id=ticket.id,
        purpose="referral",
        dedupe_key=dedupe,
        message_id=built.message_id,
        envelope_from=authority.queue_of(app.settings, ticket).address,
        recipient=address,
        raw=built.raw,
        now=now,
    )
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        "referral_queued" if row is not None else "referral_duplicate",
        f"to {address}; {len(built.file_sizes)} file(s), {sum(built.file_sizes)} bytes attached, "
        f"{len(built.raw)} bytes in all",
        actor=author,
        inbound_id=inbound_id,
        outbox_id=row,
    )
    return row
