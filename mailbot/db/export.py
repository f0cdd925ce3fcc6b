"""The rows of one requester's access request: their tickets and what hangs off each (reads).

SQLAlchemy Core, one read transaction. Addresses are compared case-insensitively; the caller
(`mailbot.export`) shapes the rows into the exported document and decides what is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import mailbot.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from mailbot.store import reading

# The inbound kinds that are the requester's own messages on a ticket (staff replies, bounces
# and the like are not theirs).
REQUESTER_KINDS = ("new_request", "follow_up", "auto_reply")


class TicketRow(NamedTuple):
    id: int
    ref: str
    mailbox: str
    category: str
    status: str
    language: str
    subject: str
    received_at: datetime
    receipt_date: date
    due_date: date | None
    acknowledged_at: datetime | None
    answered_at: datetime | None
    closed_at: datetime | None


class DeadlineRow(NamedTuple):
    commitment: str
    due_date: date
    met_at: datetime | None
    days_on_hold: int


class HoldRow(NamedTuple):
    started_at: datetime
    ended_at: datetime | None
    reason: str


class ReceivedRow(NamedTuple):
    """A message the requester sent, as received (the raw bytes; parsing is the caller's)."""

    internal_date: datetime
    kind: str
    raw: bytes


class SentRow(NamedTuple):
    """A message mailbot queued for the requester, as queued (raw bytes)."""

    created_at: datetime
    sent_at: datetime | None
    purpose: str
    raw: bytes


class EventRow(NamedTuple):
    at: datetime
    kind: str


@dataclass(frozen=True, slots=True)
class RequesterTicket:
    """One of the requester's tickets with its deadlines, holds, messages and events, in order."""

    ticket: TicketRow
    deadlines: tuple[DeadlineRow, ...]
    holds: tuple[HoldRow, ...]
    received: tuple[ReceivedRow, ...]
    sent: tuple[SentRow, ...]
    events: tuple[EventRow, ...]


def requester_tickets(engine: Engine, address: str) -> list[RequesterTicket]:
    """Every ticket whose requester is `address` (lower case), oldest first."""
    tables = SQLModel.metadata.tables
    ticket, deadline, hold = tables["ticket"], tables["ticket_deadline"], tables["ticket_hold"]
    inbound, outbox, event = tables["inbound_message"], tables["outbox"], tables["ticket_event"]
    found = []
    with reading(engine) as connection:
        tickets = connection.execute(
            sa.select(*(ticket.c[name] for name in TicketRow._fields))
            .where(sa.func.lower(ticket.c.requester) == address)
            .order_by(ticket.c.id)
        ).all()
        for row in tickets:
            deadlines = connection.execute(
                sa.select(*(deadline.c[name] for name in DeadlineRow._fields))
                .where(deadline.c.ticket_id == row.id)
                .order_by(deadline.c.id)
            ).all()
            holds = connection.execute(
                sa.select(*(hold.c[name] for name in HoldRow._fields))
                .where(hold.c.ticket_id == row.id)
                .order_by(hold.c.id)
            ).all()
            received = connection.execute(
                sa.select(*(inbound.c[name] for name in ReceivedRow._fields))
                .where(inbound.c.ticket_id == row.id)
                .where(inbound.c.kind.in_(REQUESTER_KINDS))
                .order_by(inbound.c.id)
            ).all()
            sent = connection.execute(
                sa.select(*(outbox.c[name] for name in SentRow._fields))
                .where(outbox.c.ticket_id == row.id)
                .where(sa.func.lower(outbox.c.recipient) == address)
                .order_by(outbox.c.id)
            ).all()
            events = connection.execute(
                sa.select(*(event.c[name] for name in EventRow._fields))
                .where(event.c.ticket_id == row.id)
                .order_by(event.c.id)
            ).all()
            found.append(
                RequesterTicket(
                    ticket=TicketRow(*row),
                    deadlines=tuple(DeadlineRow(*r) for r in deadlines),
                    holds=tuple(HoldRow(*r) for r in holds),
                    received=tuple(ReceivedRow(*r) for r in received),
                    sent=tuple(SentRow(*r) for r in sent),
                    events=tuple(EventRow(*r) for r in events),
                )
            )
    return found
