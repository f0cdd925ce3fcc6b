"""Every message mailbot sends is built and queued here, and only here.

Four shapes: the acknowledgement to a citizen, a staff member's words relayed to a citizen
(and the notices of a merge or a referral), a citizen's request referred to another body, and
automatic mail to staff (notices, forwarded follow-ups, held notices, confirmations,
command errors, reminders, escalations, digests, the brake's and the failures' notices). Each
gets its Message-ID once, here (a signed thread token when it concerns a ticket, so a reply to
it finds the ticket), is rendered from `templates/`, and becomes one outbox row written on the
caller's connection, in the transaction that decided it. A dedupe key per message makes every
queueing safe to repeat; the sender (mailbot/sending/outbox.py) sends the rows.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import outbox_rows, ticket_rows
from mailbot.db.inbound_rows import citizen_thread
from mailbot.db.ticket_rows import TicketRow
from mailbot.mail import mime, tokens
from mailbot.mail.canned import may_write_english
from mailbot.mail.decoding import flatten
from mailbot.mail.parse import CarriedFile, InboundMail
from mailbot.mail.render import (
    JOURNAL_KEY_HEADER,
    JOURNAL_REF_HEADER,
    PURPOSE_HEADER,
    Envelope,
    Rendered,
    compose,
    compose_staff_mail,
)
from mailbot.mail.text import strip_reply_prefix
from mailbot.settings import MailboxSettings

MAX_RELAYED_ATTACHMENT_BYTES = 15 * 1024 * 1024
# Attachments are added with the email package to the message mailbot/mail/mime.py wrote: its
# header lines are kept as written (never refolded), the files encoded in 76-character lines.
ATTACHING = email.policy.SMTP.clone(max_line_length=76, refold_source="none")


def message_id(app: App, ref: str | None, kind: str = "internal") -> str:
    """A new Message-ID: with a signed token for ticket `ref`, else ``<mb-KIND.NONCE@domain>``."""
    domain = app.settings.organisation.message_id_domain
    if ref is None:
        return f"<mb-{kind}.{tokens.new_nonce()}@{domain}>"
    return tokens.make_message_id(app.signing_key, ref, tokens.new_nonce(), domain)


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
    `thread` (Message-IDs, oldest first: In-Reply-To is the last citizen's one)."""
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


def journal_headers(ref: str | None, purpose: str, key: str | None) -> bytes:
    """The headers of our own that make the copy of a sent message a journal entry
    (mailbot/recovery/journal.py): the ticket's reference, what the message is for, and, on mail to
    staff, the dedupe key (a reminder or digest recognised after a rebuild is not sent
    twice). Nothing beyond what the message holds: references, purposes and keys are ours."""
    lines = []
    if ref:
        lines.append(mime.unstructured(JOURNAL_REF_HEADER, flatten(ref, 64)))
    lines.append(mime.unstructured(PURPOSE_HEADER, flatten(purpose, 64)))
    if key:
        lines.append(mime.unstructured(JOURNAL_KEY_HEADER, flatten(key, 300)))
    return "".join(lines).encode()


def _queue(
    connection: Connection,
    *,
    ref: str | None,
    ticket_id: int | None,
    purpose: str,
    dedupe_key: str,
    message_id: str,
    envelope_from: str,
    recipient: str,
    raw: bytes,
    now: datetime,
    to_staff: bool = False,
    after_id: int | None = None,
) -> int | None:
    """One outbox row for `raw`, with the journal headers put first."""
    return outbox_rows.queue_message(
        connection,
        ticket_id=ticket_id,
        purpose=purpose,
        dedupe_key=dedupe_key,
        message_id=message_id,
        envelope_from=envelope_from,
        recipient=recipient,
        raw=journal_headers(ref, purpose, dedupe_key if to_staff else None) + raw,
        now=now,
        after_id=after_id,
    )


# --- to citizens ---------------------------------------------------------------------------


def acknowledgement(
    connection: Connection,
    app: App,
    mailbox: MailboxSettings,
    ticket: TicketRow,
    mail: InboundMail,
    inbound_id: int,
    now: datetime,
) -> None:
    """The acknowledgement of a new ticket, threaded under the citizen's message."""
    settings = app.settings
    english = settings.language.english_policy == "detected_english" and ticket.language == "en"
    rendered = app.renderer.render(
        "acknowledgement",
        {
            "ticket": ticket,
            "org": settings.organisation,
            "mailbox": mailbox,
            "is_complaint": ticket.category == "complaint",
            "english": english or ticket.english_allowed,
        },
    )
    _queue_acknowledgement(
        connection,
        app,
        ticket,
        rendered,
        sender=mailbox,
        thread=tuple(item for item in (*mail.references, mail.message_id) if item),
        dedupe_key=f"ack:{ticket.ref}",
        event="acknowledgement_queued",
        inbound_id=inbound_id,
        now=now,
    )


def _queue_acknowledgement(
    connection: Connection,
    app: App,
    ticket: TicketRow,
    rendered: Rendered,
    *,
    sender: MailboxSettings,
    thread: tuple[str, ...],
    dedupe_key: str,
    event: str,
    inbound_id: int | None,
    now: datetime,
) -> None:
    """An automatic acknowledgement to the citizen (its acceptance meets the acknowledgement
    commitments), from the bounce address, queued once per `dedupe_key`."""
    new_id = message_id(app, ticket.ref)
    message = _to_citizen(
        app,
        ticket,
        rendered,
        sender=sender,
        message_id=new_id,
        thread=thread,
        auto_submitted="auto-replied",
        now=now,
    )
    row = _queue(
        connection,
        ref=ticket.ref,
        ticket_id=ticket.id,
        purpose="acknowledgement",
        dedupe_key=dedupe_key,
        message_id=new_id,
        envelope_from=app.settings.smtp.bounce_address,
        recipient=ticket.requester,
        raw=message,
        now=now,
    )
    ticket_rows.add_event(
        connection, ticket.id, now, event, new_id, inbound_id=inbound_id, outbox_id=row
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
    queue = app.settings.queue_for(ticket.category, ticket.mailbox)
    citizen_ids, our_ids = citizen_thread(connection, ticket.id)
    rendered = app.renderer.render(
        "reply",
        {
            "ticket": ticket,
            "text": text.rstrip(),
            "subject": strip_reply_prefix(ticket.subject),
            "queue": queue,
            "org": app.settings.organisation,
        },
    )
    new_id = message_id(app, ticket.ref)
    message = _to_citizen(
        app,
        ticket,
        rendered,
        sender=queue,
        message_id=new_id,
        thread=(*our_ids, *citizen_ids),
        auto_submitted=None,
        now=now,
    )
    message, attached = with_attachments(raw, message)
    key = f"relay:{staff_message_id or inbound_id}"
    row = _queue(
        connection,
        ref=ticket.ref,
        ticket_id=ticket.id,
        purpose=purpose,
        dedupe_key=key,
        message_id=new_id,
        envelope_from=queue.address,
        recipient=ticket.requester,
        raw=message,
        now=now,
    )
    if row is None:
        kind, detail = "reply_duplicate", f"already relayed ({key})"
    else:
        kind, detail = f"{purpose}_queued", f"{len(text)} characters, {attached} bytes attached"
    ticket_rows.add_event(
        connection, ticket.id, now, kind, detail, actor=author, inbound_id=inbound_id, outbox_id=row
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
    queue = app.settings.queue_for(ticket.category, ticket.mailbox)
    rendered = app.renderer.render(
        template,
        {
            "ticket": ticket,
            "queue": queue,
            "org": app.settings.organisation,
            "subject": strip_reply_prefix(ticket.subject),
            "english": may_write_english(app.settings, ticket),
            **values,
        },
    )
    new_id = message_id(app, token_ref)
    message = _to_citizen(
        app,
        ticket,
        rendered,
        sender=queue,
        message_id=new_id,
        thread=thread,
        auto_submitted=None,
        now=now,
    )
    row = _queue(
        connection,
        ref=ticket.ref,
        ticket_id=ticket.id,
        purpose=purpose,
        dedupe_key=dedupe,
        message_id=new_id,
        envelope_from=queue.address,
        recipient=ticket.requester,
        raw=message,
        now=now,
        after_id=after_id,
    )
    ticket_rows.add_event(
        connection,
        ticket.id,
        now,
        f"{purpose}_queued" if row is not None else f"{purpose}_duplicate",
        dedupe,
        actor=author,
        inbound_id=inbound_id,
        outbox_id=row,
    )
    return row


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
    queue = app.settings.queue_for(ticket.category, ticket.mailbox)
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
        envelope_from=app.settings.queue_for(ticket.category, ticket.mailbox).address,
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
    queue = settings.queue_for(ticket.category, ticket.mailbox)
    english = settings.language.english_policy == "detected_english" and ticket.language == "en"
    rendered = app.renderer.render(
        "complete_file",
        {
            "ticket": ticket,
            "org": settings.organisation,
            "mailbox": queue,
            "complete_day": complete_day,
            "english": english or ticket.english_allowed,
        },
    )
    citizen_ids, our_ids = citizen_thread(connection, ticket.id)
    _queue_acknowledgement(
        connection,
        app,
        ticket,
        rendered,
        sender=queue,
        thread=(*our_ids, *citizen_ids),
        dedupe_key=f"complete:{ticket.ref}:{complete_day.isoformat()}:{inbound_id}",
        event="complete_file_ack_queued",
        inbound_id=inbound_id,
        now=now,
    )


# --- to staff ------------------------------------------------------------------------------


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
    return _queue(
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


def with_attachments(raw: bytes, message: bytes) -> tuple[bytes, int]:
    """`message` with the files of the message `raw` attached (up to a total size), and the
    bytes attached. The sender's file name is flattened, never used as a path."""
    if b"attachment" not in raw.lower():
        return message, 0
    original = email.message_from_bytes(raw, policy=email.policy.default)
    files = [
        part
        for part in original.walk()
        if not part.is_multipart() and part.get_content_disposition() == "attachment"
    ]
    if not files:
        return message, 0
    built = email.message_from_bytes(message, _class=EmailMessage, policy=ATTACHING)
    total = 0
    for part in files:
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if total + len(payload) > MAX_RELAYED_ATTACHMENT_BYTES:
            break
        total += len(payload)
        maintype, _, subtype = part.get_content_type().partition("/")
        filename = flatten(part.get_filename() or "piece-jointe", 200).replace("/", "_")
        built.add_attachment(
            payload, maintype=maintype, subtype=subtype or "octet-stream", filename=filename
        )
    return (built.as_bytes(), total) if total else (message, 0)


# --- to administrators ---------------------------------------------------------------------


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
