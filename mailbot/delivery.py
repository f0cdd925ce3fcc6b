"""What sending leaves for people: the brake's start and end, and mail that could not go.

The sender (mailbot/outbox.py) only sends rows and records outcomes. Before each flush,
`review_pacing` tells the queues' staff once when the brake starts holding acknowledgements
back and once when it lets the last of them go; after it, `report_failures` tells a person
about every acknowledgement or relayed reply that was refused for good or that the relay
cannot carry, so a citizen is never left without an answer unknowingly. Both write outbox rows
with dedupe keys: exactly once across passes, restarts and instances.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mailbot import records, workflow
from mailbot.outbox import PACED_PURPOSE, SendPolicy, due_paced, error_summary, paced_capacity

log = logging.getLogger(__name__)

PACING = "pacing"
# Mail to a citizen whose failure a person must learn of; staff mail is not reported (a
# failing staff address would only produce more failing staff mail).
REPORTED_PURPOSES = ("acknowledgement", "reply", "hold_request")


def review_pacing(
    engine: Engine, context: workflow.Context, policy: SendPolicy, now: datetime
) -> None:
    """Open or close the brake's episode and tell the queues' staff and supervisors."""
    if policy.pace_limit is None:
        return
    with engine.begin() as connection:
        capacity = paced_capacity(connection, policy, now) or 0
        waiting = due_paced(connection, now)
        alert = records.open_alert(connection, PACING)
        if alert is None and waiting > capacity:
            queues = _queues_waiting(connection, now)
            if records.start_alert(connection, PACING, now, ",".join(queues)):
                log.warning("brake: %d acknowledgement(s) paced", waiting - capacity)
                _tell(connection, context, queues, now, ended=False, waiting=waiting, since=now)
        elif (
            alert is not None
            and waiting <= capacity
            and records.resolve_alert(connection, PACING, now)
        ):
            log.warning("brake released")
            queues = [name for name in alert.detail.split(",") if name]
            _tell(connection, context, queues, now, ended=True, since=alert.started_at)


def _queues_waiting(connection: Connection, now: datetime) -> list[str]:
    outbox, ticket = records.OUTBOX, records.TICKET
    rows = connection.execute(
        sa.select(ticket.c.mailbox)
        .distinct()
        .join(ticket, ticket.c.id == outbox.c.ticket_id)
        .where(outbox.c.purpose == PACED_PURPOSE)
        .where(outbox.c.state == "pending")
        .where(outbox.c.next_attempt_at <= now)
        .order_by(ticket.c.mailbox)
    ).scalars()
    return list(rows)


def _tell(
    connection: Connection,
    context: workflow.Context,
    queues: list[str],
    now: datetime,
    *,
    ended: bool,
    since: datetime,
    waiting: int = 0,
) -> None:
    settings = context.settings
    rules = settings.classification
    for mailbox in settings.mailboxes:
        if mailbox.name not in queues:
            continue
        workflow.queue_internal(
            connection,
            context,
            template="brake",
            values={
                "ended": ended,
                "waiting": waiting,
                "limit": rules.burst_limit,
                "window_minutes": rules.burst_window_minutes,
                "started_at": since.astimezone(context.calendar.zone).strftime("%Y-%m-%d %H:%M"),
            },
            queue=mailbox,
            recipients=(*mailbox.staff, *mailbox.supervisors),
            ticket_id=None,
            ref=None,
            purpose="brake_notice",
            dedupe=f"brake:{mailbox.name}:{since.isoformat()}:{'end' if ended else 'start'}",
            now=now,
        )


def report_failures(engine: Engine, context: workflow.Context, now: datetime) -> int:
    """Tell a person of each citizen-bound message that failed for good or was held; returns
    how many reports were queued."""
    outbox, event = records.OUTBOX, records.EVENT
    reported = sa.select(event.c.outbox_id).where(event.c.kind == "failure_reported")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(outbox.c.id, outbox.c.ticket_id, outbox.c.purpose, outbox.c.state)
            .add_columns(outbox.c.last_error)
            .where(outbox.c.state.in_(("failed", "held")))
            .where(outbox.c.purpose.in_(REPORTED_PURPOSES))
            .where(outbox.c.ticket_id.is_not(None))
            .where(outbox.c.id.not_in(reported.where(event.c.outbox_id.is_not(None))))
            .order_by(outbox.c.id)
        ).all()
    queued = 0
    for row in rows:
        with engine.begin() as connection:
            queued += _report_failure(
                connection,
                context,
                now,
                outbox_id=row.id,
                ticket_id=row.ticket_id,
                purpose=row.purpose,
                state=row.state,
                error=row.last_error or "",
            )
    return queued


def _report_failure(
    connection: Connection,
    context: workflow.Context,
    now: datetime,
    *,
    outbox_id: int,
    ticket_id: int,
    purpose: str,
    state: str,
    error: str,
) -> int:
    ticket = records.ticket_by_id(connection, ticket_id)
    if ticket is None:
        return 0
    author = connection.execute(
        sa.select(records.EVENT.c.actor)
        .where(records.EVENT.c.outbox_id == outbox_id)
        .where(records.EVENT.c.kind == f"{purpose}_queued")
    ).scalar()
    # A relayed reply's author learns it did not arrive; an acknowledgement's failure goes to
    # whoever works the ticket.
    recipients = (
        (str(author),)
        if purpose != PACED_PURPOSE and author and author != "mailbot"
        else workflow.staff_recipients(context.settings, ticket, ticket.assignee)
    )
    workflow.queue_internal(
        connection,
        context,
        template="delivery_failed",
        values={
            "ticket": ticket,
            "purpose": purpose,
            "held": state == "held",
            "error": error_summary(error),
        },
        queue=workflow.queue_of(context.settings, ticket),
        recipients=recipients,
        ticket_id=ticket.id,
        ref=ticket.ref,
        purpose="failure_notice",
        dedupe=f"failure:{outbox_id}",
        now=now,
    )
    records.add_event(
        connection,
        ticket.id,
        now,
        "failure_reported",
        f"{purpose} {state}: told {', '.join(recipients)}",
        outbox_id=outbox_id,
    )
    return 1
