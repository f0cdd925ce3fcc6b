"""The states a ticket, an inbound message and an outgoing message can be in (pure).

They are stored as their string values; comparing with a plain string still works, but code
names them through these enums.
"""

from __future__ import annotations

from enum import StrEnum


class TicketStatus(StrEnum):
    OPEN = "open"
    ON_HOLD = "on_hold"  # waiting for the citizen: the clock is paused
    ANSWERED = "answered"  # a reply was sent; a follow-up reopens it
    CLOSED = "closed"


class ClosedReason(StrEnum):
    """Why a closed ticket was closed, when it was not simply answered (`ticket.closed_reason`)."""

    MERGED = "merged"  # a duplicate: its messages and history joined another ticket
    REFERRED = "referred"  # sent on to the body it belongs to; the referral is the response


class MessageState(StrEnum):
    """What became of an inbound message; always stored with a reason."""

    RECEIVED = "received"  # stored, its outcome not written yet (inside the transaction)
    PROCESSED = "processed"
    SET_ASIDE = "set_aside"  # kept, on no ticket or as a duplicate, with its reason
    HELD = "held"  # kept for a person to review
    QUARANTINED = "quarantined"  # processing failed: kept raw, retried by a person


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # refused for good, or gave up after repeated temporary failures
    HELD = "held"  # the relay cannot carry it at all (SMTPUTF8 missing): a person answers
    # Waits for another row (`after_id`): pending once that row is sent; withdrawn, never
    # sent, when that row is refused for good (a referral's notice to the citizen).
    WAITING = "waiting"
    WITHDRAWN = "withdrawn"
