"""Queueing one message, whoever it is for: its Message-ID, the journal headers put first, its
outbox row; the files of a message attached to another; and, read back, the configured
mailbox a queued message is sent from.

Each message gets its Message-ID once, here (a signed thread token when it concerns a ticket,
so a reply to it finds the ticket), and becomes one outbox row written on the caller's
connection, in the transaction that decided it. A dedupe key per message makes every queueing
safe to repeat; the sender (mailbot/sending/outbox.py) sends the rows.
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import parseaddr

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import outbox_rows
from mailbot.mail import mime, tokens
from mailbot.mail.decoding import flatten
from mailbot.mail.render import JOURNAL_KEY_HEADER, JOURNAL_REF_HEADER, PURPOSE_HEADER
from mailbot.settings import MailboxSettings, Settings

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


def queue_row(
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
    """One outbox row for `raw`, with the journal headers put first (None when `dedupe_key`
    was queued already)."""
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


def sending_mailbox(settings: Settings, raw: bytes) -> MailboxSettings:
    """The configured mailbox whose address the message is from (the first one otherwise)."""
    head = BytesHeaderParser().parsebytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    address = parseaddr(str(head.get("From", "")))[1].lower()
    for mailbox in settings.mailboxes:
        if mailbox.address.lower() == address:
            return mailbox
    return settings.mailboxes[0]
