"""Header values and MIME parts decoded safely (pure; never raises on malformed mail).

Everything taken from a message is decoded with replacement and has every control and
line-separator character flattened, so later stages can put it in a header or a log line
without injection. Raw 8-bit bytes are UTF-8 when they are (RFC 6532), else Windows-1252.
"""

from __future__ import annotations

import email.errors
import re
from email.header import decode_header, make_header
from email.message import Message

MAX_PARTS = 200
MAX_DEPTH = 20
MAX_TEXT_CHARS = 200_000
MAX_HEADER_CHARS = 2_000

# Every character that may end or split a header line, or that no header may carry: C0 and
# C1 controls, DEL, and the Unicode line and paragraph separators (str.splitlines breaks on
# several of them, and so does the email package's folding).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")


def flatten(text: str, limit: int = MAX_HEADER_CHARS) -> str:
    """One line, no control or line-separator character, at most `limit` characters: safe in
    any header we write and in a log line."""
    return _UNSAFE.sub(" ", text).strip()[:limit]


def header_str(value: object) -> str:
    """A raw header value as text; raw 8-bit bytes are UTF-8 (RFC 6532), else Windows-1252.

    The bytes parser keeps 8-bit header bytes as surrogate escapes, and compat32 would turn
    them into U+FFFD, losing every accented letter of an old client's unencoded subject.
    """
    text = value if isinstance(value, str) else str(value)
    if not _ESCAPED_BYTES.search(text):
        return text
    return text_from_bytes(text.encode("utf-8", "surrogateescape"))


def text_from_bytes(data: bytes) -> str:
    """Bytes of no declared charset: UTF-8 when they are, else Windows-1252; never raises."""
    try:
        return data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace").replace("\r\n", "\n")


def raw_header(message: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return header_str(value)
    return None


# A run of RFC 2047 encoded words (=?charset?encoding?text?=) with only spaces between them.
_WORD = r"=\?[\x21-\x3e\x40-\x7e]+\?[bBqQ]\?[\x21-\x3e\x40-\x7e]*\?="
_ENCODED_RUN = re.compile(rf"{_WORD}(?:[ \t]+{_WORD})*")


def decoded(raw: str) -> str:
    """RFC 2047 decoding that never raises: unknown charsets decode with replacement.

    Text that was raw 8-bit on the wire is already decoded (`header_str`); when encoded words
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


def header_text(message: Message, name: str) -> str:
    raw = raw_header(message, name)
    return flatten(decoded(raw)) if raw is not None else ""


def walk_bounded(message: Message, defects: list[str]) -> list[tuple[Message, int]]:
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


def part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset()
    if charset in (None, "us-ascii", "ascii") and not payload.isascii():
        # 8-bit text with no charset (or a false "us-ascii"): old French clients send Latin-1.
        return text_from_bytes(payload)[:MAX_TEXT_CHARS]
    charset = charset or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        text = payload.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n")[:MAX_TEXT_CHARS]
