"""The rows of one requester's access request: their tickets and what hangs off each (reads).

SQLAlchemy Core, one read transaction. Addresses are compared case-insensitively; the caller
(`mailbot.privacy.export`) shapes the rows into the exported document and decides what is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import mailbot.db.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from mailbot.db.store import reading

# The inbound kinds that are the requester's own messages on a ticket (staff replies, bounces
# and the like are not theirs).
REQUESTER_KINDS = ("new_request", "follow_up", "auto_reply")


class ExportTicket(NamedTuple):
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


class ExportDeadline(NamedTuple):
    commitment: str
    due_date: date
    met_at: datetime | None
    days_on_hold: int


class ExportHold(NamedTuple):
    started_at: datetime
    ended_at: datetime | None
    reason: str
    kind: str  # wait (attente) | incomplete (incomplet: ended_at is when it was completed)


class ExportReceived(NamedTuple):
    """A message the requester sent, as received (the raw bytes; parsing is the caller's)."""

    internal_date: datetime
    kind: str
    raw: bytes


class ExportSent(NamedTuple):
    """A message mailbot queued for the requester, as queued (raw bytes)."""

    created_at: datetime
    sent_at: datetime | None
    purpose: str
    raw: bytes


class ExportEvent(NamedTuple):
    at: datetime
    kind: str


_Row = TypeVar(
    "_Row", ExportTicket, ExportDeadline, ExportHold, ExportReceived, ExportSent, ExportEvent
)


@dataclass(frozen=True, slots=True)
class RequesterTicket:
    """One of the requester's tickets with its deadlines, holds, messages and events, in order."""

    ticket: ExportTicket
    deadlines: tuple[ExportDeadline, ...]
    holds: tuple[ExportHold, ...]
    received: tuple[ExportReceived, ...]
    sent: tuple[ExportSent, ...]
    events: tuple[ExportEvent, ...]


def requester_tickets(engine: Engine, address: str) -> list[RequesterTicket]:
    """Every ticket whose requester is `address` (lower case), oldest first."""
    tables = SQLModel.metadata.tables
    ticket, deadline, hold = tables["ticket"], tables["ticket_deadline"], tables["ticket_hold"]
    inbound, outbox, event = tables["inbound_message"], tables["outbox"], tables["ticket_event"]
    found = []
    with reading(engine) as connection:

        def rows_of(
            table: sa.Table, shape: type[_Row], *where: sa.ColumnElement[bool]
        ) -> tuple[_Row, ...]:
            """`shape`'s columns of `table` where `where`, in insertion order."""
            selected = sa.select(*(table.c[name] for name in shape._fields))
            rows = connection.execute(selected.where(*where).order_by(table.c.id)).all()
            return tuple(shape(*row) for row in rows)

        for row in rows_of(ticket, ExportTicket, sa.func.lower(ticket.c.requester) == address):
            found.append(
                RequesterTicket(
                    ticket=row,
                    deadlines=rows_of(deadline, ExportDeadline, deadline.c.ticket_id == row.id),
                    holds=rows_of(hold, ExportHold, hold.c.ticket_id == row.id),
                    received=rows_of(
                        inbound,
                        ExportReceived,
                        inbound.c.ticket_id == row.id,
                        inbound.c.kind.in_(REQUESTER_KINDS),
                    ),
                    sent=rows_of(
                        outbox,
                        ExportSent,
                        outbox.c.ticket_id == row.id,
                        sa.func.lower(outbox.c.recipient) == address,
                    ),
                    events=rows_of(event, ExportEvent, event.c.ticket_id == row.id),
                )
            )
    return found
