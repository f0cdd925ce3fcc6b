"""Decide what one classified message does to the tickets (pure).

`decide` takes the parsed mail, the classifier's verdict and the facts looked up for it, and
returns a `Decision`: a value the application applies in one transaction. Nothing here
writes, sends or reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from mailbot.intake.verdicts import Kind, Verdict, is_note
from mailbot.mail.addresses import FROM_REFUSED
from mailbot.mail.decoding import flatten
from mailbot.mail.parse import InboundMail
from mailbot.tickets.facts import NewTicket


class Disposition(StrEnum):
    """What became of an inbound message; stored as its state with a reason."""

    OPENED = "opened"  # a new ticket
    ATTACHED = "attached"  # recorded on an existing ticket
    SET_ASIDE = "set_aside"  # kept, on no ticket, with its reason
    HELD = "held"  # kept for a person to review (e.g. staff mail that failed a check)


@dataclass(frozen=True, slots=True)
class Decision:
    disposition: Disposition
    reason: str
    open_ticket: NewTicket | None = None
    ticket_ref: str | None = None
    acknowledge: bool = False
    reopen: bool = False
    flags: tuple[str, ...] = ()


_SUBJECT_LIMIT = 500
# A staff message that is an internal note (`verdicts.is_note`): recorded, never relayed.
NOTE_FLAG = "note"


def _new_ticket(
    mail: InboundMail, verdict: Verdict, mailbox: str, category: str, received_at: datetime
) -> NewTicket:
    assert mail.from_address is not None
    return NewTicket(
        mailbox=mailbox,
        category=category,
        requester=mail.from_address.address,
        requester_name=mail.from_address.display_name,
        language=verdict.language,
        subject=flatten(mail.subject, _SUBJECT_LIMIT),
        received_at=received_at,
    )


def decide(
    mail: InboundMail,
    verdict: Verdict,
    *,
    mailbox: str,
    default_category: str,
    received_at: datetime,
    ticket_status: str | None,
) -> Decision:
    """What `mail` does: open a ticket, join one, or be set aside, and whether to answer.

    `ticket_status` is the current status of `verdict.ticket_ref`, when there is one.
    """
    kind = verdict.kind
    if is_note(verdict) and kind in (Kind.NEW_REQUEST, Kind.FOLLOW_UP):
        # The notes address is for the queue's staff: anyone else's mail there is an act
        # refused like any other, held for a person, never a ticket or a follow-up.
        return Decision(
            Disposition.HELD,
            "mail to the notes address from someone who is not staff",
            ticket_ref=verdict.ticket_ref,
        )
    if kind is Kind.NEW_REQUEST:
        if mail.from_address is None:
            # Not automatic mail, but nowhere to answer: a person decides, never a drop.
            return Decision(Disposition.HELD, _no_reply_address(mail))
        category = verdict.category or default_category
        return Decision(
            Disposition.OPENED,
            f"new request ({category})",
            open_ticket=_new_ticket(mail, verdict, mailbox, category, received_at),
            acknowledge=verdict.may_auto_answer,
        )
    if kind is Kind.FOLLOW_UP and verdict.ticket_ref is not None:
        if "sender_not_requester" in verdict.rules:
            # Someone other than the requester wrote on the ticket: a person decides.
            return Decision(
                Disposition.HELD,
                "message on a ticket from someone other than its requester",
                ticket_ref=verdict.ticket_ref,
            )
        reopen = ticket_status in ("answered", "closed")
        return Decision(
            Disposition.ATTACHED,
            "follow-up from the requester" + (", ticket reopened" if reopen else ""),
            ticket_ref=verdict.ticket_ref,
            reopen=reopen,
        )
    if kind is Kind.AUTO_REPLY and verdict.ticket_ref is not None:
        return Decision(
            Disposition.ATTACHED,
            "automatic reply on a ticket",
            ticket_ref=verdict.ticket_ref,
            flags=("auto_reply",),
        )
    if kind is Kind.STAFF_REPLY:
        # The staff workflow authenticates the sender before anything reaches a citizen;
        # without a signed link to a ticket it is held for a person, never dropped.
        if verdict.ticket_ref is None:
            return Decision(Disposition.HELD, "staff message without a signed link to a ticket")
        if is_note(verdict):
            return Decision(
                Disposition.ATTACHED,
                "staff note on a ticket (never relayed)",
                ticket_ref=verdict.ticket_ref,
                flags=("staff", NOTE_FLAG),
            )
        return Decision(
            Disposition.ATTACHED,
            "staff message on a ticket",
            ticket_ref=verdict.ticket_ref,
            flags=("staff",),
        )
    if kind is Kind.BOUNCE and verdict.ticket_ref is not None:
        return Decision(
            Disposition.ATTACHED,
            "delivery report on a ticket",
            ticket_ref=verdict.ticket_ref,
            flags=("bounce",),
        )
    return Decision(
        Disposition.SET_ASIDE, f"{kind.value}: " + ", ".join(verdict.rules or ("no rule",))
    )


def _no_reply_address(mail: InboundMail) -> str:
    """The note on a request held for want of a reply address, with why when parsing said."""
    for defect in mail.defects:
        if defect.startswith(FROM_REFUSED):
            reason = defect.removeprefix(FROM_REFUSED)
            return f"new request without a usable reply address: {reason}"
    return "new request without a usable reply address"
