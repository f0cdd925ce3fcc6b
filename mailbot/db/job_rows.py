"""What the scheduled jobs read: open deadlines, and a month's compliance of a queue."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import DEADLINE, EVENT, HOLD, OUTBOX, TICKET
from mailbot.db.outcome import outcome_sql
from mailbot.settings import MailboxSettings, Settings
from mailbot.standards.compliance import EXCLUDED_CLOSING_REASONS, EXCLUDED_STATUSES, Outcome
from mailbot.standards.digest import SentReferral
from mailbot.standards.due_jobs import OpenDeadline
from mailbot.states import OutboxState, TicketStatus


def open_deadlines(
    connection: Connection, commitments: list[str], now: datetime
) -> list[OpenDeadline]:
    """Deadlines of `commitments` not met at `now`, on tickets that are not closed, with the
    start of the ticket's hold open at `now` (`held_since`), if any.

    A reply recorded, or a hold started or ended, after `now` is ignored, so `--now` replays
    the past as it was.
    """
    if not commitments:
        return []
    held = (
        sa.select(HOLD.c.ticket_id, sa.func.min(HOLD.c.started_at).label("held_since"))
        .where(HOLD.c.started_at <= now)
        .where(sa.or_(HOLD.c.ended_at.is_(None), HOLD.c.ended_at > now))
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
        .where(sa.not_(outcome_sql(now).is_answered))
        .where(DEADLINE.c.commitment.in_(commitments))
        .where(TICKET.c.status != TicketStatus.CLOSED.value)
        .order_by(DEADLINE.c.due_date, TICKET.c.ref)
    ).all()
    return [OpenDeadline(*row) for row in rows]


def month_compliance(
    connection: Connection, settings: Settings, queue: MailboxSettings, month: date, now: datetime
) -> dict[str, dict[str, int]]:
    """Counts per commitment of the queue's cases due in `month`, as of `now`: met, late,
    open_late and pending, each case's outcome decided by
    `mailbot.standards.compliance.deadline_outcome`
    (as the report decides it; only the cases counted differ: the report takes a period's
    clock starts, the digest a month's due dates)."""
    first = month.replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    # The one outcome rule (`mailbot.standards.compliance.deadline_outcome`), in the SQL the report
    # uses.
    outcome = outcome_sql(now, restarting=settings.restarting_commitments)
    outcomes = {
        Outcome.MET.value: outcome.is_met,
        Outcome.LATE.value: outcome.is_late,
        Outcome.OPEN_LATE.value: outcome.is_open_late,
    }
    excluded = [TICKET.c.status.not_in(EXCLUDED_STATUSES)] if EXCLUDED_STATUSES else []
    columns = [
        sa.func.sum(sa.case((condition, 1), else_=0)).label(name)
        for name, condition in outcomes.items()
    ]
    rows = connection.execute(
        sa.select(DEADLINE.c.commitment, sa.func.count().label("total"), *columns)
        .join(TICKET, TICKET.c.id == DEADLINE.c.ticket_id)
        .where(_works(settings, queue))
        .where(*excluded)
        # A merged duplicate is not a request of its own (mailbot/tickets/merge.py).
        .where(
            sa.or_(
                TICKET.c.closed_reason.is_(None),
                TICKET.c.closed_reason.not_in(EXCLUDED_CLOSING_REASONS),
            )
        )
        .where(DEADLINE.c.due_date >= first)
        .where(DEADLINE.c.due_date < after)
        .group_by(DEADLINE.c.commitment)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        values = {name: int(getattr(row, name) or 0) for name in outcomes}
        values[Outcome.PENDING.value] = int(row.total) - sum(values.values())
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


def referrals_sent(connection: Connection, since: datetime, until: datetime) -> list[SentReferral]:
    """Every referral the relay accepted in (`since`, `until`]: the ticket, the body it went
    to, who referred it and when, for the supervisors' digest."""
    author = (
        sa.select(EVENT.c.actor)
        .where(EVENT.c.outbox_id == OUTBOX.c.id)
        .where(EVENT.c.kind == "referral_queued")
        .limit(1)
        .scalar_subquery()
    )
    rows = connection.execute(
        sa.select(
            TICKET.c.ref,
            TICKET.c.category,
            TICKET.c.mailbox,
            OUTBOX.c.recipient,
            sa.func.coalesce(author, ""),
            OUTBOX.c.sent_at,
        )
        .join(TICKET, TICKET.c.id == OUTBOX.c.ticket_id)
        .where(OUTBOX.c.purpose == "referral")
        .where(OUTBOX.c.state == OutboxState.SENT.value)
        .where(OUTBOX.c.sent_at > since)
        .where(OUTBOX.c.sent_at <= until)
        .order_by(OUTBOX.c.sent_at, OUTBOX.c.id)
    ).all()
    return [SentReferral(*row) for row in rows]
