"""Raw bytes -> a typed inbound message (pure; never raises on malformed mail).

Everything taken from a message is decoded with replacement and has every control and
line-separator character flattened, so later stages can put it in a header or a log line
without injection. Two readings of the From header serve two purposes:

* `sender` is parsed strictly: any defect means "no address" (the CVE-2023-27043 trap). It
  decides whether mail is from staff, which grants power.
* `from_address` is "the one usable address", extracted the way mature mail software does
  (an unquoted dot or comma in the display name, a stray separator, a trailing dot in the
  domain, an internationalised address): it is where an answer to a citizen goes. It is
  None when the header holds no address, or more than one distinct one (ambiguous).

Addresses are lower-cased whole: they compare without regard to case everywhere.

Delivery reports come in two forms. A multipart/report (RFC 3464) is read here, field by field
(`DeliveryReport`). Any other form (qmail's, Exim's, Sendmail's, Exchange's text notices...)
is read by GNU Mailman's `flufl.bounce` detectors (`FailureNotice`), and only in mail that
bears a sign of a machine sender: the detectors read every line of a message several times,
which a person's mail must not pay for.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parsedate_to_datetime
from functools import lru_cache
from html.parser import HTMLParser

from email_validator import EmailNotValidError, validate_email
from flufl.bounce import all_failures

MAX_PARTS = 200
MAX_DEPTH = 20
MAX_TEXT_CHARS = 200_000
MAX_HEADER_CHARS = 2_000

_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\]\\,;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_MSGID = re.compile(r"<[^<>\s]+>")
# The defect that says why the From address is refused (read by tickets.decide).
FROM_REFUSED = "From address refused: "
# Every character that may end or split a header line, or that no header may carry: C0 and
# C1 controls, DEL, and the Unicode line and paragraph separators (str.splitlines breaks on
# several of them, and so does the email package's folding).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")
# How much of a returned message's text is searched for the Message-ID it carries, and of a
# machine's message the bounce detectors read (the notice and the returned headers come
# first; past this, a returned attachment would cost seconds for nothing).
REPORT_SCAN_CHARS = 50_000
NOTICE_SCAN_BYTES = 64 * 1024
# A returned copy has one Message-ID; a few more allow for a quoted thread, no more.
MAX_RETURNED_IDS = 10
_EMBEDDED_MESSAGE_ID = re.compile(r"^[ \t>]*message-id:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# A detector that breaks on broken mail is expected (the notice is then left to the subject
# rule of classification): flufl.bounce would log its traceback at ERROR first.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox; `address` is lower-cased whole (addresses compare without case)."""

    address: str
    display_name: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def needs_smtputf8(self) -> bool:
        """A non-ASCII local part can only be sent to over SMTPUTF8 (RFC 6531)."""
        return not self.address.isascii()


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
class DeliveryReport:
    """The machine-readable part of a multipart/report (bounce, read receipt, feedback)."""

    report_type: str  # delivery-status | disposition-notification | feedback-report | ...
    action: str = ""  # failed | delayed | delivered | relayed | expanded
    status: str = ""  # e.g. 5.1.1
    final_recipient: str = ""
    original_message_id: str = ""

    @property
    def is_permanent_failure(self) -> bool:
        return self.report_type == "delivery-status" and (
            self.status.startswith("5.") or (not self.status and self.action == "failed")
        )


@dataclass(frozen=True, slots=True)
class FailureNotice:
    """A delivery report in another form than RFC 3464, as `flufl.bounce` reads it: the
    recipients that failed for good and those that failed for now."""

    permanent: tuple[str, ...]  # normalised, lower-cased addresses
    temporary: tuple[str, ...] = ()
    status: str = ""  # the RFC 3463 code its text gives (a permanent one first), e.g. 5.1.1
    returned_message_ids: tuple[str, ...] = ()  # the Message-IDs of the copy it returns

    @property
    def is_permanent_failure(self) -> bool:
        """A recipient failed for good, and the text gives no transient code (4.x.x) alone:
        detectors that cannot tell a delay from a failure call every failure permanent."""
        return bool(self.permanent) and not self.status.startswith("4.")


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


def flatten(text: str, limit: int = MAX_HEADER_CHARS) -> str:
    """One line, no control or line-separator character, at most `limit` characters: safe in
    any header we write and in a log line."""
    return _UNSAFE.sub(" ", text).strip()[:limit]


def _header_str(value: object) -> str:
    """A raw header value as text; raw 8-bit bytes are UTF-8 (RFC 6532), else Windows-1252.

    The bytes parser keeps 8-bit header bytes as surrogate escapes, and compat32 would turn
    them into U+FFFD, losing every accented letter of an old client's unencoded subject.
    """
    text = value if isinstance(value, str) else str(value)
    if not _ESCAPED_BYTES.search(text):
        return text
    return _text_from_bytes(text.encode("utf-8", "surrogateescape"))


def _text_from_bytes(data: bytes) -> str:
    """Bytes of no declared charset: UTF-8 when they are, else Windows-1252; never raises."""
    try:
        return data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace").replace("\r\n", "\n")


def _raw_header(message: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return _header_str(value)
    return None


# A run of RFC 2047 encoded words (=?charset?encoding?text?=) with only spaces between them.
_WORD = r"=\?[\x21-\x3e\x40-\x7e]+\?[bBqQ]\?[\x21-\x3e\x40-\x7e]*\?="
_ENCODED_RUN = re.compile(rf"{_WORD}(?:[ \t]+{_WORD})*")


def _decoded(raw: str) -> str:
    """RFC 2047 decoding that never raises: unknown charsets decode with replacement.

    Text that was raw 8-bit on the wire is already decoded (`_header_str`); when encoded words
    sit beside it, each run of encoded words is decoded alone and the text around it kept as
    it is (the standard library would read that text as ASCII and lose its accents)."""
    if raw.isascii():
        return _decoded_ascii(raw)
    return _ENCODED_RUN.sub(lambda run: _decoded_ascii(run.group()), raw)


def _decoded_ascii(raw: str) -> str:
    try:
        chunks = decode_header(raw)
    except (ValueError, email.errors.HeaderParseError):
        # A broken encoded word (bad base64): keep the text as sent rather than fail.
        return raw
    try:
        return str(make_header(chunks))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        parts = []
        for chunk, charset in chunks:
            if isinstance(chunk, bytes):
                try:
                    parts.append(chunk.decode(charset or "ascii", errors="replace"))
                except LookupError:
                    parts.append(chunk.decode("utf-8", errors="replace"))
            else:
                parts.append(chunk)
        return "".join(parts)


def _header_text(message: Message, name: str) -> str:
    raw = _raw_header(message, name)
    return flatten(_decoded(raw)) if raw is not None else ""


@lru_cache(maxsize=1024)
def parse_addresses(value: str) -> tuple[Address, ...] | None:
    """Strictly parse an address list; None when it has any defect. (Pure, and the same
    header is read several times per message: remembered.)"""
    if not value.strip():
        return ()
    try:
        header = email.policy.default.header_factory("to", value)
    except Exception:  # the header parser raises several types on hostile input
        return None
    if header.defects:
        return None
    found: list[Address] = []
    for group in header.groups:
        for item in group.addresses:
            spec = item.addr_spec
            if not _ADDR_SPEC.match(spec):
                return None
            found.append(
                Address(address=spec.lower(), display_name=flatten(item.display_name or "", 200))
            )
    return tuple(found)


# An address in angle brackets, and a bare one (no brackets anywhere in the header).
_ANGLE_ADDRESS = re.compile(r"<\s*([^<>\s]+@[^<>\s]+?)\s*>")
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"]+@[^\s<>()\[\],;:\"]+")
_COMMENT = re.compile(r"\([^()]*\)")


# RFC 6761 special-use names that can never receive mail: an address there is refused, with
# this reason. The other reserved names (`test.`, `example.`, example.org, example.com, ...)
# are ordinary names to mail software (RFC 6761 sections 6.2 and 6.5): a ministry's test
# environment or pilot uses them, so they are answered like any other.
UNDELIVERABLE_SPECIAL_USE = {
    "invalid": "a name that is guaranteed never to exist (RFC 6761 section 6.4)",
    "localhost": "the sender's own machine, not a mail domain (RFC 6761 section 6.3)",
    "local": "a local-network (multicast DNS) name, not a mail domain (RFC 6762)",
    "onion": "a Tor onion service name, not reachable by ordinary mail (RFC 7686)",
    "arpa": "the Internet's infrastructure zone, not a mail domain (RFC 3172)",
}


def special_use_refusal(address: str) -> str | None:
    """Why `address` is refused because of its domain's RFC 6761 special-use name, or None."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    for name, why in UNDELIVERABLE_SPECIAL_USE.items():
        if domain == name or domain.endswith("." + name):
            return f"the address is at .{name}, {why}"
    return None


@lru_cache(maxsize=1024)
def normalise_address(candidate: str) -> str | None:
    """A deliverable address in its canonical form, or None: trailing dots of the domain
    dropped, international domains in their ASCII form when the local part is ASCII (no
    SMTPUTF8 needed then), lower-cased. `email_validator` does the syntax and IDNA work;
    `test_environment` makes it take `test.` names like any other (its list of special-use
    names refuses them by default), and the names that can never receive mail are refused
    here (`special_use_refusal`)."""
    text = candidate.strip().strip(".,;:").rstrip(".")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    if special_use_refusal(text) is not None:
        return None
    try:
        checked = validate_email(
            f"{local}@{domain.rstrip('.')}",
            check_deliverability=False,
            allow_smtputf8=True,
            test_environment=True,
        )
    except (EmailNotValidError, UnicodeError, ValueError):
        return None
    return str(checked.ascii_email or checked.normalized).lower()


def from_refusal(raw: str) -> str | None:
    """Why the addresses of a From header value (undecoded) are refused for their domain, or
    None: for the note on a request held without a usable reply address."""
    value = flatten(raw, 10_000)
    for candidate in (*_ANGLE_ADDRESS.findall(value), *_BARE_ADDRESS.findall(value)):
        reason = special_use_refusal(candidate.strip().strip(".,;:"))
        if reason is not None:
            return reason
    return None


def usable_address(raw: str) -> Address | None:
    """The one usable address of a From header value (undecoded), or None.

    A strictly valid single mailbox is taken as it is. Otherwise every address-like string,
    in angle brackets or bare, must name one and the same address (``J. Smith
    <js@example.org>``, ``Roy, Marie <m@example.org>``, ``<m@example.org>,``,
    ``m@example.org. (Marie)``). Addresses are looked for in the undecoded value, so an RFC
    2047 encoded word in a display name can never add one. Two different addresses
    (``victim@example.org <evil@example.net>``) are ambiguous: None, and a person decides.
    """
    value = flatten(raw, 10_000)
    strict = parse_addresses(value)
    if strict is not None and len(strict) == 1:
        address = normalise_address(strict[0].address)
        if address is not None:
            return Address(address=address, display_name=strict[0].display_name)
    bracketed = _ANGLE_ADDRESS.findall(value)
    outside = _COMMENT.sub(" ", _ANGLE_ADDRESS.sub(" ", value))
    found = {normalise_address(item) for item in (*bracketed, *_BARE_ADDRESS.findall(outside))}
    if len(found) != 1 or None in found:
        return None
    [address] = found
    assert address is not None
    if bracketed:
        name = value[: value.find("<")]
    else:
        comments = _COMMENT.findall(value)
        name = comments[0][1:-1] if comments else ""
    return Address(address=address, display_name=_decoded_name(name))


def addresses_in(text: str) -> frozenset[str]:
    """Every address a header value names, read loosely and normalised: for "was this
    mailbox among the recipients?", never for a decision that grants power."""
    candidates = [*_ANGLE_ADDRESS.findall(text), *_BARE_ADDRESS.findall(text)]
    return frozenset(a for a in map(normalise_address, candidates) if a is not None)


def _decoded_name(name: str) -> str:
    text = flatten(_decoded(name), 200).strip(" \t,;:")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"').strip()
    return text


def _addresses(message: Message, name: str) -> tuple[Address, ...]:
    raw = _raw_header(message, name)
    if raw is None:
        return ()
    return parse_addresses(flatten(raw, 10_000)) or ()


def _single_sender(message: Message) -> Address | None:
    raw = _raw_header(message, "From")
    if raw is None:
        return None
    parsed = parse_addresses(flatten(raw, 10_000))
    if not parsed or len(parsed) != 1:
        return None
    return parsed[0]


def _message_ids(message: Message, name: str) -> tuple[str, ...]:
    raw = _raw_header(message, name)
    if raw is None:
        return ()
    return tuple(dict.fromkeys(_MSGID.findall(flatten(raw, 20_000))))


def _return_path(message: Message) -> str | None:
    raw = _raw_header(message, "Return-Path")
    if raw is None:
        return None
    value = flatten(raw).strip().strip("<>").strip()
    return value


def _date(message: Message) -> datetime | None:
    raw = _raw_header(message, "Date")
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


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset()
    if charset in (None, "us-ascii", "ascii") and not payload.isascii():
        # 8-bit text with no charset (or a false "us-ascii"): old French clients send Latin-1.
        return _text_from_bytes(payload)[:MAX_TEXT_CHARS]
    charset = charset or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        text = payload.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")[:MAX_TEXT_CHARS]


def _delivery_report(message: Message, report_type: str) -> DeliveryReport:
    action = status = final_recipient = original = ""
    for part, _depth in _walk_bounded(message, []):
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/disposition-notification"):
            for block in _report_blocks(part):
                action = action or flatten(block.get("Action", "") or "").lower()
                if not status:
                    match = _STATUS.search(str(block.get("Status", "") or ""))
                    status = match.group(0) if match else ""
                recipient = str(block.get("Final-Recipient", "") or "")
                if recipient and not final_recipient:
                    final_recipient = flatten(recipient.rpartition(";")[2]).strip("<> ").lower()
                original = original or flatten(str(block.get("Original-Message-ID", "") or ""))
        elif ctype in ("message/rfc822", "text/rfc822-headers") and not original:
            original = _embedded_message_id(part)
    return DeliveryReport(
        report_type=report_type,
        action=action,
        status=status,
        final_recipient=final_recipient,
        original_message_id=original,
    )


def _report_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [item for item in payload if isinstance(item, Message)]
    if isinstance(payload, str):
        # Some servers send the status as text: parse its header blocks ourselves.
        return [email.message_from_string(chunk + "\n") for chunk in payload.split("\n\n")]
    return []


def _embedded_message_id(part: Message) -> str:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return flatten(str(inner[0].get("Message-ID", "") or ""))
        return ""
    headers = email.message_from_string(_part_text(part))
    return flatten(str(headers.get("Message-ID", "") or ""))


def quoted_message_ids(text: str) -> tuple[str, ...]:
    """The Message-IDs of header lines quoted in a text ("Message-ID: <...>", quoted or not
    with ">"): where a report that returns a copy in its text names the message it is about."""
    found = _EMBEDDED_MESSAGE_ID.findall(text[:REPORT_SCAN_CHARS])
    return tuple(dict.fromkeys(found))


class _TextHeaders(email.policy.Compat32):
    """compat32 with every header value as text: the bounce detectors call string methods on
    headers, where compat32 gives a `Header` object for raw 8-bit bytes."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return _header_str(value)


_TEXT_HEADERS = _TextHeaders()
_NOTICE_SENDERS = frozenset({"mailer-daemon", "postmaster"})


def _machine_signs(message: Message, from_raw: str | None, return_path: str | None) -> bool:
    """A sign, readable without the configuration, that no person sent the message: the null
    sender, an Auto-Submitted other than "no", Exim's X-Failed-Recipients, a From that names
    no address, or a mailer daemon's. Classification then judges the sender with its rules."""
    if return_path == "" or _raw_header(message, "X-Failed-Recipients") is not None:
        return True
    auto = (_raw_header(message, "Auto-Submitted") or "").split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return True
    if "@" not in (from_raw or ""):
        return True
    found = addresses_in(flatten(from_raw or "", 10_000))
    return any(address.partition("@")[0] in _NOTICE_SENDERS for address in found)


def _failure_notice(raw: bytes, message: Message, text: str) -> FailureNotice | None:
    """What flufl.bounce's detectors find in the head of `raw`, or None: no failed recipient,
    or a detector broke on the message (seen with no From header at all)."""
    head = raw[:NOTICE_SCAN_BYTES]
    if len(raw) > NOTICE_SCAN_BYTES:
        head = head[: head.rfind(b"\n") + 1] or head
    try:
        temporary, permanent = all_failures(email.message_from_bytes(head, policy=_TEXT_HEADERS))
    except Exception:  # heuristics over any input: a failure only means "not recognised"
        return None
    failed = _normalised(permanent)
    delayed = _normalised(temporary) - failed
    if not failed and not delayed:
        return None
    returned = [
        _embedded_message_id(part)
        for part, _depth in _walk_bounded(message, [])
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers")
    ]
    codes = [match.group(0) for match in _STATUS.finditer(text[:REPORT_SCAN_CHARS])]
    permanent_codes = [code for code in codes if code.startswith("5.")]
    transient_codes = [code for code in codes if code.startswith("4.")]
    return FailureNotice(
        permanent=tuple(sorted(failed)),
        temporary=tuple(sorted(delayed)),
        status=(permanent_codes or transient_codes or [""])[0],
        returned_message_ids=tuple(
            dict.fromkeys(flatten(item) for item in (*returned, *quoted_message_ids(text)) if item)
        )[:MAX_RETURNED_IDS],
    )


def _normalised(addresses: frozenset[bytes]) -> set[str]:
    decoded = (normalise_address(item.decode("ascii", "replace")) for item in addresses)
    return {address for address in decoded if address is not None}


def _walk_bounded(message: Message, defects: list[str]) -> list[tuple[Message, int]]:
    """The parts of `message`, depth-first, within MAX_PARTS and MAX_DEPTH."""
    found: list[tuple[Message, int]] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if len(found) >= MAX_PARTS:
            defects.append("too many MIME parts; the rest were ignored")
            break
        found.append((part, depth))
        if part.is_multipart():
            if depth >= MAX_DEPTH:
                defects.append("MIME nesting too deep; inner parts were ignored")
                continue
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(
                    (child, depth + 1) for child in reversed(children) if isinstance(child, Message)
                )
    return found


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
        filename=flatten(_decoded(part.get_filename() or ""), 255),
    )


def _bodies(
    message: Message, defects: list[str], left_out: list[LeftOut]
) -> tuple[str, str, tuple[Attachment, ...]]:
    """The text, the HTML and the attachments; every other leaf part goes to `left_out`."""
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    for part, _depth in _walk_bounded(message, defects):
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype.startswith("multipart/"):
            # The parser could not split it (boundary missing or wrong): keep the raw body
            # as text rather than lose the sender's words.
            raw_body = part.get_payload(decode=True)
            if isinstance(raw_body, bytes) and raw_body.strip():
                defects.append("multipart body without usable boundaries; kept as plain text")
                text_parts.append(_text_from_bytes(raw_body)[:MAX_TEXT_CHARS])
            continue
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and not ctype.startswith("text/")):
            payload = part.get_payload(decode=True)
            attachments.append(
                Attachment(
                    filename=flatten(_decoded(filename or ""), 255) or "sans-nom",
                    content_type=ctype,
                    size=len(payload) if isinstance(payload, bytes) else 0,
                )
            )
        elif ctype == "text/plain":
            text_parts.append(_part_text(part))
        elif ctype == "text/html":
            html_parts.append(_part_text(part))
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
    for part, _depth in _walk_bounded(message, defects):
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
        name = flatten(_decoded(filename or ""), 200).replace("/", "_").replace("\\", "_")
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
        (str(name).lower(), flatten(_decoded(_header_str(value)), MAX_HEADER_CHARS))
        for name, value in message.raw_items()
    )
    ctype = message.get_content_type()
    left_out: list[LeftOut] = []
    text, html, attachments = _bodies(message, defects, left_out)
    report = notice = None
    raw_from = _raw_header(message, "From")
    return_path = _return_path(message)
    if ctype == "multipart/report":
        report_type = message.get_param("report-type") or ""
        report = _delivery_report(message, str(report_type).lower())
    elif not early_defects and _machine_signs(message, raw_from, return_path):
        # (A body too deep to parse holds no notice, and would be parsed again for nothing.)
        notice = _failure_notice(raw, message, text)
    message_ids = _message_ids(message, "Message-ID")
    sender = _single_sender(message)
    if raw_from is not None and sender is None:
        defects.append("From header could not be parsed strictly")
    from_address = usable_address(raw_from) if raw_from is not None else None
    refusal = from_refusal(raw_from) if raw_from is not None and from_address is None else None
    if refusal is not None:
        defects.append(f"{FROM_REFUSED}{refusal}")
    return InboundMail(
        message_id=message_ids[0] if message_ids else "",
        subject=_header_text(message, "Subject"),
        sender=sender,
        from_address=from_address,
        reply_to=_addresses(message, "Reply-To"),
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
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
