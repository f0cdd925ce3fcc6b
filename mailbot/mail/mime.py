"""The wire form of the mail mailbot writes: headers and text parts as bytes (pure).

mailbot's own messages have a few fixed shapes (plain text, or plain text with an HTML
alternative), so they are written here directly rather than built as `EmailMessage` objects
and serialised: the standard library's header registry and generator were most of the cost
of an acknowledgement. The rules are the ones the email package applies, for the shapes we
use:

* headers fold at whitespace within 76 characters (RFC 5322 recommends 78); a word that does
  not fit (a long identifier) stays whole on its own line;
* text outside ASCII goes into RFC 2047 encoded words (``=?utf-8?q?...?=``, each at most 75
  characters, never splitting a character), word by word, so the ASCII words stay readable;
  a word that looks like an encoded word is encoded too, so it is never decoded by mistake;
* in a display name, an ASCII name with special characters is quoted (RFC 5322 §3.2.4);
* with SMTPUTF8 (`utf8=True`, RFC 6532) header text is written as UTF-8 instead;
* bodies are UTF-8 in quoted-printable (RFC 2045: lines of at most 76 characters, trailing
  spaces encoded), with CRLF line ends;
* a multipart boundary contains ``=_``, which quoted-printable and base64 text never does.
"""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

MAX_LINE = 76
CRLF = "\r\n"
# Characters an encoded word may carry as they are, in any header (RFC 2047 §5 (3)).
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 5322 specials: an ASCII display name holding one is written as a quoted string.
_SPECIALS = frozenset('()<>[]:;@\\,."')
_WORD_START, _WORD_END = "=?utf-8?q?", "?="
_WORD_ROOM = 75 - len(_WORD_START) - len(_WORD_END)


def _q(char: str) -> str:
    if char in _Q_SAFE:
        return char
    if char == " ":
        return "_"
    return "".join(f"={byte:02X}" for byte in char.encode("utf-8"))


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 Q-encoded words of at most 75 characters each."""
    words: list[str] = []
    current = ""
    for char in text:
        piece = _q(char)
        if current and len(current) + len(piece) > _WORD_ROOM:
            words.append(f"{_WORD_START}{current}{_WORD_END}")
            current = ""
        current += piece
    if current or not words:
        words.append(f"{_WORD_START}{current}{_WORD_END}")
    return words


def _needs_encoding(word: str, *, utf8: bool, phrase: bool) -> bool:
    if "=?" in word or not (utf8 or word.isascii()):
        return True
    return phrase and any(char in _SPECIALS for char in word)


def header_words(value: str, *, utf8: bool = False, phrase: bool = False) -> list[str]:
    """The words of a header value, ready to fold: each run of words that cannot be written
    as they are becomes encoded words (the spaces between them encoded with them). Under
    SMTPUTF8 only a word that looks like an encoded word is encoded."""
    if value.isascii() and "=?" not in value and not phrase:
        return value.split()
    words: list[str] = []
    run: list[str] = []
    for word in value.split():
        if _needs_encoding(word, utf8=utf8, phrase=phrase):
            run.append(word)
            continue
        if run:
            words += encoded_words(" ".join(run))
            run = []
        words.append(word)
    if run:
        words += encoded_words(" ".join(run))
    return words


def fold(name: str, words: Sequence[str]) -> str:
    """``Name: words`` folded at whitespace within 76 characters, CRLF-terminated; a word
    longer than the line stays whole on its own line."""
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) > len(name) + 1 and len(lines[-1]) + 1 + len(word) > MAX_LINE:
            lines.append("")
        lines[-1] += f" {word}"
    return CRLF.join(lines) + CRLF


def unstructured(name: str, value: str, *, utf8: bool = False) -> str:
    """An unstructured header (Subject, our own X- headers)."""
    return fold(name, header_words(value, utf8=utf8))


def address(name: str, addr_spec: str, display_name: str = "", *, utf8: bool = False) -> str:
    """An address header with one mailbox; without a name the address is still written in
    angle brackets (spam filters score a bare address: SpamAssassin's TO_NO_BRKTS_*)."""
    if not display_name:
        return fold(name, [f"<{addr_spec}>"])
    if display_name.isascii() or utf8:
        if any(char in _SPECIALS for char in display_name) or "=?" in display_name:
            escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
            words = f'"{escaped}"'.split(" ")
        else:
            words = display_name.split()
    else:
        words = header_words(display_name, phrase=True)
    return fold(name, [*words, f"<{addr_spec}>"])


def quoted_printable(text: str) -> bytes:
    """UTF-8 text in quoted-printable with CRLF line ends (lines of at most 76 characters)."""
    lines = "\n".join(text.splitlines()) + ("\n" if text.endswith(("\n", "\r")) else "")
    encoded = binascii.b2a_qp(lines.encode("utf-8"), quotetabs=False, istext=True)
    return encoded.replace(b"\n", b"\r\n")


def boundary() -> str:
    return f"=_mailbot_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class Body:
    """A message's text, and optionally its HTML alternative."""

    text: str
    html: str | None = None


def _part_head(subtype: str) -> str:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}"
    )


def write(headers: Sequence[str], body: Body, *, trailing: Sequence[str] = ()) -> bytes:
    """A whole message: `headers` (each already folded, CRLF-terminated), the MIME headers
    of `body`, the `trailing` headers, a blank line and the body."""
    head = "".join(headers) + f"MIME-Version: 1.0{CRLF}"
    if body.html is None:
        head += _part_head("plain") + "".join(trailing) + CRLF
        return head.encode("utf-8") + quoted_printable(body.text)
    mark = boundary()
    head += f'Content-Type: multipart/alternative;{CRLF} boundary="{mark}"{CRLF}'
    head += "".join(trailing) + CRLF
    # The CRLF before each boundary line belongs to the boundary (RFC 2046 §5.1.1), so a
    # part's text keeps its own last line end.
    parts = [
        (_part_head(subtype) + CRLF).encode("ascii") + quoted_printable(content)
        for subtype, content in (("plain", body.text), ("html", body.html))
    ]
    out = head.encode("utf-8") + f"--{mark}{CRLF}".encode("ascii")
    out += f"{CRLF}--{mark}{CRLF}".encode("ascii").join(parts)
    return out + f"{CRLF}--{mark}--{CRLF}".encode("ascii")
