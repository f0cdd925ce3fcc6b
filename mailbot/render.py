"""Templates -> outgoing EmailMessage (pure: the templates are read once, at construction).

Wording lives in `templates/`; a citizen's text is only ever a variable, autoescaped in HTML.
Every header value that may come from a message is flattened before use, and messages are
built only with `email.message.EmailMessage` under `POLICY`: the SMTP policy with RFC 2045's
76-character lines (quoted-printable and base64 bodies, folded headers), message identifiers
kept whole (see `MailPolicy`). Spam filters penalise longer lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from mailbot.parse import flatten
from mailbot.settings import MailboxSettings

LOOP_HEADER = "X-Mailbot-Loop"
# What an automatic message to staff is (reminder, digest, notice...), for filters and audits.
PURPOSE_HEADER = "X-Mailbot-Purpose"
# Appears only in mailbot's internal mail to staff: if it survives in a staff reply, the
# quoted history was not cut cleanly and the reply is held (see mailbot/workflow.py).
INTERNAL_MARKER = "--- Usage interne : ne pas transmettre ---"
# RFC 2045: quoted-printable and base64 lines are at most 76 characters, the soft line break
# included. Headers fold at the same width, within RFC 5322's recommended 78.
MAX_LINE_LENGTH = 76
IDENTIFIER_HEADERS = frozenset({"message-id", "in-reply-to", "references"})


def fold_identifiers(name: str, value: str, width: int, linesep: str) -> str:
    """`Name: <id> <id>...` folded between identifiers only, the first one always on the
    field's own line; an identifier longer than the width stays whole on its line."""
    lines = [f"{name}:"]
    for number, identifier in enumerate(value.split()):
        if number > 0 and len(lines[-1]) + 1 + len(identifier) > width:
            lines.append("")
        lines[-1] += f" {identifier}"
    return linesep.join(lines) + linesep


class HeaderClasses(HeaderRegistry):
    """The standard header registry, without its cost of building a new class for every
    header it parses: one class per header name, made once."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


# Headers whose value repeats from message to message (the queue's address, the loop token,
# fixed flags, a text part's type): parsed and folded once, then reused.
REPEATED_HEADERS = frozenset(
    {
        "from",
        "reply-to",
        "auto-submitted",
        "x-auto-response-suppress",
        LOOP_HEADER.lower(),
        PURPOSE_HEADER.lower(),
        "content-language",
        "mime-version",
        "content-transfer-encoding",
    }
)


class MailPolicy(EmailPolicy):
    """The SMTP policy, except that message identifiers are never folded inside or before an
    identifier nor turned into encoded words: some clients mishandle a folded Message-ID,
    and an encoded In-Reply-To or References breaks threading. Repeated headers are parsed
    and folded once (a bounded cache): building mail is most of an acknowledgement's cost."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if isinstance(value, str) and name.lower() in REPEATED_HEADERS:
            return (name, _parsed_header(self.header_factory, name, value))
        return super().header_store_parse(name, value)

    def fold(self, name: str, value: str) -> str:
        if name.lower() in IDENTIFIER_HEADERS:
            return fold_identifiers(name, str(value), self.max_line_length or 998, self.linesep)
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        lowered = name.lower()
        if lowered in IDENTIFIER_HEADERS:
            # compose() keeps ASCII identifiers only; never raise on another caller's value.
            return self.fold(name, value).encode("ascii", "replace")
        if lowered in REPEATED_HEADERS:
            return _folded(self, name, value)
        return super().fold_binary(name, value)


@lru_cache(maxsize=512)
def _parsed_header(factory: Any, name: str, value: str) -> Any:
    """A header object for a repeated value; header objects are immutable, so one serves
    every message that carries the same value."""
    return factory(name, value)


@lru_cache(maxsize=512)
def _folded_cached(policy: MailPolicy, name: str, value: str) -> bytes:
    return EmailPolicy.fold_binary(policy, name, value)


def _folded(policy: MailPolicy, name: str, value: str) -> bytes:
    return _folded_cached(policy, name, str(value))


POLICY = MailPolicy(linesep="\r\n", max_line_length=MAX_LINE_LENGTH, header_factory=HeaderClasses())
UTF8_POLICY = POLICY.clone(utf8=True)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, and where it sits in a thread."""

    from_address: str
    from_name: str
    to_address: str
    message_id: str
    date: datetime
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    reply_to: str = ""
    to_name: str = ""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str | None


class Renderer:
    """Loads the templates folder once; renders named templates with given values."""

    def __init__(self, templates_dir: Path) -> None:
        loader = jinja2.FileSystemLoader(str(templates_dir))
        self._text = jinja2.Environment(
            loader=loader,
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._html = jinja2.Environment(
            loader=loader,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        for environment in (self._text, self._html):
            environment.globals["internal_marker"] = INTERNAL_MARKER

    def render(self, name: str, values: Mapping[str, Any], *, with_html: bool = True) -> Rendered:
        """Render `name.subject.txt`, `name.txt` and (if present) `name.html`."""
        subject = self._text.get_template(f"{name}.subject.txt").render(values)
        text = self._text.get_template(f"{name}.txt").render(values)
        html = None
        if with_html:
            try:
                template = self._html.get_template(f"{name}.html")
            except jinja2.TemplateNotFound:
                template = None
            if template is not None:
                html = template.render(values)
        return Rendered(subject=flatten(subject, 900), text=text.rstrip() + "\n", html=html)


def _address(address: str, name: str) -> HeaderAddress | str:
    local, _, domain = address.rpartition("@")
    mailbox = HeaderAddress(display_name=flatten(name, 200), username=local, domain=domain)
    if mailbox.display_name:
        return mailbox
    # Angle brackets even without a name: spam filters score a bare To address
    # (SpamAssassin's TO_NO_BRKTS_* rules).
    return f"<{mailbox.addr_spec}>"


def _identifiers(values: Sequence[str]) -> list[str]:
    """Message identifiers that can go in a header as they are: a msg-id is ASCII without
    spaces (RFC 5322), and one that is not cannot be encoded without breaking the thread."""
    found = (flatten(value, 998) for value in values)
    return [value for value in found if value and value.isascii() and " " not in value]


def compose(
    envelope: Envelope,
    rendered: Rendered,
    *,
    auto_submitted: str | None,
    loop_token: str,
    extra_headers: Sequence[tuple[str, str]] = (),
    language: str = "fr",
) -> EmailMessage:
    """One outgoing message: plain text first, HTML alternative, threading and loop headers."""
    # An internationalised address travels only over SMTPUTF8, with UTF-8 headers (RFC 6532).
    utf8 = not envelope.to_address.isascii()
    message = EmailMessage(policy=UTF8_POLICY if utf8 else POLICY)
    message["From"] = str(_address(envelope.from_address, envelope.from_name))
    message["To"] = _address(envelope.to_address, envelope.to_name)
    if envelope.reply_to:
        message["Reply-To"] = envelope.reply_to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(envelope.date)
    message["Message-ID"] = envelope.message_id
    in_reply_to = _identifiers([envelope.in_reply_to])
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to[0]
    refs = _identifiers(envelope.references)
    if refs:
        # Keep the thread root and the most recent ids: long chains break some servers.
        if len(refs) > 20:
            refs = refs[:1] + refs[-19:]
        message["References"] = " ".join(refs)
    if auto_submitted:
        message["Auto-Submitted"] = auto_submitted
        message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = loop_token
    for name, value in extra_headers:
        message[name] = flatten(value, 998)
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if rendered.html is not None:
        message.add_alternative(
            rendered.html, subtype="html", charset="utf-8", cte="quoted-printable"
        )
    # After the body: setting content clears every Content-* header set before it.
    message["Content-Language"] = language
    return message


def compose_staff_mail(
    rendered: Rendered,
    *,
    queue: MailboxSettings,
    recipient: str,
    message_id: str,
    now: datetime,
    purpose: str,
    loop_token: str,
    in_reply_to: str = "",
) -> EmailMessage:
    """Automatic mail to staff: from and Reply-To the queue, `Auto-Submitted: auto-generated`."""
    envelope = Envelope(
        from_address=queue.address,
        from_name=f"{queue.display_name} (mailbot)",
        to_address=recipient,
        message_id=message_id,
        date=now,
        reply_to=queue.address,
        in_reply_to=in_reply_to,
        references=(in_reply_to,) if in_reply_to else (),
    )
    return compose(
        envelope,
        rendered,
        auto_submitted="auto-generated",
        loop_token=loop_token,
        extra_headers=((PURPOSE_HEADER, purpose),),
    )
