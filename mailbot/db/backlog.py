"""What the operators' health, metrics and alerts read from the database: counts and ages,
never a person's address or words."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import DEADLINE, INBOUND, OUTBOX, TICKET
from mailbot.db.outbox_rows import PACED_PURPOSE
from mailbot.db.outcome import outcome_sql
from mailbot.states import MessageState, OutboxState, TicketStatus


@dataclass(frozen=True, slots=True)
class Backlog:
    """The work waiting, as of one instant."""

    outbox_depth: int = 0
    # When the oldest unsent row was queued (None: the outbox is empty).
    oldest_pending: datetime | None = None
    # Since when the longest-due row has been waiting for the sender (None: nothing due).
    # Acknowledgements the brake holds back do not count while `braking`.
    due_since: datetime | None = None
    quarantined: int = 0
    open_tickets: dict[str, int] = field(default_factory=dict)  # by mailbox
    # Unanswered deadlines of tickets not closed whose clock runs (no hold that began before
    # the deadline is open), by commitment: due today (office date), and passed (open_late).
    due_today: dict[str, int] = field(default_factory=dict)
    overdue: dict[str, int] = field(default_factory=dict)


def backlog(
    connection: Connection,
    now: datetime,
    today: date,
    *,
    braking: bool,
    restarting: Collection[str] = (),
) -> Backlog:
    pending = OUTBOX.c.state == OutboxState.PENDING.value
    depth, oldest = connection.execute(
        sa.select(sa.func.count(), sa.func.min(OUTBOX.c.created_at)).where(pending)
    ).one()
    due = sa.and_(pending, OUTBOX.c.next_attempt_at <= now)
    if braking:
        due = sa.and_(due, OUTBOX.c.purpose != PACED_PURPOSE)
    due_since = connection.execute(sa.select(sa.func.min(OUTBOX.c.next_attempt_at)).where(due))
    quarantined = connection.execute(
        sa.select(sa.func.count()).where(INBOUND.c.state == MessageState.QUARANTINED.value)
    ).scalar_one()
    open_tickets = connection.execute(
        sa.select(TICKET.c.mailbox, sa.func.count())
        .where(TICKET.c.status == TicketStatus.OPEN.value)
        .group_by(TICKET.c.mailbox)
    ).all()
    # The deadlines whose clock runs (as the reminders and the digest watch them), each with
    # its outcome as of `now` by the report's rule
    # (`mailbot.standards.compliance.deadline_outcome`).
    outcome = outcome_sql(now, restarting=restarting)
    running = (
        sa.select(DEADLINE.c.commitment, sa.func.count())
        .join(TICKET, TICKET.c.id == DEADLINE.c.ticket_id)
        .where(TICKET.c.status != TicketStatus.CLOSED.value)
        .where(sa.not_(outcome.is_answered))
        .where(sa.not_(outcome.is_paused))
        .group_by(DEADLINE.c.commitment)
    )
    due_today = connection.execute(running.where(DEADLINE.c.due_date == today)).all()
    overdue = connection.execute(running.where(outcome.is_open_late)).all()
    return Backlog(
        outbox_depth=int(depth),
        oldest_pending=oldest,
        due_since=due_since.scalar_one(),
        quarantined=int(quarantined),
        open_tickets={str(name): int(n) for name, n in open_tickets},
        due_today={str(name): int(n) for name, n in due_today},
        overdue={str(name): int(n) for name, n in overdue},
    )
