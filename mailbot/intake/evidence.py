"""The evidence every classification rule reads: one message, its context, and the facts
several rules share, computed once (pure).

Roles are per ticket. A staff address is staff (`STAFF_REPLY`) on a ticket it reaches by a
signed token, unless it is that ticket's requester and does not work on its queue, and on
the queue of the mailbox it writes to when it works there; anywhere else it is a person
like any other: a message to a queue it does not work on, without a token, opens a ticket
there (acknowledged, with a clock). A message from one of our own addresses that is not our
own mail (no loop header of ours, no Message-ID of ours, no X-Mailbot-Purpose) and that
answers one of our messages or names a `Sender:` is a reply sent as the queue's address
(Outlook "Send As"): a staff reply, judged on the person `Sender:` names
(mailbot/staff/send_as.py), or held; never set aside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from mailbot.intake.thread_links import Threading, thread_of_message
from mailbot.intake.verdicts import ClassifyContext, TicketFacts
from mailbot.mail import tokens
from mailbot.mail.parse import InboundMail
from mailbot.mail.render import LOOP_HEADER, PURPOSE_HEADER
from mailbot.settings import is_staff_address


@dataclass(frozen=True, slots=True)
class Evidence:
    """One message and its context, with the facts several rules share computed once."""

    mail: InboundMail
    context: ClassifyContext
    sender: str | None  # the one usable From address (addresses.usable_address); None: none
    is_staff: bool  # a staff address (listed on a queue, or at a staff domain)
    thread: Threading
    # Staff acting as staff here (see the module docstring: roles are per ticket); a staff
    # address that is not is a person like any other.
    acts_as_staff: bool = False
    # From one of our addresses, not our own mail, answering us or naming a `Sender:`.
    sent_as_queue: bool = False

    def values(self, name: str) -> tuple[str, ...]:
        return self.mail.header_values(name)


def gather_evidence(mail: InboundMail, context: ClassifyContext) -> Evidence:
    sender = mail.from_address.address if mail.from_address is not None else None
    is_staff = _is_staff(sender, context)
    evidence = Evidence(
        mail=mail,
        context=context,
        sender=sender,
        is_staff=is_staff,
        thread=thread_of_message(mail, context, sender, is_staff),
    )
    return replace(
        evidence,
        acts_as_staff=evidence.is_staff and _acts_as_staff(evidence),
        sent_as_queue=_is_sent_as_queue(evidence),
    )


def _works_on_mailbox(e: Evidence) -> bool:
    """The sender is on the staff or supervisors of the queue the message was sent to."""
    return e.sender in e.context.mailbox.workers


def _acts_as_staff(e: Evidence) -> bool:
    """A staff address acts as staff on a ticket its signed token names (unless it is that
    ticket's requester and not on its queue), and, without one, on the queue it works on."""
    if e.thread.signed:
        facts = ticket_of(e)
        return facts is None or e.sender != facts.requester.lower() or e.sender in facts.workers
    return _works_on_mailbox(e)


def _is_staff(sender: str | None, context: ClassifyContext) -> bool:
    if sender is None:
        return False
    return is_staff_address(
        sender,
        listed=context.staff_addresses | {a.lower() for a in context.mailbox.staff},
        domains=context.staff_domains,
        own=context.own_addresses,
    )


def ticket_of(e: Evidence) -> TicketFacts | None:
    ref = e.thread.ticket_ref
    return e.context.tickets.get(ref) if ref is not None else None


# --- Our own mail: read by the evidence (`sent_as_queue`) and by the rules ----------------


def has_our_loop_header(e: Evidence) -> bool:
    domain = e.context.message_id_domain.strip().lower()
    return any(value.strip().lower() == domain for value in e.values(LOOP_HEADER))


def has_own_message_id(e: Evidence) -> bool:
    return bool(e.mail.message_id) and bool(
        tokens.find_tokens(e.context.signing_key, (e.mail.message_id,))
    )


# The shape of every Message-ID mailbot writes: "<mb.REF.NONCE.SIG@domain>" (a thread token)
# or "<mb-KIND.NONCE@domain>" (mailbot/sending/queueing.py).
_OUR_MESSAGE_ID = re.compile(r"^<mb[.-][^@<>\s]+@(?P<domain>[^@<>\s]+)>$", re.IGNORECASE)


def _message_id_is_ours(e: Evidence) -> bool:
    """A Message-ID of mailbot's shape in our domain: a person's client in the ministry's
    domain writes its own ids there too, never in this shape."""
    match = _OUR_MESSAGE_ID.match(e.mail.message_id.strip())
    domain = e.context.message_id_domain.strip().lower()
    return match is not None and match.group("domain").lower() == domain


def _has_our_purpose_header(e: Evidence) -> bool:
    return bool(e.values(PURPOSE_HEADER))


def is_from_own_address(e: Evidence) -> bool:
    return e.sender in e.context.own_addresses and (
        _message_id_is_ours(e) or _has_our_purpose_header(e)
    )


def _is_sent_as_queue(e: Evidence) -> bool:
    """From one of our addresses but not by mailbot, answering one of our messages or naming
    a `Sender:`: a staff member's reply sent as the queue (Outlook "Send As")."""
    return (
        e.sender in e.context.own_addresses
        and not is_from_own_address(e)
        and not has_our_loop_header(e)
        and not has_own_message_id(e)
        and (e.thread.signed or bool(e.values("Sender")))
    )
