"""The supervisors' digest: its content and the values its templates take (pure).

Per supervised queue: overdue, due today, due soon, on hold, the month's compliance per
commitment (the queue's cases whose due date falls in the current month, as of the digest),
and each referral sent outside the ministry since the previous digest (where, by whom).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mailbot.mail.render import Rendered, Renderer
from mailbot.settings import MailboxSettings, Settings
from mailbot.standards import compliance
from mailbot.standards.business_calendar import BusinessCalendar
from mailbot.standards.due_jobs import (
    WATCHED_KINDS,
    DigestDue,
    EscalationDue,
    OpenDeadline,
    ReminderDue,
    commitment_of,
    is_running,
    queue_of,
)
from mailbot.states import TicketStatus

# --- the digest's content (pure) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestLine:
    """One deadline in a digest: reference, commitment, dates, status, assignee; no text."""

    ref: str
    commitment: str
    label: str
    due_date: date
    status: str
    assignee: str | None
    business_days: int  # left before the due date, or late by (overdue)
    held_since: date | None = None


@dataclass(frozen=True, slots=True)
class Compliance(compliance.Outcomes):
    """One commitment's cases due this month in one queue, as of the digest."""

    commitment: str
    label: str
    target: float

    @property
    def meets_target(self) -> bool | None:
        return self.meets(self.target)


@dataclass(frozen=True, slots=True)
class SentReferral:
    """A referral the relay accepted: which ticket went outside the ministry, where, by whom
    and when (the supervisors see each one: personal information left the ministry)."""

    ref: str
    category: str
    mailbox: str
    address: str
    author: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class QueueDigest:
    name: str
    display_name: str
    address: str
    overdue: tuple[DigestLine, ...]
    due_today: tuple[DigestLine, ...]
    due_soon: tuple[DigestLine, ...]
    on_hold: tuple[DigestLine, ...]
    compliance: tuple[Compliance, ...]
    # Referrals sent outside the ministry since the previous digest, with their office time.
    referrals: tuple[tuple[SentReferral, datetime], ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    due: DigestDue
    horizon_end: date
    month: date  # the first day of the month the compliance covers
    queues: tuple[QueueDigest, ...]

    @property
    def overdue_count(self) -> int:
        return sum(len(queue.overdue) for queue in self.queues)

    @property
    def due_today_count(self) -> int:
        return sum(len(queue.due_today) for queue in self.queues)


def build_digest(
    due: DigestDue,
    deadlines: Iterable[OpenDeadline],
    compliance: Mapping[str, Sequence[Compliance]],
    calendar: BusinessCalendar,
    settings: Settings,
    *,
    now: datetime,
    referrals: Iterable[SentReferral] = (),
) -> Digest:
    """The digest's sections per supervised queue: overdue, due today, due soon, on hold.

    Overdue, due today and due soon list the deadlines whose clock runs at `now`
    (`mailbot.standards.due_jobs.is_running`: not closed, not paused by a hold that began before the
    deadline); on hold lists the tickets on hold, so a ticket put on hold after its deadline
    passed shows in both overdue and on hold.
    """
    today = due.day
    horizon_end = calendar.add_business_days(today, settings.reminders.digest_horizon_days)
    by_queue: dict[str, list[OpenDeadline]] = {name: [] for name in due.queues}
    for deadline in deadlines:
        commitment = commitment_of(settings, deadline.commitment)
        queue = queue_of(settings, deadline)
        if commitment is None or commitment.kind not in WATCHED_KINDS or queue is None:
            continue
        if queue.name in by_queue:
            by_queue[queue.name].append(deadline)
    referred: dict[str, list[SentReferral]] = {name: [] for name in due.queues}
    for sent in referrals:
        try:
            queue_name = settings.queue_for(sent.category, sent.mailbox).name
        except KeyError:
            continue
        if queue_name in referred:
            referred[queue_name].append(sent)
    queues = []
    for name in due.queues:
        mailbox = settings.mailbox(name)
        items = sorted(by_queue[name], key=lambda d: (d.due_date, d.ref, d.commitment))

        def line(deadline: OpenDeadline, days: int) -> DigestLine:
            return DigestLine(
                ref=deadline.ref,
                commitment=deadline.commitment,
                label=settings.commitment(deadline.commitment).label,
                due_date=deadline.due_date,
                status=deadline.status,
                assignee=deadline.assignee,
                business_days=days,
                held_since=(
                    calendar.office_date(deadline.held_since) if deadline.held_since else None
                ),
            )

        working = [d for d in items if is_running(d, now)]
        queues.append(
            QueueDigest(
                name=name,
                display_name=mailbox.display_name,
                address=mailbox.address,
                overdue=tuple(
                    line(d, calendar.business_days_between(d.due_date, today))
                    for d in working
                    if d.due_date < today
                ),
                due_today=tuple(line(d, 0) for d in working if d.due_date == today),
                due_soon=tuple(
                    line(d, calendar.business_days_between(today, d.due_date))
                    for d in working
                    if today < d.due_date <= horizon_end
                ),
                on_hold=tuple(line(d, 0) for d in items if d.status == TicketStatus.ON_HOLD),
                compliance=tuple(compliance.get(name, ())),
                referrals=tuple((r, r.sent_at.astimezone(calendar.zone)) for r in referred[name]),
            )
        )
    return Digest(
        due=due, horizon_end=horizon_end, month=today.replace(day=1), queues=tuple(queues)
    )


def compliance_lines(
    settings: Settings, queue: MailboxSettings, counts: Mapping[str, Mapping[str, int]]
) -> tuple[Compliance, ...]:
    """The queue's commitments in settings order, with the counts found (zero if none)."""
    lines = []
    for commitment_id in queue.commitments:
        commitment = commitment_of(settings, commitment_id)
        if commitment is None:
            continue
        found = counts.get(commitment_id, {})
        lines.append(
            Compliance(
                commitment=commitment_id,
                label=commitment.label,
                target=commitment.target,
                met=found.get("met", 0),
                late=found.get("late", 0),
                open_late=found.get("open_late", 0),
                pending=found.get("pending", 0),
            )
        )
    return tuple(lines)


# --- rendering (pure) -------------------------------------------------------------------------


def _office_values(calendar: BusinessCalendar, instant: datetime) -> dict[str, Any]:
    local = instant.astimezone(calendar.zone)
    return {"day": local.date(), "time": local.time()}


def _ticket_mail_values(
    item: ReminderDue | EscalationDue, calendar: BusinessCalendar, settings: Settings
) -> dict[str, Any]:
    return {
        "item": item,
        "deadline": item.deadline,
        "commitment": settings.commitment(item.deadline.commitment),
        "queue": settings.mailbox(item.queue),
        "planned": _office_values(calendar, item.planned_at),
        "org": settings.organisation,
    }


def render_reminder(
    renderer: Renderer, item: ReminderDue, calendar: BusinessCalendar, settings: Settings
) -> Rendered:
    return renderer.render("reminder", _ticket_mail_values(item, calendar, settings))


def render_escalation(
    renderer: Renderer, item: EscalationDue, calendar: BusinessCalendar, settings: Settings
) -> Rendered:
    return renderer.render("escalation", _ticket_mail_values(item, calendar, settings))


def render_digest(
    renderer: Renderer, digest: Digest, calendar: BusinessCalendar, settings: Settings
) -> Rendered:
    return renderer.render(
        "digest",
        {
            "digest": digest,
            "due": digest.due,
            "planned": _office_values(calendar, digest.due.planned_at),
            "horizon_days": settings.reminders.digest_horizon_days,
            "org": settings.organisation,
        },
    )
