"""Mail to a citizen: the acknowledgements, a staff member's words relayed, and what a staff
command tells the citizen (a merge, a referral), each queued by one writer, `queue_to_citizen`.

Every message to a citizen is rendered from `templates/`, gets its Message-ID (with the signed
token of its ticket), is threaded under the ticket's messages (`thread_of`), is addressed to
the ticket's requester and becomes one outbox row, recorded in the ticket's log, on the
caller's connection and in the transaction that decided it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import ticket_rows
from mailbot.db.inbound_rows import citizen_thread
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail.canned import may_write_english
from mailbot.mail.parse import InboundMail
from mailbot.mail.render import Envelope, Rendered, compose
from mailbot.mail.text import strip_reply_prefix
from mailbot.sending.queueing import message_id, queue_row, with_attachments
from mailbot.settings import MailboxSettings
from mailbot.standards import authority


@dataclass(frozen=True, slots=True)
class Queued:
    """A message to a citizen as queued: its outbox row (None when its key was queued
    already), its Message-ID, and the bytes of the files attached to it."""

    row: int | None
    message_id: str
    attached: int = 0


def thread_of(connection: Connection, ticket_id: int) -> tuple[str, ...]:
    """The Message-IDs a message to the ticket's citizen is threaded under, oldest first: ours
    to the citizen, then the citizen's (In-Reply-To is the last citizen's one)."""
    citizen_ids, our_ids = citizen_thread(connection, ticket_id)
    return (*our_ids, *citizen_ids)


def _to_citizen(
    app: App,
    ticket: TicketRow,
    rendered: Rendered,
    *,
    sender: MailboxSettings,
    message_id: str,
    thread: tuple[str, ...],
    auto_submitted: str | None,
    now: datetime,
) -> bytes:
    """A message to the ticket's requester from `sender`'s official address, threaded under
    `thread` (Message-IDs, oldest first: In-Reply-To is the last one)."""
    envelope = Envelope(
        from_address=sender.address,
        from_name=sender.display_name,
        to_address=ticket.requester,
        to_name=ticket.requester_name,
        message_id=message_id,
        date=now,
        in_reply_to=thread[-1] if thread else "",
        references=thread,
    )
    return compose(
        envelope,
        rendered,
        auto_submitted=auto_submitted,
        loop_token=app.settings.organisation.message_id_domain,
    )


def queue_to_citizen(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    *,
    template: str,
    values: Mapping[str, Any],
    sender: MailboxSettings,
    thread: tuple[str, ...],
    purpose: str,
    dedupe: str,
    event: Callable[[Queued], tuple[str, str]],
    inbound_id: int | None,
    now: datetime,
    actor: str = "mailbot",
    automatic: bool = False,
    token_ref: str | None = None,
    attachments_from: bytes | None = None,
    after_id: int | None = None,
) -> Queued:
    """The one writer of mail to a citizen: render `template` with `values`, give it a
    Message-ID whose token names `token_ref`'s ticket (the ticket's own by default, so a reply
    lands on it), address it to the ticket's requester from `sender` threaded under `thread`,
    attach the files of `attachments_from`, queue it once per `dedupe` (with `after_id`, to
    wait for that row: sent once the relay accepted it, never if it is refused for good) and
    record `event(queued)` (kind, detail) in the ticket's log.

    `automatic` mail (an acknowledgement) says it is an automatic reply and goes from the
    bounce address; the rest from `sender`'s official address."""
    rendered = app.renderer.render(template, values)
    new_id = message_id(app, token_ref or ticket.ref)
    message = _to_citizen(
        app,
        ticket,
        rendered,
        sender=sender,
        message_id=new_id,
        thread=thread,
        auto_submitted="auto-replied" if automatic else None,
        now=now,
    )
    attached = 0
    if attachments_from is not None:
        message, attached = with_attachments(attachments_from, message)
    row = queue_row(
        connection,
        ref=ticket.ref,
        ticket_id=ticket.id,
        purpose=purpose,
        dedupe_key=dedupe,
        message_id=new_id,
        envelope_from=app.settings.smtp.bounce_address if automatic else sender.address,
        recipient=ticket.requester,
        raw=message,
        now=now,
        after_id=after_id,
    )
    queued = Queued(row, new_id, attached)
    kind, detail = event(queued)
    ticket_rows.add_event(
        connection, ticket.id, now, kind, detail, actor=actor, inbound_id=inbound_id, outbox_id=row
    )
    return queued


def acknowledgement(
    connection: Connection,
    app: App,
    mailbox: MailboxSettings,
    ticket: TicketRow,
    mail: InboundMail,
    inbound_id: int,
    now: datetime,
) -> None:
    """The acknowledgement of a new ticket, threaded under the citizen's message (its
    acceptance meets the acknowledgement commitments)."""
    queue_to_citizen(
        connection,
        app,
        ticket,
        template="acknowledgement",
        values={
            "ticket": ticket,
            "org": app.settings.organisation,
            "mailbox": mailbox,
            "is_complaint": ticket.category == "complaint",
            "english": may_write_english(app.settings, ticket),
        },
        sender=mailbox,
        thread=tuple(item for item in (*mail.references, mail.message_id) if item),
        purpose="acknowledgement",
        dedupe=f"ack:{ticket.ref}",
        event=lambda queued: ("acknowledgement_queued", queued.message_id),
        inbound_id=inbound_id,
        now=now,
        automatic=True,
    )


def complete_file_acknowledgement(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    complete_day: date,
    *,
    inbound_id: int | None,
    now: datetime,
) -> None:
    """The acknowledgement of a complete file ("dossier complet reçu") in a programme queue,
    threaded under the citizen's messages: the acknowledgement the programme commitments
    measure (sent as an "acknowledgement", so its acceptance meets them)."""
    settings = app.settings
    queue = authority.queue_of(settings, ticket)
    queue_to_citizen(
        connection,
        app,
        ticket,
        template="complete_file",
        values={
            "ticket": ticket,
            "org": settings.organisation,
            "mailbox": queue,
            "complete_day": complete_day,
            "english": may_write_english(settings, ticket),
        },
        sender=queue,
        thread=thread_of(connection, ticket.id),
        purpose="acknowledgement",
        dedupe=f"complete:{ticket.ref}:{complete_day.isoformat()}:{inbound_id}",
        event=lambda queued: ("complete_file_ack_queued", queued.message_id),
        inbound_id=inbound_id,
        now=now,
        automatic=True,
    )


def relay(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    text: str,
    *,
    raw: bytes,
    author: str,
    inbound_id: int,
    staff_message_id: str,
    purpose: str,
    now: datetime,
) -> None:
    """A staff member's words to the citizen, from the queue's official address, threaded
    under the citizen's messages, with the staff member's attachments."""
    queue = authority.queue_of(app.settings, ticket)
    key = f"relay:{staff_message_id or inbound_id}"

    def event(queued: Queued) -> tuple[str, str]:
        if queued.row is None:
            return "reply_duplicate", f"already relayed ({key})"
        return f"{purpose}_queued", f"{len(text)} characters, {queued.attached} bytes attached"

    queue_to_citizen(
        connection,
        app,
        ticket,
        template="reply",
        values={
            "ticket": ticket,
            "text": text.rstrip(),
            "subject": strip_reply_prefix(ticket.subject),
            "queue": queue,
            "org": app.settings.organisation,
        },
        sender=queue,
        thread=thread_of(connection, ticket.id),
        purpose=purpose,
        dedupe=key,
        event=event,
        inbound_id=inbound_id,
        now=now,
        actor=author,
        attachments_from=raw,
    )


def notice_to_citizen(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    *,
    template: str,
    values: Mapping[str, Any],
    thread: tuple[str, ...],
    token_ref: str,
    purpose: str,
    dedupe: str,
    author: str,
    inbound_id: int,
    now: datetime,
    after_id: int | None = None,
) -> int | None:
    """What a staff command tells the citizen (a merge, a referral), from the queue's
    official address, threaded under `thread`; a reply to it lands on `token_ref`'s ticket.
    Queued once per `dedupe`; None when it was already. With `after_id` it waits for that
    outbox row: sent once the relay accepted it, never if it is refused for good."""
    queue = authority.queue_of(app.settings, ticket)
    queued = queue_to_citizen(
        connection,
        app,
        ticket,
        template=template,
        values={
            "ticket": ticket,
            "queue": queue,
            "org": app.settings.organisation,
            "subject": strip_reply_prefix(ticket.subject),
            "english": may_write_english(app.settings, ticket),
            **values,
        },
        sender=queue,
        thread=thread,
        purpose=purpose,
        dedupe=dedupe,
        event=lambda queued: (
            f"{purpose}_queued" if queued.row is not None else f"{purpose}_duplicate",
            dedupe,
        ),
        inbound_id=inbound_id,
        now=now,
        actor=author,
        token_ref=token_ref,
        after_id=after_id,
    )
    return queued.row
