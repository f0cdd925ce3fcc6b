"""Reminders, escalations and the supervisors' digest: what is due at `now`, then queued.

The selection is pure: functions from facts (open deadlines, the day of each supervisor's
last digest), `now`, the calendar and the settings to frozen values (`ReminderDue`,
`EscalationDue`, `DigestDue`). `run_due_jobs` is the effectful edge: it reads those facts,
renders the French templates and writes one outbox row per message in its own transaction.
The scheduler only wakes this code up; the database decides what is due.

Rules (office time, business days of `BusinessCalendar`):

* **Watched deadlines**: `ticket_deadline` rows of a commitment of kind ``reply`` or
  ``result``, not met, on a ticket that is neither closed nor on hold.
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
  month, as of `now`: met (``met_at < due_at``), late, open and late (no reply, deadline past,
  not on hold); rate = met / (met + late + open and late). The annual report counts by clock
  start instead (docs/report-rules.md); the digest watches this month's deadlines.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mailbot import compliance, records, tokens
from mailbot.business_calendar import BusinessCalendar
from mailbot.models import TicketHold
from mailbot.render import Rendered, Renderer, compose_staff_mail
from mailbot.settings import CommitmentSettings, MailboxSettings, Settings

if TYPE_CHECKING:
    from mailbot.app import App

log = logging.getLogger(__name__)

WATCHED_KINDS = frozenset({"reply", "result"})
QUIET_STATUSES = frozenset({"closed", "on_hold"})
# Queued later than this after its planned moment, a message says it is late. Passes run every
# minute or so, and the daemon also wakes at the reminder and digest times.
LATE_AFTER = timedelta(hours=1)
HOLD = TicketHold.__table__  # type: ignore[attr-defined]


# --- facts and values -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenDeadline:
    """A commitment not met yet on a ticket that is not closed (what the jobs look at)."""

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
    """The queue that works a ticket (see `Settings.queue_for`); None if none is configured."""
    return settings.queue_for(deadline.category, deadline.mailbox)


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


def _commitment(settings: Settings, commitment_id: str) -> CommitmentSettings | None:
    try:
        return settings.commitment(commitment_id)
    except KeyError:
        return None


def is_watched(settings: Settings, deadline: OpenDeadline) -> bool:
    """A reply or result deadline on a ticket neither closed nor on hold."""
    commitment = _commitment(settings, deadline.commitment)
    return (
        commitment is not None
        and commitment.kind in WATCHED_KINDS
        and deadline.status not in QUIET_STATUSES
    )


def _is_late(now: datetime, planned_at: datetime, opened_at: datetime) -> bool:
    return now - planned_at > LATE_AFTER and planned_at > opened_at


def current_threshold(
    deadline: OpenDeadline, now: datetime, calendar: BusinessCalendar, settings: Settings
) -> tuple[int, date, datetime] | None:
    """(offset, day, planned instant) of the latest reminder threshold passed at `now`."""
    if now >= deadline.due_at:
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
        if not is_watched(settings, deadline):
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
        if not is_watched(settings, deadline) or now < deadline.due_at:
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
class Compliance:
    """One commitment's cases due this month in one queue, as of the digest."""

    commitment: str
    label: str
    target: float
    met: int
    late: int
    open_late: int
    pending: int

    @property
    def decided(self) -> int:
        return self.met + self.late + self.open_late

    @property
    def rate(self) -> float | None:
        return compliance.rate(self.met, self.decided)

    @property
    def meets_target(self) -> bool | None:
        return compliance.meets(self.met, self.decided, self.target)


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
) -> Digest:
    """The digest's sections per supervised queue: overdue, due today, due soon, on hold."""
    today = due.day
    horizon_end = calendar.add_business_days(today, settings.reminders.digest_horizon_days)
    by_queue: dict[str, list[OpenDeadline]] = {name: [] for name in due.queues}
    for deadline in deadlines:
        commitment = _commitment(settings, deadline.commitment)
        queue = queue_of(settings, deadline)
        if commitment is None or commitment.kind not in WATCHED_KINDS or queue is None:
            continue
        if queue.name in by_queue:
            by_queue[queue.name].append(deadline)
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

        working = [d for d in items if d.status not in QUIET_STATUSES]
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
                on_hold=tuple(line(d, 0) for d in items if d.status == "on_hold"),
                compliance=tuple(compliance.get(name, ())),
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
        commitment = _commitment(settings, commitment_id)
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


# --- the effectful edge -----------------------------------------------------------------------


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


def load_open_deadlines(
    connection: Connection, settings: Settings, now: datetime
) -> list[OpenDeadline]:
    """Deadlines of watched commitments not met at `now`, on tickets that are not closed.

    A reply recorded after `now` is ignored, so `--now` replays the past as it was.
    """
    watched = [c.id for c in settings.commitments if c.kind in WATCHED_KINDS]
    if not watched:
        return []
    ticket, deadline = records.TICKET, records.DEADLINE
    held = (
        sa.select(HOLD.c.ticket_id, sa.func.min(HOLD.c.started_at).label("held_since"))
        .where(HOLD.c.ended_at.is_(None))
        .group_by(HOLD.c.ticket_id)
        .subquery()
    )
    rows = connection.execute(
        sa.select(
            ticket.c.id,
            ticket.c.ref,
            ticket.c.mailbox,
            ticket.c.category,
            ticket.c.status,
            ticket.c.assignee,
            ticket.c.created_at,
            deadline.c.commitment,
            deadline.c.clock_start,
            deadline.c.due_date,
            deadline.c.due_at,
            held.c.held_since,
        )
        .join(ticket, ticket.c.id == deadline.c.ticket_id)
        .outerjoin(held, held.c.ticket_id == ticket.c.id)
        .where(sa.or_(deadline.c.met_at.is_(None), deadline.c.met_at > now))
        .where(deadline.c.commitment.in_(watched))
        .where(ticket.c.status != "closed")
        .order_by(deadline.c.due_date, ticket.c.ref)
    ).all()
    return [
        OpenDeadline(
            ticket_id=row.id,
            ref=row.ref,
            mailbox=row.mailbox,
            category=row.category,
            status=row.status,
            assignee=row.assignee,
            commitment=row.commitment,
            clock_start=row.clock_start,
            due_date=row.due_date,
            due_at=row.due_at,
            opened_at=row.created_at,
            held_since=row.held_since,
        )
        for row in rows
    ]


def last_digest_days(connection: Connection, recipients: Sequence[str]) -> dict[str, date]:
    """Each recipient's latest digest day, read from the outbox keys ``digest:{to}:{day}``."""
    if not recipients:
        return {}
    outbox = records.OUTBOX
    rows = connection.execute(
        sa.select(outbox.c.recipient, sa.func.max(outbox.c.dedupe_key))
        .where(outbox.c.purpose == "digest")
        .where(outbox.c.recipient.in_(list(recipients)))
        .group_by(outbox.c.recipient)
    ).all()
    found: dict[str, date] = {}
    for recipient, key in rows:
        try:
            found[recipient] = date.fromisoformat(str(key).rsplit(":", 1)[1])
        except (IndexError, ValueError):
            log.warning("digest key %r has no date", key)
    return found


def month_compliance(
    connection: Connection, settings: Settings, queue: MailboxSettings, month: date, now: datetime
) -> dict[str, dict[str, int]]:
    """Counts per commitment of the queue's cases due in `month`, as of `now`."""
    ticket, deadline = records.TICKET, records.DEADLINE
    first = month.replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    answered = sa.and_(deadline.c.met_at.is_not(None), deadline.c.met_at <= now)
    outcomes = {
        "met": sa.and_(answered, deadline.c.met_at < deadline.c.due_at),
        "late": sa.and_(answered, deadline.c.met_at >= deadline.c.due_at),
        "open_late": sa.and_(
            sa.not_(answered), deadline.c.due_at < now, ticket.c.status != "on_hold"
        ),
    }
    columns = [
        sa.func.sum(sa.case((condition, 1), else_=0)).label(name)
        for name, condition in outcomes.items()
    ]
    rows = connection.execute(
        sa.select(deadline.c.commitment, sa.func.count().label("total"), *columns)
        .join(ticket, ticket.c.id == deadline.c.ticket_id)
        .where(_works(settings, queue))
        .where(deadline.c.due_date >= first)
        .where(deadline.c.due_date < after)
        .group_by(deadline.c.commitment)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        values = {name: int(getattr(row, name) or 0) for name in outcomes}
        values["pending"] = int(row.total) - sum(values.values())
        counts[row.commitment] = values
    return counts


def _works(settings: Settings, queue: MailboxSettings) -> sa.ColumnElement[bool]:
    """The tickets `queue` works, as `queue_of` decides: its category, or what no queue's
    category claims among the tickets that arrived in it."""
    ticket = records.TICKET
    claimed = sorted({mailbox.category for mailbox in settings.mailboxes})
    return sa.or_(
        ticket.c.category == queue.category,
        sa.and_(ticket.c.mailbox == queue.name, ticket.c.category.not_in(claimed)),
    )


def _queue_compliance(
    connection: Connection, settings: Settings, due: DigestDue, now: datetime
) -> dict[str, tuple[Compliance, ...]]:
    result = {}
    for name in due.queues:
        mailbox = settings.mailbox(name)
        counts = month_compliance(connection, settings, mailbox, due.day, now)
        result[name] = compliance_lines(settings, mailbox, counts)
    return result


def _is_queued(connection: Connection, key: str) -> bool:
    outbox = records.OUTBOX
    found = connection.execute(sa.select(outbox.c.id).where(outbox.c.dedupe_key == key)).first()
    return found is not None


def _queue(
    connection: Connection,
    app: App,
    *,
    key: str,
    message: EmailMessage,
    message_id: str,
    recipient: str,
    purpose: str,
    ticket_id: int | None,
    now: datetime,
    detail: str = "",
) -> bool:
    outbox_id = records.queue_message(
        connection,
        ticket_id=ticket_id,
        purpose=purpose,
        dedupe_key=key,
        message_id=message_id,
        envelope_from=app.settings.smtp.bounce_address,
        recipient=recipient,
        raw=message.as_bytes(),
        now=now,
    )
    if outbox_id is None:
        return False
    if ticket_id is not None:
        records.add_event(
            connection, ticket_id, now, f"{purpose}_queued", detail, outbox_id=outbox_id
        )
    return True


def _queue_ticket_mail(
    connection: Connection,
    app: App,
    item: ReminderDue | EscalationDue,
    rendered: Rendered,
    purpose: str,
    detail: str,
    now: datetime,
) -> bool:
    """A reminder or an escalation: staff mail threaded to its ticket by the signed token."""
    domain = app.settings.organisation.message_id_domain
    message_id = tokens.make_message_id(
        app.signing_key, item.deadline.ref, tokens.new_nonce(), domain
    )
    message = compose_staff_mail(
        rendered,
        queue=app.settings.mailbox(item.queue),
        recipient=item.recipient,
        message_id=message_id,
        now=now,
        purpose=purpose,
        loop_token=domain,
    )
    return _queue(
        connection,
        app,
        key=item.dedupe_key,
        message=message,
        message_id=message_id,
        recipient=item.recipient,
        purpose=purpose,
        ticket_id=item.deadline.ticket_id,
        now=now,
        detail=f"{item.deadline.commitment} due {item.deadline.due_date}, {detail}, "
        f"to {item.recipient}",
    )


def _queue_reminder(connection: Connection, app: App, item: ReminderDue, now: datetime) -> bool:
    rendered = render_reminder(app.renderer, item, app.calendar, app.settings)
    late = " (late)" if item.is_late else ""
    detail = f"{item.offset} business day(s) before{late}"
    return _queue_ticket_mail(connection, app, item, rendered, "reminder", detail, now)


def _queue_escalation(connection: Connection, app: App, item: EscalationDue, now: datetime) -> bool:
    rendered = render_escalation(app.renderer, item, app.calendar, app.settings)
    detail = f"{item.business_days_late} business day(s) late"
    return _queue_ticket_mail(connection, app, item, rendered, "escalation", detail, now)


def _queue_digest(
    connection: Connection,
    app: App,
    item: DigestDue,
    deadlines: Sequence[OpenDeadline],
    now: datetime,
) -> bool:
    settings = app.settings
    compliance = _queue_compliance(connection, settings, item, now)
    digest = build_digest(item, deadlines, compliance, app.calendar, settings)
    domain = settings.organisation.message_id_domain
    message_id = f"<mb-digest.{item.day.isoformat()}.{tokens.new_nonce()}@{domain}>"
    message = compose_staff_mail(
        render_digest(app.renderer, digest, app.calendar, settings),
        queue=settings.mailbox(item.queues[0]),
        recipient=item.recipient,
        message_id=message_id,
        now=now,
        purpose="digest",
        loop_token=domain,
    )
    return _queue(
        connection,
        app,
        key=item.dedupe_key,
        message=message,
        message_id=message_id,
        recipient=item.recipient,
        purpose="digest",
        ticket_id=None,
        now=now,
    )


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
                if _is_queued(connection, item.dedupe_key):
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
    with app.engine.connect() as connection:
        deadlines = load_open_deadlines(connection, settings, now)
        last_digest = last_digest_days(connection, supervisors)
    reminders = _run_each(
        app,
        reminders_due(deadlines, now, app.calendar, settings),
        lambda connection, item: _queue_reminder(connection, app, item, now),
        "reminder",
    )
    escalations = _run_each(
        app,
        escalations_due(deadlines, now, app.calendar, settings),
        lambda connection, item: _queue_escalation(connection, app, item, now),
        "escalation",
    )
    digests = _run_each(
        app,
        digests_due(now, app.calendar, settings, last_digest),
        lambda connection, item: _queue_digest(connection, app, item, deadlines, now),
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
