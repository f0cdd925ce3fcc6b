"""Raw bytes -> a typed inbound message (pure; never raises on malformed mail).

What is read from headers is decoded and flattened by `mailbot.mail.decoding`; the From, To,
Cc and Reply-To addresses are read by `mailbot.mail.addresses` (`sender` strictly, because it
decides whether mail is from staff; `from_address` loosely, because it is where an answer to a
citizen goes); delivery reports and other failure notices by `mailbot.mail.delivery_reports`.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

from mailbot.mail.addresses import (
    FROM_REFUSED,
    Address,
    from_refusal,
    header_addresses,
    single_sender,
    usable_address,
)
from mailbot.mail.decoding import (
    MAX_HEADER_CHARS,
    MAX_TEXT_CHARS,
    decoded,
    flatten,
    header_str,
    header_text,
    part_text,
    raw_header,
    text_from_bytes,
    walk_bounded,
)
from mailbot.mail.delivery_reports import (
    DeliveryReport,
    FailureNotice,
    has_machine_signs,
    read_delivery_report,
    read_failure_notice,
)

_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class Attachment:
    """What we know of an attached file; the sender's filename is never used as a path."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A part of a message that is neither its text nor an attachment, so a notice would not
    show it: a calendar invitation, an inline image without a file name, any other part."""

    content_type: str
    size: int
    kind: str  # calendar | inline_image | other
    filename: str = ""


@dataclass(frozen=True, slots=True)
class InboundMail:
    """A parsed inbound message: what every later stage reads, never the raw bytes."""

    message_id: str
    subject: str
    sender: Address | None  # strictly parsed From: decides staff identity
    from_address: Address | None  # the one usable From address: where answers go
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    return_path: str | None  # None: no header; "": the null sender <>
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    content_type: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]  # (lower-cased name, flattened value), in order
    delivery_report: DeliveryReport | None = None
    failure_notice: FailureNotice | None = None
    defects: tuple[str, ...] = field(default=())
    # Parts neither in `text` nor in `attachments` (what a notice must name).
    left_out: tuple[LeftOut, ...] = field(default=())

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def header_values(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this message answers, newest first (In-Reply-To, then References)."""
        seen: list[str] = []
        for item in (*self.in_reply_to, *reversed(self.references)):
            if item not in seen:
                seen.append(item)
        return tuple(seen)


def _message_ids(message: Message, name: str) -> tuple[str, ...]:
    raw = raw_header(message, name)
    if raw is None:
        return ()
    return tuple(dict.fromkeys(_MSGID.findall(flatten(raw, 20_000))))


def _return_path(message: Message) -> str | None:
    raw = raw_header(message, "Return-Path")
    if raw is None:
        return None
    value = flatten(raw).strip().strip("<>").strip()
    return value


def _date(message: Message) -> datetime | None:
    raw = raw_header(message, "Date")
    if not raw:
        return None
    try:
        value = parsedate_to_datetime(flatten(raw))
    except (TypeError, ValueError, IndexError):
        return None
    return value if value.tzinfo is not None else None


class _TextExtractor(HTMLParser):
    """HTML to plain text, good enough for classification and staff notices."""

    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # HTMLParser is lenient, but hostile input must not escape
        return re.sub(r"<[^>]*>", " ", html)
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _left_out(part: Message, ctype: str) -> LeftOut:
    payload = part.get_payload(decode=True)
    kind = (
        "calendar"
        if ctype == "text/calendar"
        else "inline_image"
        if ctype.startswith("image/")
        else "other"
    )
    return LeftOut(
        content_type=ctype,
        size=len(payload) if isinstance(payload, bytes) else 0,
        kind=kind,
        filename=flatten(decoded(part.get_filename() or ""), 255),
    )


def _bodies(
    message: Message, defects: list[str], left_out: list[LeftOut]
) -> tuple[str, str, tuple[Attachment, ...]]:
    """The text, the HTML and the attachments; every other leaf part goes to `left_out`."""
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    for part, _depth in walk_bounded(message, defects):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("multipart/"):
            # The parser could not split it (boundary missing or wrong): keep the raw body
            # as text rather than lose the sender's words.
            raw_body = part.get_payload(decode=True)
            if isinstance(raw_body, bytes) and raw_body.strip():
                defects.append("multipart body without usable boundaries; kept as plain text")
                text_parts.append(text_from_bytes(raw_body)[:MAX_TEXT_CHARS])
            continue
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and not ctype.startswith("text/")):
            payload = part.get_payload(decode=True)
            attachments.append(
                Attachment(
                    filename=flatten(decoded(filename or ""), 255) or "sans-nom",
                    content_type=ctype,
                    size=len(payload) if isinstance(payload, bytes) else 0,
                )
            )
        elif ctype == "text/plain":
            text_parts.append(part_text(part))
        elif ctype == "text/html":
            html_parts.append(part_text(part))
        else:
            left_out.append(_left_out(part, ctype))
    html = "\n".join(html_parts)[:MAX_TEXT_CHARS]
    text = "\n".join(text_parts)[:MAX_TEXT_CHARS] or html_to_text(html)[:MAX_TEXT_CHARS]
    return text, html, tuple(attachments)


@dataclass(frozen=True, slots=True)
class CarriedFile:
    """A file a message carries, decoded, as a referral passes it on: an attachment (the
    same rule as `InboundMail.attachments`) or a part left out of the text (an inline image,
    a calendar invitation...), named after its type when it has no name."""

    filename: str
    content_type: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class MessageFiles:
    """Every file of a message, and whether all its parts could be read (`complete`: no
    part beyond MAX_PARTS or MAX_DEPTH, no body the parser could not split)."""

    files: tuple[CarriedFile, ...]
    complete: bool


def files_of(raw: bytes) -> MessageFiles:
    """The files of the message `raw`, whole, in order: every leaf part but its text and
    HTML bodies. The sender's file name is flattened, never a path."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        return MessageFiles((), complete=False)
    defects: list[str] = []
    files: list[CarriedFile] = []
    complete = True
    for part, _depth in walk_bounded(message, defects):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("multipart/"):
            complete = False
            continue
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        is_file = disposition == "attachment" or (filename and not ctype.startswith("text/"))
        if not is_file and ctype in ("text/plain", "text/html"):
            continue  # the text, which the referral carries in its own body
        payload = part.get_payload(decode=True)
        name = flatten(decoded(filename or ""), 200).replace("/", "_").replace("\\", "_")
        files.append(
            CarriedFile(
                filename=name or f"piece-{len(files) + 1}.{ctype.partition('/')[2] or 'bin'}",
                content_type=ctype,
                payload=payload if isinstance(payload, bytes) else b"",
            )
        )
    return MessageFiles(tuple(files), complete=complete and not defects)


# Headers a relay adds on the way: a redelivered message differs from the first copy in
# these only.
TRACE_HEADERS = frozenset(
    {
        "received",
        "return-path",
        "delivered-to",
        "x-original-to",
        "x-delivered-to",
        "envelope-to",
        "x-envelope-to",
        "received-spf",
        "authentication-results",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "x-resent",
    }
)
_HEADER_START = re.compile(rb"^([!-9;-~]+):", re.M)


def request_fingerprint(mail: InboundMail, raw: bytes) -> str:
    """What makes two deliveries the same message: the same sender and Message-ID; without a
    Message-ID, the same bytes once the relays' trace headers are set aside. An MTA
    redelivery, or one message sent to several of our mailboxes, has one fingerprint."""
    sender = mail.from_address.address if mail.from_address else ""
    if mail.message_id:
        key = f"id\n{sender}\n{mail.message_id}".encode()
    else:
        key = b"content\n" + _without_trace(raw)
    return hashlib.sha256(key).hexdigest()


def _without_trace(raw: bytes) -> bytes:
    head, separator, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    kept: list[bytes] = []
    keep = True
    for line in head.split(b"\n"):
        if line[:1] not in (b" ", b"\t"):
            match = _HEADER_START.match(line)
            keep = not (match and match.group(1).decode("ascii").lower() in TRACE_HEADERS)
        if keep:
            kept.append(line)
    return b"\n".join(kept) + separator + body


def parse_message(raw: bytes) -> InboundMail:
    """Parse raw RFC 5322 bytes; malformed input yields defects, not exceptions."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
        early_defects: list[str] = []
    except RecursionError:
        # The standard parser recurses once per MIME level; a hostile depth exhausts the
        # stack before MAX_DEPTH can apply. Keep the headers and drop the body.
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(
            raw, headersonly=True
        )
        early_defects = ["MIME nesting too deep to parse; the body is kept as raw text"]
    defects = [type(defect).__name__ for defect in message.defects] + early_defects
    headers = tuple(
        (str(name).lower(), flatten(decoded(header_str(value)), MAX_HEADER_CHARS))
        for name, value in message.raw_items()
    )
    ctype = message.get_content_type()
    left_out: list[LeftOut] = []
    text, html, attachments = _bodies(message, defects, left_out)
    report = notice = None
    raw_from = raw_header(message, "From")
    return_path = _return_path(message)
    if ctype == "multipart/report":
        report_type = message.get_param("report-type") or ""
        report = read_delivery_report(message, str(report_type).lower())
    elif not early_defects and has_machine_signs(message, raw_from, return_path):
        # (A body too deep to parse holds no notice, and would be parsed again for nothing.)
        notice = read_failure_notice(raw, message, text)
    message_ids = _message_ids(message, "Message-ID")
    sender = single_sender(message)
    if raw_from is not None and sender is None:
        defects.append("From header could not be parsed strictly")
    from_address = usable_address(raw_from) if raw_from is not None else None
    refusal = from_refusal(raw_from) if raw_from is not None and from_address is None else None
    if refusal is not None:
        defects.append(f"{FROM_REFUSED}{refusal}")
    return InboundMail(
        message_id=message_ids[0] if message_ids else "",
        subject=header_text(message, "Subject"),
        sender=sender,
        from_address=from_address,
        reply_to=header_addresses(message, "Reply-To"),
        to=header_addresses(message, "To"),
        cc=header_addresses(message, "Cc"),
        return_path=return_path,
        in_reply_to=_message_ids(message, "In-Reply-To"),
        references=_message_ids(message, "References"),
        date=_date(message),
        content_type=ctype,
        text=text,
        html=html,
        attachments=attachments,
        headers=headers,
        delivery_report=report,
        failure_notice=notice,
        defects=tuple(defects),
        left_out=tuple(left_out),
    )
