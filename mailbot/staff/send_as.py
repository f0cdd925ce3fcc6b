"""A staff reply sent as the queue's own address (pure): who it speaks for.

Outlook lets staff send from a shared mailbox ("Send As", "Send on Behalf"): the reply's
From is the queue's own address, and `Sender:` names the person. Such a reply is judged as
coming from that person, and from nobody else:

* exactly one `Sender:` header, holding exactly one strictly parsed address (read from the
  raw header, never after RFC 2047 decoding), which is not one of mailbot's own addresses;
* in the same domain as the From address, so that the verdict that vouches for the From
  (our receiving server's dmarc=pass for the ministry's domain, or Exchange Online's
  organisation headers under `exchange_online`) vouches for the person as it does for any
  staff reply; `replies.authenticate` then checks that verdict, for that person.

A citizen who forges `Sender:` under a From of the queue's address gets no verdict for the
ministry's domain, and is held. Without a `Sender:` that names someone this way, the reply
is held and the queue's staff are told (`SendAs.reasons`); it is never relayed, and never
set aside as mailbot's own mail (mailbot/intake/classify.py tells the two apart).
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass, replace

from mailbot.mail.addresses import Address, parse_addresses
from mailbot.mail.decoding import flatten
from mailbot.mail.parse import InboundMail
from mailbot.settings import Settings


@dataclass(frozen=True, slots=True)
class SendAs:
    """The person a reply sent as the queue speaks for, or why none."""

    person: Address | None
    reasons: tuple[str, ...] = ()


def is_sent_as_queue(settings: Settings, mail: InboundMail) -> bool:
    """The reply's From is one of mailbot's own addresses."""
    return mail.sender is not None and mail.sender.address in settings.own_addresses


def _sender_headers(raw: bytes) -> list[str]:
    """The raw values of every `Sender:` header (the headers only are parsed)."""
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    return [flatten(str(value), 10_000) for value in head.get_all("Sender", [])]


def acting_person(settings: Settings, mail: InboundMail, raw: bytes) -> SendAs:
    """The staff member a reply sent as the queue names, or the reasons it names none."""
    assert mail.sender is not None
    values = _sender_headers(raw)
    if not values:
        return SendAs(
            None, ("sent as the queue's address without a Sender header naming a person",)
        )
    if len(values) > 1:
        return SendAs(None, (f"sent as the queue's address with {len(values)} Sender headers",))
    parsed = parse_addresses(values[0])
    if not parsed or len(parsed) != 1:
        return SendAs(None, ("sent as the queue's address; its Sender header does not parse",))
    person = parsed[0]
    if person.address in settings.own_addresses:
        return SendAs(None, ("sent as the queue's address; its Sender is a mailbox of mailbot's",))
    if person.domain != mail.sender.domain:
        return SendAs(
            None,
            (f"sent as the queue's address; its Sender is in another domain ({person.domain})",),
        )
    return SendAs(person)


def as_person(mail: InboundMail, person: Address) -> InboundMail:
    """The reply as the person it is judged to come from: what the staff work reads."""
    return replace(mail, sender=person, from_address=person)


def judged(
    settings: Settings, mail: InboundMail, raw: bytes
) -> tuple[InboundMail, tuple[str, ...]]:
    """The reply as the staff work reads it: itself, or, sent as the queue, as the person it
    names; with the reasons to hold it when it names nobody."""
    if not is_sent_as_queue(settings, mail):
        return mail, ()
    named = acting_person(settings, mail, raw)
    if named.person is None:
        return mail, named.reasons
    return as_person(mail, named.person), ()
