"""Reminders, escalations and the supervisors' digest: what is due at `now` (pure).

Functions from facts (open deadlines, the day of each supervisor's last digest), `now`, the
calendar and the settings to frozen values (`ReminderDue`, `EscalationDue`, `DigestDue`).
`run_due_jobs` (`mailbot/reporting/jobs.py`) is the effectful edge: it reads those facts,
renders the French templates and writes one outbox row per message in its own transaction.
The scheduler only wakes this code up; the database decides what is due.

Rules (office time, business days of `BusinessCalendar`):

* **Watched deadlines**: `ticket_deadline` rows of a commitment of kind ``reply`` or
  ``result``, not met, on a ticket that is not closed, whose clock is not paused: a hold still
  open that began before the deadline pauses it; one placed after the deadline does not
  (`mailbot.standards.compliance`: the deadline was missed, the escalation and the digest say so).
* **Reminders**: for each offset k of ``[reminders] offsets`` (default 3, 1, 0), the k-th
  business day before the due date (0 = the due date) at ``reminder_time``. Only the latest
  threshold whose moment has passed is due, and only until the deadline instant: after
  downtime the reminder that was missed goes out once, late, and says so; an earlier one it
  supersedes is not sent. A threshold that falls before the clock started never applies.
  Recipients: the ticket's assignee, else the staff of its queue.
* **Escalation**: once the deadline has passed, on the first business day after the due date
  at ``reminder_time``, to the queue's supervisors (else its staff: a deadline never passes
  unnoticed). Once per deadline; a deadline moved by a hold is a new deadline.
* **Digest**: on business days from ``digest_time``, one per supervisor, covering every queue
  they supervise. Only today's digest is ever sent: business days since the supervisor's last
  digest whose digest was not sent are listed in it ("catch-up"), so three missed days give one
  digest, not three. No digest on weekends or holidays, even late.
* **Late**: a message queued more than `LATE_AFTER` after its planned moment says so (a
  reminder planned before its ticket existed is not late).
* **Exactly once**: each message has an outbox ``dedupe_key`` (unique in the database):
  ``reminder:{ref}:{commitment}:{due_date}:{offset}:{recipient}``,
  ``escalation:{ref}:{commitment}:{due_date}:{recipient}``, ``digest:{recipient}:{day}``.
  A key already present means "already queued", across restarts and concurrent instances.
* **Confidentiality**: reminders, escalations and digests carry references, dates, status and
  assignee only. No subject, for any category: the subject is the citizen's own words (a
  complaint's subject is complaint text, and an information request's subject often names a
  person or a situation), and these messages go to shared staff mailboxes. Nor the requester.
* **Month's compliance** (digest): the queue's cases whose due date falls in the current
  month, each with its outcome as of `now` by the report's rule
  (`mailbot.standards.compliance.deadline_outcome`: met, late, open and late, pending); rate = met /
  (met + late + open and late). Only the cases differ: the annual report counts by clock start
  (docs/report-rules.md), the digest watches this month's deadlines.
* **The due instant** is the end of the due day in office time (``due_at``): reminders stop
  and the deadline has passed from that instant on (`mailbot.standards.compliance.has_passed`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mailbot.settings import CommitmentSettings, MailboxSettings, Settings
from mailbot.standards import compliance
from mailbot.standards.business_calendar import BusinessCalendar, Hold
from mailbot.states import TicketStatus

WATCHED_KINDS = frozenset({"reply", "result"})
# Queued later than this after its planned moment, a message says it is late. Passes run every
# minute or so, and the daemon also wakes at the reminder and digest times.
LATE_AFTER = timedelta(hours=1)


# --- facts and values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenDeadline:
    """A commitment not met yet on a ticket that is not closed (what the jobs look at);
    `held_since` is when the ticket's hold open at the instant read began, if one was."""

    ticket_id: int
    ref: str
    mailbox: str
    category: str
    status: str
    assignee: str | None
    commitment: str
    clock_start: date
    due_date: date
    due_at: datetime
    opened_at: datetime
    held_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReminderDue:
    """One reminder to send: `offset` business days before `deadline`'s due date."""

    deadline: OpenDeadline
    offset: int
    day: date
    planned_at: datetime
    recipient: str
    queue: str
    business_days_left: int
    is_late: bool

    @property
    def label(self) -> str:
        return f"{self.deadline.ref} {self.deadline.commitment} J-{self.offset}"

    @property
    def dedupe_key(self) -> str:
        d = self.deadline
        return outbox_key(
            "reminder",
            d.ref,
            d.commitment,
            d.due_date.isoformat(),
            str(self.offset),
            self.recipient,
        )


@dataclass(frozen=True, slots=True)
class EscalationDue:
    """A deadline that passed, to be reported to a supervisor of its queue."""

    deadline: OpenDeadline
    planned_at: datetime
    recipient: str
    queue: str
    business_days_late: int
    is_late: bool

    @property
    def label(self) -> str:
        return f"{self.deadline.ref} {self.deadline.commitment}"

    @property
    def dedupe_key(self) -> str:
        d = self.deadline
        return outbox_key("escalation", d.ref, d.commitment, d.due_date.isoformat(), self.recipient)


@dataclass(frozen=True, slots=True)
class DigestDue:
    """Today's digest for one supervisor, with the business days whose digest was missed."""

    recipient: str
    day: date
    queues: tuple[str, ...]
    planned_at: datetime
    missed_days: tuple[date, ...]
    is_late: bool

    @property
    def label(self) -> str:
        return f"of {self.day.isoformat()} ({', '.join(self.queues)})"

    @property
    def dedupe_key(self) -> str:
        return outbox_key("digest", self.recipient, self.day.isoformat())


def outbox_key(*parts: str) -> str:
    """`parts` joined by ":"; a very long part (an address) is replaced by its SHA-256, so the
    key stays within the column's 300 characters."""
    return ":".join(
        hashlib.sha256(part.encode()).hexdigest() if len(part) > 150 else part for part in parts
    )


# --- pure selection ---------------------------------------------------------------------------


def office_moment(calendar: BusinessCalendar, day: date, at: time) -> datetime:
    """The UTC instant of office-time `at` on `day` (the zone, never a fixed offset: DST)."""
    return datetime.combine(day, at, tzinfo=calendar.zone).astimezone(UTC)


def business_day_before(calendar: BusinessCalendar, day: date, n: int) -> date:
    """The n-th business day before `day`; `day` itself for n == 0 (if a business day).

    A `day` that is not a business day (a holiday added after the deadline was computed) is
    replaced by the last business day before it.
    """
    result = day
    while not calendar.is_business_day(result):
        result -= timedelta(days=1)
    for _ in range(n):
        result -= timedelta(days=1)
        while not calendar.is_business_day(result):
            result -= timedelta(days=1)
    return result


def queue_of(settings: Settings, deadline: OpenDeadline) -> MailboxSettings | None:
    """The queue that works a ticket (`Settings.queue_for`); None if it is no longer
    configured (the jobs skip such a ticket rather than stop)."""
    try:
        return settings.queue_for(deadline.category, deadline.mailbox)
    except KeyError:
        return None


def _addresses(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value.strip().lower() for value in values if value.strip()))


def reminder_recipients(settings: Settings, deadline: OpenDeadline) -> tuple[str, ...]:
    """The assignee, else the staff of the ticket's queue."""
    if deadline.assignee:
        return _addresses([deadline.assignee])
    queue = queue_of(settings, deadline)
    return _addresses(queue.staff) if queue is not None else ()


def escalation_recipients(settings: Settings, deadline: OpenDeadline) -> tuple[str, ...]:
    """The supervisors of the ticket's queue, else its staff."""
    queue = queue_of(settings, deadline)
    if queue is None:
        return ()
    return _addresses(queue.supervisors or queue.staff)


def commitment_of(settings: Settings, commitment_id: str) -> CommitmentSettings | None:
    try:
        return settings.commitment(commitment_id)
    except KeyError:
        return None


def is_paused(deadline: OpenDeadline, now: datetime) -> bool:
    """The deadline's clock is stopped at `now` (`mailbot.standards.compliance.is_paused`): its
    ticket's
    open hold began before the deadline. A hold placed after the deadline pauses nothing."""
    holds = () if deadline.held_since is None else (Hold(start=deadline.held_since),)
    return compliance.is_paused(deadline.due_at, holds, now)


def is_running(deadline: OpenDeadline, now: datetime) -> bool:
    """Someone must still act on it at `now`: the ticket is not closed, the clock not paused."""
    return deadline.status != TicketStatus.CLOSED and not is_paused(deadline, now)


def is_watched(settings: Settings, deadline: OpenDeadline, now: datetime) -> bool:
    """A reply or result deadline whose clock runs at `now` (`is_running`)."""
    commitment = commitment_of(settings, deadline.commitment)
    return commitment is not None and commitment.kind in WATCHED_KINDS and is_running(deadline, now)


def _is_late(now: datetime, planned_at: datetime, opened_at: datetime) -> bool:
    return now - planned_at > LATE_AFTER and planned_at > opened_at


def current_threshold(
    deadline: OpenDeadline, now: datetime, calendar: BusinessCalendar, settings: Settings
) -> tuple[int, date, datetime] | None:
    """(offset, day, planned instant) of the latest reminder threshold passed at `now`."""
    if compliance.has_passed(deadline.due_at, now):
        return None
    current = None
    for offset in sorted(set(settings.reminders.offsets), reverse=True):
        day = business_day_before(calendar, deadline.due_date, offset)
        if day < deadline.clock_start:
            continue
        planned_at = office_moment(calendar, day, settings.reminders.reminder_time)
        if planned_at <= now:
            current = (offset, day, planned_at)
    return current


def reminders_due(
    deadlines: Iterable[OpenDeadline],
    now: datetime,
    calendar: BusinessCalendar,
    settings: Settings,
) -> list[ReminderDue]:
    """The reminders due at `now` (whether or not already queued: the outbox key decides)."""
    due: list[ReminderDue] = []
    today = calendar.office_date(now)
    for deadline in deadlines:
        if not is_watched(settings, deadline, now):
            continue
        threshold = current_threshold(deadline, now, calendar, settings)
        if threshold is None:
            continue
        offset, day, planned_at = threshold
        queue = queue_of(settings, deadline)
        if queue is None:
            continue
        for recipient in reminder_recipients(settings, deadline):
            due.append(
                ReminderDue(
                    deadline=deadline,
                    offset=offset,
                    day=day,
                    planned_at=planned_at,
                    recipient=recipient,
                    queue=queue.name,
                    business_days_left=calendar.business_days_between(today, deadline.due_date),
                    is_late=_is_late(now, planned_at, deadline.opened_at),
                )
            )
    return due


def escalations_due(
    deadlines: Iterable[OpenDeadline],
    now: datetime,
    calendar: BusinessCalendar,
    settings: Settings,
) -> list[EscalationDue]:
    """Deadlines passed at `now`, from the first business day after the due date."""
    due: list[EscalationDue] = []
    today = calendar.office_date(now)
    for deadline in deadlines:
        if not is_watched(settings, deadline, now):
            continue
        if not compliance.has_passed(deadline.due_at, now):
            continue
        day = calendar.next_business_day(deadline.due_date)
        planned_at = office_moment(calendar, day, settings.reminders.reminder_time)
        if now < planned_at:
            continue
        queue = queue_of(settings, deadline)
        if queue is None:
            continue
        for recipient in escalation_recipients(settings, deadline):
            due.append(
                EscalationDue(
                    deadline=deadline,
                    planned_at=planned_at,
                    recipient=recipient,
                    queue=queue.name,
                    business_days_late=calendar.business_days_between(deadline.due_date, today),
                    is_late=_is_late(now, planned_at, deadline.opened_at),
                )
            )
    return due


def supervised_queues(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Each supervisor (lower-case address) -> the queues they supervise, in settings order."""
    queues: dict[str, list[str]] = {}
    for mailbox in settings.mailboxes:
        for supervisor in _addresses(mailbox.supervisors):
            queues.setdefault(supervisor, []).append(mailbox.name)
    return {supervisor: tuple(names) for supervisor, names in queues.items()}


def digests_due(
    now: datetime,
    calendar: BusinessCalendar,
    settings: Settings,
    last_digest: Mapping[str, date],
) -> list[DigestDue]:
    """Today's digests not sent yet; `last_digest` is each supervisor's last digest day.

    The business days strictly between the last digest and today are the missed ones (none
    for a supervisor who never had a digest).
    """
    today = calendar.office_date(now)
    if not calendar.is_business_day(today):
        return []
    planned_at = office_moment(calendar, today, settings.reminders.digest_time)
    if now < planned_at:
        return []
    due: list[DigestDue] = []
    for supervisor, queues in supervised_queues(settings).items():
        last = last_digest.get(supervisor)
        if last is not None and last >= today:
            continue
        missed: list[date] = []
        if last is not None:
            day = calendar.next_business_day(last)
            while day < today:
                missed.append(day)
                day = calendar.next_business_day(day)
        due.append(
            DigestDue(
                recipient=supervisor,
                day=today,
                queues=queues,
                planned_at=planned_at,
                missed_days=tuple(missed),
                # A supervisor's very first digest is not "late": nothing was missed.
                is_late=last is not None and now - planned_at > LATE_AFTER,
            )
        )
    return due
