"""Templates -> outgoing mail as bytes (pure: the templates are read once, at construction).

Wording lives in `templates/`; a citizen's text is only ever a variable, autoescaped in HTML.
Every header value that may come from a message is flattened before use; the wire form
(76-character lines, encoded words, quoted-printable bodies) is written by mailbot/mail/mime.py.
Message identifiers are never folded inside or before an identifier nor turned into encoded
words: some clients mishandle a folded Message-ID, and an encoded In-Reply-To or References
breaks threading. Spam filters penalise long lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2

from mailbot.mail import mime
from mailbot.mail.decoding import flatten
from mailbot.settings import MailboxSettings

LOOP_HEADER = "X-Mailbot-Loop"
# What an automatic message to staff is (reminder, digest, notice...), for filters and audits.
PURPOSE_HEADER = "X-Mailbot-Purpose"
# The purpose of `mailbot check`'s own round-trip message: not a message of the service, so
# the start-up check and `mailbot reconcile` pass over its copies wherever they are.
CHECK_PURPOSE = "check"
# The journal (mailbot/recovery/journal.py): every queued message carries its ticket's reference and
# its purpose, and mail to staff its dedupe key, so the copies in the Sent folder say what
# was sent (sending/queueing.py's journal_headers writes them).
JOURNAL_REF_HEADER = "X-Mailbot-Ref"
JOURNAL_KEY_HEADER = "X-Mailbot-Key"
# Appears only in mailbot's internal mail to staff: if it survives in a staff reply, the
# quoted history was not cut cleanly and the reply is held (see mailbot/staff/apply_reply.py).
INTERNAL_MARKER = "--- Usage interne : ne pas transmettre ---"


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
    """Loads the templates folder once; renders named templates with given values.

    A template is read and compiled the first time it is used, then kept: a changed template
    takes effect when mailbot restarts (no file check on every message)."""

    def __init__(self, templates_dir: Path, *, answer_names: Sequence[str] = ()) -> None:
        loader = jinja2.FileSystemLoader(str(templates_dir))
        self._text = jinja2.Environment(
            loader=loader,
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self._html = jinja2.Environment(
            loader=loader,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,
        )
        self._html_of: dict[str, jinja2.Template | None] = {}
        for environment in (self._text, self._html):
            environment.globals["internal_marker"] = INTERNAL_MARKER
            # The canned answers' names, for the staff help and refusals.
            environment.globals["answer_names"] = tuple(answer_names)

    def render(self, name: str, values: Mapping[str, Any], *, with_html: bool = True) -> Rendered:
        """Render `name.subject.txt`, `name.txt` and (if present) `name.html`."""
        subject = self._text.get_template(f"{name}.subject.txt").render(values)
        text = self._text.get_template(f"{name}.txt").render(values)
        html = None
        if with_html:
            template = self._html_template(name)
            if template is not None:
                html = template.render(values)
        return Rendered(subject=flatten(subject, 900), text=text.rstrip() + "\n", html=html)

    def render_text(self, name: str, values: Mapping[str, Any]) -> str:
        """The plain-text template `name.txt` alone (a part of a message, not a message)."""
        return self._text.get_template(f"{name}.txt").render(values)

    def _html_template(self, name: str) -> jinja2.Template | None:
        """`name.html`, or None when there is none (remembered either way)."""
        if name not in self._html_of:
            try:
                self._html_of[name] = self._html.get_template(f"{name}.html")
            except jinja2.TemplateNotFound:
                self._html_of[name] = None
        return self._html_of[name]


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
) -> bytes:
    """One outgoing message: plain text first, HTML alternative, threading and loop headers."""
    # An internationalised address travels only over SMTPUTF8, with UTF-8 headers (RFC 6532).
    utf8 = not envelope.to_address.isascii()
    headers = [
        mime.address("From", envelope.from_address, flatten(envelope.from_name, 200)),
        mime.address("To", envelope.to_address, flatten(envelope.to_name, 200), utf8=utf8),
    ]
    if envelope.reply_to:
        headers.append(mime.address("Reply-To", envelope.reply_to))
    headers += [
        mime.unstructured("Subject", rendered.subject, utf8=utf8),
        f"Date: {format_datetime(envelope.date)}{mime.CRLF}",
        mime.fold("Message-ID", [envelope.message_id]),
    ]
    in_reply_to = _identifiers([envelope.in_reply_to])
    if in_reply_to:
        headers.append(mime.fold("In-Reply-To", in_reply_to[:1]))
    refs = _identifiers(envelope.references)
    if refs:
        # Keep the thread root and the most recent ids: long chains break some servers.
        if len(refs) > 20:
            refs = refs[:1] + refs[-19:]
        headers.append(mime.fold("References", refs))
    if auto_submitted:
        headers.append(f"Auto-Submitted: {auto_submitted}{mime.CRLF}")
        headers.append(f"X-Auto-Response-Suppress: All{mime.CRLF}")
    headers.append(mime.unstructured(LOOP_HEADER, loop_token))
    headers += [mime.unstructured(name, flatten(value, 998)) for name, value in extra_headers]
    return mime.write(
        headers,
        mime.Body(rendered.text, rendered.html),
        trailing=[f"Content-Language: {language}{mime.CRLF}"],
    )


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
) -> bytes:
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
    )
