"""Which ticket a message names, and how (pure).

A signed token (mailbot/mail/tokens.py) in In-Reply-To/References or in a To/Cc/Reply-To
address links a message to its ticket, whoever sends it; then a stored Message-ID; a reference
typed in the subject counts only when the sender is that ticket's requester. Staff reach a
ticket only through a signed token: anything less is a staff reply without a ticket, held.
When In-Reply-To, References and the subject name different tickets, `several_tickets`
fires: a staff reply is then held and its sender asked which ticket it is for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from mailbot.intake.verdicts import ClassifyContext
from mailbot.mail import tokens
from mailbot.mail.delivery_reports import quoted_message_ids
from mailbot.mail.parse import InboundMail

_SUBJECT_REF = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]{0,9}-\d{4}-\d{5,})(?!\d)")


@dataclass(frozen=True, slots=True)
class Threading:
    """The ticket links found in one message, verified against the facts given."""

    ticket_ref: str | None = None  # the ticket the message joins, if any
    signed: bool = False  # found through a token a stranger cannot forge
    header_token: bool = False  # a verified token of a known ticket in In-Reply-To/References
    address_token: bool = False  # ... in a To/Cc/Reply-To address
    subject_token: bool = False  # ... in the subject of staff mail, and nowhere else (a note)
    known_message_id: bool = False  # In-Reply-To/References names a message we stored
    subject_ref_from_requester: bool = False
    subject_ref_from_stranger: bool = False
    unknown_refs: tuple[str, ...] = ()  # verified tokens naming no ticket we know
    # Every ticket the message names (tokens, stored Message-IDs, references in its subject),
    # merged ones as the ticket kept; more than one is `several_tickets`.
    named: tuple[str, ...] = ()
    several_tickets: bool = False
    forged_token: bool = False
    report_ref: str | None = None  # for reports: the ticket of the message reported on


def _link_texts(mail: InboundMail) -> tuple[str, ...]:
    addresses = (*mail.to, *mail.cc, *mail.reply_to)
    return (*mail.thread_ids, *(address.address for address in addresses))


def _report_texts(mail: InboundMail) -> tuple[str, ...]:
    """Where a report names the message it is about: its own field, or copied headers."""
    texts = [mail.delivery_report.original_message_id] if mail.delivery_report else []
    texts.extend(quoted_message_ids(mail.text))
    return tuple(texts)


def _refs(key: bytes, texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(token.ticket_ref for token in tokens.find_tokens(key, texts)))


def _subject_refs(subject: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(match.upper() for match in _SUBJECT_REF.findall(subject)))


def candidate_refs(mail: InboundMail, signing_key: bytes, ticket_prefix: str) -> frozenset[str]:
    """Refs the caller must look up before `classify`.

    Verified tokens in In-Reply-To/References, in To/Cc/Reply-To addresses, in a report's
    original Message-ID and in the subject, plus refs of the form PREFIX-YYYY-NNNNN in the
    subject.
    """
    refs = set(_refs(signing_key, (*_link_texts(mail), *_report_texts(mail), mail.subject)))
    prefix = ticket_prefix.upper() + "-"
    refs.update(ref for ref in _subject_refs(mail.subject) if ref.startswith(prefix))
    return frozenset(refs)


def thread_of_message(
    mail: InboundMail, context: ClassifyContext, sender: str | None, is_staff: bool
) -> Threading:
    """Find the ticket: signed tokens first, then stored Message-IDs, then the subject.

    A ref in the subject alone is accepted only from that ticket's requester: anybody can
    type a reference, and a stranger must not land on somebody else's ticket. A signed token
    in the subject links staff mail only (the notes link of a staff notice), as a note.
    """
    key, tickets = context.signing_key, context.tickets
    header_refs = _refs(key, mail.thread_ids)
    address_refs = _refs(key, (a.address for a in (*mail.to, *mail.cc, *mail.reply_to)))
    token_refs = tuple(dict.fromkeys((*header_refs, *address_refs)))
    # Each reference as the ticket it stands for (a merged one names the ticket kept).
    known_tokens = list(dict.fromkeys(tickets[ref].ref for ref in token_refs if ref in tickets))
    known_ids = [
        context.known_message_ids[item]
        for item in mail.thread_ids
        if item in context.known_message_ids
    ]
    report_refs = [tickets[ref].ref for ref in _refs(key, _report_texts(mail)) if ref in tickets]
    subject_refs = [ref for ref in _subject_refs(mail.subject) if ref in tickets]
    named = tuple(
        dict.fromkeys(
            (
                *known_tokens,
                *(tickets[ref].ref if ref in tickets else ref for ref in known_ids),
                *(tickets[ref].ref for ref in subject_refs),
            )
        )
    )
    found = Threading(
        header_token=any(ref in tickets for ref in header_refs),
        address_token=any(ref in tickets for ref in address_refs),
        known_message_id=bool(known_ids),
        unknown_refs=tuple(ref for ref in token_refs if ref not in tickets),
        named=named,
        several_tickets=len(named) > 1,
        forged_token=tokens.has_forged_token(
            key, (*_link_texts(mail), mail.message_id, mail.subject)
        ),
        report_ref=report_refs[0] if report_refs else None,
    )
    if known_tokens:
        return replace(found, ticket_ref=known_tokens[0], signed=True)
    if known_ids:
        return replace(found, ticket_ref=known_ids[0])
    subject_tokens = [tickets[ref].ref for ref in _refs(key, (mail.subject,)) if ref in tickets]
    if is_staff and subject_tokens:
        return replace(found, ticket_ref=subject_tokens[0], signed=True, subject_token=True)
    for ref in subject_refs:
        if sender is not None and sender == tickets[ref].requester.lower():
            return replace(found, ticket_ref=tickets[ref].ref, subject_ref_from_requester=True)
    return replace(found, subject_ref_from_stranger=bool(subject_refs))
