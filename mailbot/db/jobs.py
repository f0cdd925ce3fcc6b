"""What the scheduled jobs read: open deadlines, and a month's compliance of a queue."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.jobs import OpenDeadline
from mailbot.models import DEADLINE, HOLD, TICKET
from mailbot.settings import MailboxSettings, Settings
from mailbot.states import ClosedReason, TicketStatus


def open_deadlines(
    connection: Connection, commitments: list[str], now: datetime
) -> list[OpenDeadline]:
    """Deadlines of `commitments` not met at `now`, on tickets that are not closed.

    A reply recorded after `now` is ignored, so `--now` replays the past as it was.
    """
    if not commitments:
        return []
    held = (
        sa.select(HOLD.c.ticket_id, sa.func.min(HOLD.c.started_at).label("held_since"))
        .where(HOLD.c.ended_at.is_(None))
        .group_by(HOLD.c.ticket_id)
        .subquery()
    )
    rows = connection.execute(
        sa.select(
            TICKET.c.id,
            TICKET.c.ref,
            TICKET.c.mailbox,
            TICKET.c.category,
            TICKET.c.status,
            TICKET.c.assignee,
            DEADLINE.c.commitment,
            DEADLINE.c.clock_start,
            DEADLINE.c.due_date,
            DEADLINE.c.due_at,
            TICKET.c.created_at,
            held.c.held_since,
        )
        .join(TICKET, TICKET.c.id == DEADLINE.c.ticket_id)
        .outerjoin(held, held.c.ticket_id == TICKET.c.id)
        .where(sa.or_(DEADLINE.c.met_at.is_(None), DEADLINE.c.met_at > now))
        .where(DEADLINE.c.commitment.in_(commitments))
        .where(TICKET.c.status != TicketStatus.CLOSED.value)
        .order_by(DEADLINE.c.due_date, TICKET.c.ref)
    ).all()
    return [OpenDeadline(*row) for row in rows]


def month_compliance(
    connection: Connection, settings: Settings, queue: MailboxSettings, month: date, now: datetime
) -> dict[str, dict[str, int]]:
    """Counts per commitment of the queue's cases due in `month`, as of `now`: met, late,
    open_late and pending."""
    first = month.replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    answered = sa.and_(DEADLINE.c.met_at.is_not(None), DEADLINE.c.met_at <= now)
    outcomes = {
        "met": sa.and_(answered, DEADLINE.c.met_at < DEADLINE.c.due_at),
        "late": sa.and_(answered, DEADLINE.c.met_at >= DEADLINE.c.due_at),
        "open_late": sa.and_(
            sa.not_(answered),
            DEADLINE.c.due_at < now,
            TICKET.c.status != TicketStatus.ON_HOLD.value,
        ),
    }
    columns = [
        sa.func.sum(sa.case((condition, 1), else_=0)).label(name)
        for name, condition in outcomes.items()
    ]
    rows = connection.execute(
        sa.select(DEADLINE.c.commitment, sa.func.count().label("total"), *columns)
        .join(TICKET, TICKET.c.id == DEADLINE.c.ticket_id)
        .where(_works(settings, queue))
        # A merged duplicate is not a request of its own (mailbot/merge.py).
        .where(
            sa.or_(
                TICKET.c.closed_reason.is_(None),
                TICKET.c.closed_reason != ClosedReason.MERGED.value,
            )
        )
        .where(DEADLINE.c.due_date >= first)
        .where(DEADLINE.c.due_date < after)
        .group_by(DEADLINE.c.commitment)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        values = {name: int(getattr(row, name) or 0) for name in outcomes}
        values["pending"] = int(row.total) - sum(values.values())
        counts[row.commitment] = values
    return counts


def _works(settings: Settings, queue: MailboxSettings) -> sa.ColumnElement[bool]:
    """The tickets `queue` works, as `Settings.queue_for` decides: its category, or what no
    queue's category claims among the tickets that arrived in it."""
    claimed = sorted({mailbox.category for mailbox in settings.mailboxes})
    return sa.or_(
        TICKET.c.category == queue.category,
        sa.and_(TICKET.c.mailbox == queue.name, TICKET.c.category.not_in(claimed)),
    )
