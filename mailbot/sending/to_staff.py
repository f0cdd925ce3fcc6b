"""Automatic mail to staff and to the service's administrators: notices, forwarded
follow-ups, held notices, confirmations, command errors, reminders, escalations, digests, the
brake's and the failures' notices. Plain text from `templates/`, one row per recipient, never
to a citizen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import ticket_rows
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail import tokens
from mailbot.mail.decoding import flatten
from mailbot.mail.render import Rendered, compose_staff_mail
from mailbot.mail.text import strip_reply_prefix
from mailbot.sending.queueing import message_id, queue_row, with_attachments
from mailbot.settings import MailboxSettings


def staff_message(
    connection: Connection,
    app: App,
    rendered: Rendered,
    *,
    queue: MailboxSettings,
    recipient: str,
    key: str,
    purpose: str,
    ref: str | None,
    ticket_id: int | None,
    now: datetime,
    kind: str = "internal",
    in_reply_to: str = "",
    attachments_from: bytes | None = None,
) -> int | None:
    """One automatic message to one staff member, from and Reply-To the queue; with `ref`
    its Message-ID carries the ticket's signed token, so a reply to it acts on the ticket.
    None when `key` was queued already."""
    new_id = message_id(app, ref, kind)
    message = compose_staff_mail(
        rendered,
        queue=queue,
        recipient=recipient,
        message_id=new_id,
        now=now,
        purpose=purpose,
        loop_token=app.settings.organisation.message_id_domain,
        in_reply_to=in_reply_to,
    )
    if attachments_from is not None:
        message, _attached = with_attachments(attachments_from, message)
    return queue_row(
        connection,
        ref=ref,
        ticket_id=ticket_id,
        purpose=purpose,
        dedupe_key=key,
        message_id=new_id,
        envelope_from=app.settings.smtp.bounce_address,
        recipient=recipient,
        raw=message,
        now=now,
        to_staff=True,
    )


def to_staff(
    connection: Connection,
    app: App,
    *,
    template: str,
    values: Mapping[str, Any],
    queue: MailboxSettings,
    recipients: Sequence[str],
    purpose: str,
    dedupe: str,
    now: datetime,
    ticket: TicketRow | None = None,
    in_reply_to: str = "",
    attachments_from: bytes | None = None,
    event: str | None = None,
    inbound_id: int | None = None,
) -> list[int]:
    """The template `template` (plain text) to each of `recipients`, one row each under the
    key ``{dedupe}:{recipient}``. With `event`, the ticket's log records it with the
    recipients."""
    rendered = app.renderer.render(
        template,
        {
            "queue": queue,
            "org": app.settings.organisation,
            "ticket": ticket,
            "note_link": note_link(app, ticket, queue) if ticket is not None else "",
            **values,
        },
        with_html=False,
    )
    queued: list[int] = []
    for recipient in dict.fromkeys(r.lower() for r in recipients):
        row = staff_message(
            connection,
            app,
            rendered,
            queue=queue,
            recipient=recipient,
            key=f"{dedupe}:{recipient}",
            purpose=purpose,
            ref=ticket.ref if ticket else None,
            ticket_id=ticket.id if ticket else None,
            now=now,
            in_reply_to=in_reply_to,
            attachments_from=attachments_from,
        )
        if row is not None:
            queued.append(row)
    if event is not None and ticket is not None:
        ticket_rows.add_event(
            connection,
            ticket.id,
            now,
            event,
            ", ".join(recipients),
            inbound_id=inbound_id,
            outbox_id=queued[0] if queued else None,
        )
    return queued


def note_link(app: App, ticket: TicketRow, queue: MailboxSettings) -> str:
    """A mailto: link to the queue's notes address, offered beside "reply" in staff notices:
    its subject names the ticket and carries its signed token, so what staff write from it
    is recorded on the ticket as an internal note (mailbot/intake/verdicts.py, NOTE_RULES),
    never relayed."""
    token = tokens.make_token(app.signing_key, ticket.ref, tokens.new_nonce())
    about = flatten(strip_reply_prefix(ticket.subject), 80)
    subject = f"[{ticket.ref}] Note interne : {about} ({token})"
    return f"mailto:{queue.notes_address}?subject={quote(subject, safe='')}"


def to_admins(
    connection: Connection,
    app: App,
    *,
    template: str,
    values: Mapping[str, Any],
    purpose: str,
    dedupe: str,
    now: datetime,
) -> list[int]:
    """Automatic mail about the service itself to the `[alerts] admins` (never citizens,
    never staff), sent from the first mailbox's address; one row per administrator under
    the key ``{dedupe}:{admin}``."""
    return to_staff(
        connection,
        app,
        template=template,
        values=values,
        queue=app.settings.mailboxes[0],
        recipients=app.settings.alerts.admins,
        purpose=purpose,
        dedupe=dedupe,
        now=now,
    )
