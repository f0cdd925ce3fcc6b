"""The scheduled jobs, run at a pass: reminders, escalations and digests due at `now` are
queued, each exactly once (its outbox dedupe key), each in its own transaction.

What is due is selected by the pure rules of mailbot/standards/due_jobs.py and
mailbot/standards/digest.py from what
the database holds; the scheduler only wakes a pass up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mailbot.app import App
from mailbot.db import job_rows, outbox_rows, ticket_rows
from mailbot.db.store import reading
from mailbot.mail.render import Rendered
from mailbot.sending import to_staff
from mailbot.standards.digest import (
    Compliance,
    build_digest,
    compliance_lines,
    render_digest,
    render_escalation,
    render_reminder,
)
from mailbot.standards.due_jobs import (
    WATCHED_KINDS,
    DigestDue,
    EscalationDue,
    OpenDeadline,
    ReminderDue,
    business_day_before,
    digests_due,
    escalations_due,
    office_moment,
    reminders_due,
    supervised_queues,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobsReport:
    """What one run queued; `already_queued` were found under their dedupe key."""

    reminders: int = 0
    escalations: int = 0
    digests: int = 0
    already_queued: int = 0
    failed: int = 0

    def counts(self) -> dict[str, int]:
        """Non-zero counts, named for the pass report."""
        named = {
            "reminders": self.reminders,
            "escalations": self.escalations,
            "digests": self.digests,
            "jobs_failed": self.failed,
        }
        return {name: n for name, n in named.items() if n}


def _ticket_mail(
    connection: Connection,
    app: App,
    item: ReminderDue | EscalationDue,
    rendered: Rendered,
    purpose: str,
    detail: str,
    now: datetime,
) -> bool:
    """A reminder or an escalation: staff mail threaded to its ticket by the signed token."""
    deadline = item.deadline
    row = to_staff.staff_message(
        connection,
        app,
        rendered,
        queue=app.settings.mailbox(item.queue),
        recipient=item.recipient,
        key=item.dedupe_key,
        purpose=purpose,
        ref=deadline.ref,
        ticket_id=deadline.ticket_id,
        now=now,
    )
    if row is None:
        return False
    ticket_rows.add_event(
        connection,
        deadline.ticket_id,
        now,
        f"{purpose}_queued",
        f"{deadline.commitment} due {deadline.due_date}, {detail}, to {item.recipient}",
        outbox_id=row,
    )
    return True


def _reminder(connection: Connection, app: App, item: ReminderDue, now: datetime) -> bool:
    rendered = render_reminder(app.renderer, item, app.calendar, app.settings)
    late = " (late)" if item.is_late else ""
    detail = f"{item.offset} business day(s) before{late}"
    return _ticket_mail(connection, app, item, rendered, "reminder", detail, now)


def _escalation(connection: Connection, app: App, item: EscalationDue, now: datetime) -> bool:
    rendered = render_escalation(app.renderer, item, app.calendar, app.settings)
    detail = f"{item.business_days_late} business day(s) late"
    return _ticket_mail(connection, app, item, rendered, "escalation", detail, now)


def _digest(
    connection: Connection,
    app: App,
    item: DigestDue,
    deadlines: Sequence[OpenDeadline],
    now: datetime,
) -> bool:
    settings = app.settings
    compliance: dict[str, tuple[Compliance, ...]] = {}
    for name in item.queues:
        queue = settings.mailbox(name)
        counts = job_rows.month_compliance(connection, settings, queue, item.day, now)
        compliance[name] = compliance_lines(settings, queue, counts)
    # Since the previous business day's digest (the first missed one's, after downtime).
    first = min((*item.missed_days, item.day))
    since = office_moment(
        app.calendar,
        business_day_before(app.calendar, first, 1),
        settings.reminders.digest_time,
    )
    digest = build_digest(
        item,
        deadlines,
        compliance,
        app.calendar,
        settings,
        now=now,
        referrals=job_rows.referrals_sent(connection, since, now),
    )
    row = to_staff.staff_message(
        connection,
        app,
        render_digest(app.renderer, digest, app.calendar, settings),
        queue=settings.mailbox(item.queues[0]),
        recipient=item.recipient,
        key=item.dedupe_key,
        purpose="digest",
        ref=None,
        ticket_id=None,
        now=now,
        kind=f"digest.{item.day.isoformat()}",
    )
    return row is not None


@dataclass
class _Tally:
    queued: int = 0
    already: int = 0
    failed: int = 0


def _run_each(
    app: App,
    items: Sequence[ReminderDue] | Sequence[EscalationDue] | Sequence[DigestDue],
    queue_one: Callable[[Connection, Any], bool],
    what: str,
) -> _Tally:
    """Each item in its own transaction: one failure never blocks the others."""
    tally = _Tally()
    for item in items:
        try:
            with app.engine.begin() as connection:
                # Checked first so that a pass renders only what is new.
                if outbox_rows.is_queued(connection, item.dedupe_key):
                    tally.already += 1
                    continue
                if queue_one(connection, item):
                    tally.queued += 1
                    log.info("queued %s %s", what, item.label)
                else:
                    tally.already += 1
        except IntegrityError:
            # Another instance committed the same key between our check and our insert.
            tally.already += 1
        except Exception:
            log.exception("%s %s could not be queued", what, item.label)
            tally.failed += 1
    return tally


def run_due_jobs(app: App, now: datetime) -> JobsReport:
    """Queue every reminder, escalation and digest due at `now` that is not queued yet."""
    settings = app.settings
    if not settings.reminders.enabled:
        return JobsReport()
    supervisors = list(supervised_queues(settings))
    watched = [c.id for c in settings.commitments if c.kind in WATCHED_KINDS]
    with reading(app.engine) as connection:
        deadlines = job_rows.open_deadlines(connection, watched, now)
        last_digest = outbox_rows.last_digest_days(connection, supervisors)
    reminders = _run_each(
        app,
        reminders_due(deadlines, now, app.calendar, settings),
        lambda connection, item: _reminder(connection, app, item, now),
        "reminder",
    )
    escalations = _run_each(
        app,
        escalations_due(deadlines, now, app.calendar, settings),
        lambda connection, item: _escalation(connection, app, item, now),
        "escalation",
    )
    digests = _run_each(
        app,
        digests_due(now, app.calendar, settings, last_digest),
        lambda connection, item: _digest(connection, app, item, deadlines, now),
        "digest",
    )
    tallies = (reminders, escalations, digests)
    return JobsReport(
        reminders=reminders.queued,
        escalations=escalations.queued,
        digests=digests.queued,
        already_queued=sum(t.already for t in tallies),
        failed=sum(t.failed for t in tallies),
    )
