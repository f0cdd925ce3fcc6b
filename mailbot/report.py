"""The service-standards report: how many cases met each commitment, per queue (reads, renders).

`build_report` asks the database for aggregates (SQLAlchemy Core, SQLite and PostgreSQL) and
turns them into frozen values; `render_report` writes those values as a table, JSON, CSV or a
self-contained French HTML page. Nothing here writes to the database or reads the clock: the
instant the report is made "as of" is a parameter.

Counting rules
--------------
These make the published figures defensible; ``docs/report-rules.md`` says the same at length.

* **A case** is one commitment's clock on one ticket: one ``ticket_deadline`` row. A ticket
  counts once per commitment it carries (an information request is an ``ack`` case and an
  ``info_reply`` case).
* **The period.** A case falls in ``[since, until]`` (both days included) by its clock start
  (``ticket_deadline.clock_start``: the receipt day in office time, or the day a staff date
  started the clock). Where the case ended up, or when it was answered, does not move it.
* **The queue** is the mailbox the request arrived in (``ticket.mailbox``).
* **Met** means the reply was recorded (``met_at``) before the end of the due day in office
  time (``met_at < due_at``): a reply sent on the due day meets the standard.
* **Outcomes**, decided as of ``as_of``; a ``met_at`` later than ``as_of`` is ignored:
    - ``met``: answered on time;
    - ``late``: answered after the deadline;
    - ``open_late``: no reply recorded and the deadline has passed (whatever the ticket's
      status: a ticket closed without a recorded reply did not meet the commitment), unless
      the clock is paused;
    - ``pending``: no reply recorded and the deadline has not passed, or the clock is paused
      by a hold that is open at ``as_of`` and began before the deadline.
* **The rate** is ``met / (met + late + open_late)``. Pending cases are reported but are not in
  the rate: their outcome is not known yet. The target is met when the rate is at least the
  commitment's target, compared exactly (``7/8`` against ``0.85`` with fractions, no rounding;
  `mailbot.compliance`, the rule the supervisors' digest uses too).
* **Delays** are in business days, for answered cases only: the business days from the clock
  start (day 0) to the office date of the reply, less the days the clock was on hold, never
  below 0. So a case is met exactly when its delay is at most the commitment's N days (unless
  the reply fell on a non-business day after the due date). The **median** and **90th
  percentile** are nearest-rank values: the smallest delay within which at least half (90 %)
  of the answered cases were answered. Cases without a reply are counted in ``open_late`` or
  ``pending``, not in the delays.
* **Holds.** The clock is paused while the ministry waits on the citizen; the pause is already
  in the row's ``due_date``/``due_at`` and ``days_on_hold`` (business days the deadline moved).
  The report shows the total of ``days_on_hold`` and how many cases had one.
* **Reclassified complaints** count under the commitments their ticket ended with (the
  deadline rows present), in the queue the message arrived in, from the original clock start
  (a category change keeps the receipt day).
* **Automatic messages** (bounces, auto-replies, robots) never open tickets, so they have no
  deadline rows and are absent by construction.
* **Withdrawn and merged requests**: the ticket model has no such status yet (statuses are
  ``open``, ``on_hold``, ``answered``, ``closed``). Add the status to `EXCLUDED_STATUSES` and
  every figure leaves those cases out; until then they count like any other case.
* **Reopened tickets**: ``met_at`` is the first reply; a follow-up does not start a new case.

How it stays fast: one aggregate query grouped by commitment, queue and month of the clock
start (counts with ``CASE``); one grouped by (commitment, queue, clock start, reply date, days
on hold) for the delays, whose few thousand distinct date pairs are turned into business days
here with the calendar; the case listing only when asked for. No ticket object is loaded.
The queries share one transaction, so every figure describes the same snapshot.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import mailbot.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from mailbot import compliance
from mailbot.business_calendar import BusinessCalendar
from mailbot.errors import NotFound
from mailbot.settings import Settings

FORMATS = ("table", "json", "csv", "html")
# Ticket statuses whose cases are left out of every figure (none exists yet: see the module
# docstring). Adding a status here is the whole change, e.g. ("withdrawn", "merged").
EXCLUDED_STATUSES: tuple[str, ...] = ()
# Shown in the queue column of a line that adds up every queue of the report.
ALL_QUEUES = "*"
MEDIAN = Fraction(1, 2)
NINETIETH = Fraction(9, 10)
TEMPLATE = "report.html"


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What to report on: clock starts from `since` to `until` (both included), one queue or all."""

    since: date
    until: date
    queue: str | None = None
    details: bool = False

    def __post_init__(self) -> None:
        if self.since > self.until:
            raise ValueError(f"the period starts ({self.since}) after it ends ({self.until})")


@dataclass(frozen=True, slots=True)
class Figures:
    """The counts behind one line of the report (see the module docstring for each rule)."""

    cases: int
    met: int
    late: int
    open_late: int
    pending: int
    median_days: int | None
    p90_days: int | None
    days_on_hold: int
    cases_with_hold: int

    @property
    def decided(self) -> int:
        """The rate's denominator: every case whose outcome is known."""
        return self.met + self.late + self.open_late

    @property
    def rate(self) -> float | None:
        return compliance.rate(self.met, self.decided)

    def meets(self, target: float | None) -> bool | None:
        """Whether the rate reaches `target`, exactly; None without a target or a decided case."""
        return compliance.meets(self.met, self.decided, target)


@dataclass(frozen=True, slots=True)
class Line:
    """One commitment's figures in one queue, or in every queue of the report (queue None)."""

    queue: str | None
    figures: Figures
    target_met: bool | None


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """One month of clock starts, for the trend: cases met, decided and pending."""

    month: date  # the first day of the month
    met: int
    decided: int
    pending: int

    @property
    def rate(self) -> float | None:
        return compliance.rate(self.met, self.decided)


@dataclass(frozen=True, slots=True)
class CommitmentReport:
    """One commitment: every queue together, each queue, and the monthly trend."""

    commitment: str
    label: str
    business_days: int | None  # None for a commitment no longer in the configuration
    target: float | None
    total: Line
    queues: tuple[Line, ...]
    trend: tuple[MonthFigures, ...]


@dataclass(frozen=True, slots=True)
class Case:
    """One case behind the figures (``--details``): references, dates and status, no text."""

    ref: str
    commitment: str
    queue: str
    clock_start: date
    due_date: date
    met_at: datetime | None
    outcome: str  # met | late | open_late | pending
    delay_days: int | None
    days_on_hold: int
    status: str


@dataclass(frozen=True, slots=True)
class Report:
    request: ReportRequest
    as_of: datetime
    organisation: str
    timezone: str
    months: tuple[date, ...]
    commitments: tuple[CommitmentReport, ...]
    cases: tuple[Case, ...] = ()

    def office_time(self, instant: datetime) -> datetime:
        """`instant` in the office's time zone, for display."""
        return instant.astimezone(ZoneInfo(self.timezone))


# --- the queries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    """The SQL of one request: which rows are cases, and each case's outcome as of `as_of`."""

    source: sa.FromClause
    where: tuple[sa.ColumnElement[bool], ...]
    is_answered: sa.ColumnElement[bool]
    is_met: sa.ColumnElement[bool]
    is_late: sa.ColumnElement[bool]
    is_open_late: sa.ColumnElement[bool]
    outcome: sa.ColumnElement[str]


def _tables() -> tuple[sa.Table, sa.Table, sa.Table]:
    tables = SQLModel.metadata.tables
    return tables["ticket"], tables["ticket_deadline"], tables["ticket_hold"]


def _scope(request: ReportRequest, as_of: datetime) -> _Scope:
    ticket, deadline, hold = _tables()
    where: list[sa.ColumnElement[bool]] = [
        deadline.c.clock_start >= request.since,
        deadline.c.clock_start <= request.until,
    ]
    if EXCLUDED_STATUSES:
        where.append(ticket.c.status.not_in(EXCLUDED_STATUSES))
    if request.queue is not None:
        where.append(ticket.c.mailbox == request.queue)
    is_answered = sa.and_(deadline.c.met_at.is_not(None), deadline.c.met_at <= as_of)
    is_met = sa.and_(is_answered, deadline.c.met_at < deadline.c.due_at)
    is_late = sa.and_(is_answered, deadline.c.met_at >= deadline.c.due_at)
    # A hold open at `as_of` that began before the deadline pauses the clock: not late yet.
    is_paused = (
        sa.exists()
        .where(hold.c.ticket_id == deadline.c.ticket_id)
        .where(hold.c.started_at <= as_of)
        .where(hold.c.started_at < deadline.c.due_at)
        .where(sa.or_(hold.c.ended_at.is_(None), hold.c.ended_at > as_of))
    )
    is_open_late = sa.and_(sa.not_(is_answered), deadline.c.due_at <= as_of, sa.not_(is_paused))
    outcome = sa.case(
        (is_met, "met"), (is_late, "late"), (is_open_late, "open_late"), else_="pending"
    )
    return _Scope(
        source=deadline.join(ticket, ticket.c.id == deadline.c.ticket_id),
        where=tuple(where),
        is_answered=is_answered,
        is_met=is_met,
        is_late=is_late,
        is_open_late=is_open_late,
        outcome=outcome,
    )


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


@dataclass(slots=True)
class _Tally:
    """Counts being added up in Python from a handful of grouped rows."""

    cases: int = 0
    met: int = 0
    late: int = 0
    open_late: int = 0
    days_on_hold: int = 0
    cases_with_hold: int = 0
    delays: Counter[int] = field(default_factory=Counter)

    def add(self, row: sa.RowMapping) -> None:
        self.cases += int(row["cases"])
        self.met += int(row["met"])
        self.late += int(row["late"])
        self.open_late += int(row["open_late"])
        self.days_on_hold += int(row["days_on_hold"])
        self.cases_with_hold += int(row["cases_with_hold"])

    def figures(self) -> Figures:
        return Figures(
            cases=self.cases,
            met=self.met,
            late=self.late,
            open_late=self.open_late,
            pending=self.cases - self.met - self.late - self.open_late,
            median_days=nearest_rank(self.delays, MEDIAN),
            p90_days=nearest_rank(self.delays, NINETIETH),
            days_on_hold=self.days_on_hold,
            cases_with_hold=self.cases_with_hold,
        )


def nearest_rank(histogram: Mapping[int, int], share: Fraction) -> int | None:
    """The smallest value with at least `share` of the counted values at or below it."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = -(-share.numerator * total // share.denominator)  # ceil(share * total), exactly
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to the total")


def _count_rows(connection: Connection, scope: _Scope) -> list[sa.RowMapping]:
    """Counts per (commitment, queue, year, month of clock start), with the reply-time range."""
    ticket, deadline, _ = _tables()
    inner = (
        sa.select(
            deadline.c.commitment.label("commitment"),
            ticket.c.mailbox.label("queue"),
            sa.extract("year", deadline.c.clock_start).label("year"),
            sa.extract("month", deadline.c.clock_start).label("month"),
            sa.case((scope.is_met, 1), else_=0).label("met"),
            sa.case((scope.is_late, 1), else_=0).label("late"),
            sa.case((scope.is_open_late, 1), else_=0).label("open_late"),
            deadline.c.days_on_hold.label("days_on_hold"),
            sa.case((scope.is_answered, deadline.c.met_at)).label("answered_at"),
        )
        .select_from(scope.source)
        .where(*scope.where)
        .subquery()
    )
    keys = (inner.c.commitment, inner.c.queue, inner.c.year, inner.c.month)
    query = sa.select(
        *keys,
        sa.func.count().label("cases"),
        sa.func.sum(inner.c.met).label("met"),
        sa.func.sum(inner.c.late).label("late"),
        sa.func.sum(inner.c.open_late).label("open_late"),
        sa.func.sum(inner.c.days_on_hold).label("days_on_hold"),
        _count_if(inner.c.days_on_hold > 0).label("cases_with_hold"),
        sa.func.min(inner.c.answered_at).label("first_answer"),
        sa.func.max(inner.c.answered_at).label("last_answer"),
    ).group_by(*keys)
    return [row._mapping for row in connection.execute(query)]


def _delay_rows(
    connection: Connection,
    scope: _Scope,
    calendar: BusinessCalendar,
    first: datetime,
    last: datetime,
) -> list[sa.RowMapping]:
    """Answered cases counted per (commitment, queue, clock start, reply date, days on hold)."""
    ticket, deadline, _ = _tables()
    reply_day = office_date_sql(deadline.c.met_at, connection.dialect.name, calendar, first, last)
    inner = (
        sa.select(
            deadline.c.commitment.label("commitment"),
            ticket.c.mailbox.label("queue"),
            deadline.c.clock_start.label("clock_start"),
            reply_day.label("reply_day"),
            deadline.c.days_on_hold.label("days_on_hold"),
        )
        .select_from(scope.source)
        .where(*scope.where, scope.is_answered)
        .subquery()
    )
    keys = tuple(inner.c)
    query = sa.select(*keys, sa.func.count().label("cases")).group_by(*keys)
    return [row._mapping for row in connection.execute(query)]


def office_date_sql(
    column: sa.ColumnElement[datetime],
    dialect: str,
    calendar: BusinessCalendar,
    first: datetime,
    last: datetime,
) -> sa.ColumnElement[Any]:
    """SQL for the office-time date of a UTC instant column whose values lie in [first, last].

    PostgreSQL converts with its own time-zone database. SQLite has none, so the zone's UTC
    offsets over [first, last] become a ``CASE`` on the instant and ``date(column, '±N
    seconds')`` applies them; the result is then an ISO date string.
    """
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone(calendar.zone.key, column), sa.Date)
    if dialect != "sqlite":
        raise NotImplementedError(f"the report supports SQLite and PostgreSQL, not {dialect}")
    segments = offset_segments(calendar, first, last)
    modifiers = [f"{seconds:+d} seconds" for _, seconds in segments]
    if len(segments) == 1:
        return sa.func.date(column, modifiers[0])
    shift = sa.case(
        *[(column < starts, modifiers[index]) for index, (starts, _) in enumerate(segments[1:])],
        else_=modifiers[-1],
    )
    return sa.func.date(column, shift)


def offset_segments(
    calendar: BusinessCalendar, first: datetime, last: datetime
) -> list[tuple[datetime, int]]:
    """The office zone's UTC offset (seconds) from `first` to `last`: (from instant, offset)."""

    def offset(instant: datetime) -> int:
        value = instant.astimezone(calendar.zone).utcoffset()
        assert value is not None
        return int(value.total_seconds())

    segments = [(first, offset(first))]
    day = first
    while day < last:
        following = min(day + timedelta(days=1), last)
        if offset(following) != offset(day):
            low, high = day, following
            while high - low > timedelta(microseconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            segments.append((high, offset(high)))
        day = following
    return segments


def _case_rows(connection: Connection, scope: _Scope, calendar: BusinessCalendar) -> list[Case]:
    ticket, deadline, _ = _tables()
    query = (
        sa.select(
            ticket.c.ref,
            deadline.c.commitment,
            ticket.c.mailbox,
            deadline.c.clock_start,
            deadline.c.due_date,
            sa.case((scope.is_answered, deadline.c.met_at)).label("met_at"),
            scope.outcome.label("outcome"),
            deadline.c.days_on_hold,
            ticket.c.status,
        )
        .select_from(scope.source)
        .where(*scope.where)
        .order_by(deadline.c.commitment, ticket.c.mailbox, deadline.c.clock_start, ticket.c.ref)
    )
    days = _BusinessDays(calendar)
    cases = []
    for row in connection.execute(query):
        met_at: datetime | None = row.met_at
        delay = None
        if met_at is not None:
            delay = days.delay(row.clock_start, calendar.office_date(met_at), row.days_on_hold)
        cases.append(
            Case(
                ref=row.ref,
                commitment=row.commitment,
                queue=row.mailbox,
                clock_start=row.clock_start,
                due_date=row.due_date,
                met_at=met_at,
                outcome=row.outcome,
                delay_days=delay,
                days_on_hold=row.days_on_hold,
                status=row.status,
            )
        )
    return cases


class _BusinessDays:
    """Business-day delays, remembered per (start, end) pair: few pairs, many cases."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self._calendar = calendar
        self._known: dict[tuple[date, date], int] = {}

    def delay(self, start: date, reply_day: date, days_on_hold: int) -> int:
        key = (start, reply_day)
        if key not in self._known:
            self._known[key] = self._calendar.business_days_between(start, reply_day)
        return max(0, self._known[key] - days_on_hold)


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _queue_exists(connection: Connection, settings: Settings, queue: str) -> bool:
    if any(mailbox.name == queue for mailbox in settings.mailboxes):
        return True
    ticket = _tables()[0]
    found = connection.execute(sa.select(ticket.c.id).where(ticket.c.mailbox == queue).limit(1))
    return found.first() is not None


def _months(since: date, until: date) -> tuple[date, ...]:
    months = []
    month = since.replace(day=1)
    while month <= until:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return tuple(months)


def build_report(
    engine: Engine,
    settings: Settings,
    calendar: BusinessCalendar,
    request: ReportRequest,
    *,
    as_of: datetime,
) -> Report:
    """The report of `request` as known at `as_of` (aware; decides which open cases are late).

    Raises NotFound for a queue that is neither configured nor found on any ticket.
    """
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ValueError(f"as_of must be timezone-aware, got {as_of.isoformat()}")
    scope = _scope(request, as_of)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # One snapshot for every query, so the figures and the listing agree.
            connection.execution_options(isolation_level="REPEATABLE READ")
        if request.queue is not None and not _queue_exists(connection, settings, request.queue):
            raise NotFound(
                f"no queue {request.queue!r} (configured: "
                f"{', '.join(m.name for m in settings.mailboxes)})"
            )
        counts = _count_rows(connection, scope)
        answered = [(r["first_answer"], r["last_answer"]) for r in counts if r["first_answer"]]
        delays: list[sa.RowMapping] = []
        if answered:
            first = min(pair[0] for pair in answered)
            last = max(pair[1] for pair in answered)
            delays = _delay_rows(connection, scope, calendar, first, last)
        cases = _case_rows(connection, scope, calendar) if request.details else []
    return Report(
        request=request,
        as_of=as_of,
        organisation=settings.organisation.name,
        timezone=calendar.zone.key,
        months=_months(request.since, request.until),
        commitments=_assemble(settings, calendar, request, counts, delays),
        cases=tuple(cases),
    )


def _assemble(
    settings: Settings,
    calendar: BusinessCalendar,
    request: ReportRequest,
    counts: Iterable[sa.RowMapping],
    delays: Iterable[sa.RowMapping],
) -> tuple[CommitmentReport, ...]:
    totals: dict[str, _Tally] = defaultdict(_Tally)
    per_queue: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    months: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in counts:
        commitment, queue = row["commitment"], row["queue"]
        totals[commitment].add(row)
        per_queue[commitment, queue].add(row)
        month = months[commitment, date(int(row["year"]), int(row["month"]), 1)]
        decided = int(row["met"]) + int(row["late"]) + int(row["open_late"])
        month[0] += int(row["met"])
        month[1] += decided
        month[2] += int(row["cases"]) - decided
    days = _BusinessDays(calendar)
    for row in delays:
        delay = days.delay(
            _as_date(row["clock_start"]), _as_date(row["reply_day"]), int(row["days_on_hold"])
        )
        count = int(row["cases"])
        totals[row["commitment"]].delays[delay] += count
        per_queue[row["commitment"], row["queue"]].delays[delay] += count

    # Every configured commitment of the report's scope appears, even without a case: a
    # published table lists them all. Commitments found only in the data come after.
    if request.queue is None:
        expected = [c.id for c in settings.commitments]
        queues_of = {
            c.id: [m.name for m in settings.mailboxes if c.id in m.commitments]
            for c in settings.commitments
        }
    else:
        configured = [m for m in settings.mailboxes if m.name == request.queue]
        expected = list(configured[0].commitments) if configured else []
        queues_of = {c: [request.queue] for c in expected}
    ordered = expected + sorted(set(totals) - set(expected))
    known = {c.id: c for c in settings.commitments}
    reports = []
    for commitment_id in ordered:
        commitment = known.get(commitment_id)
        target = commitment.target if commitment else None
        queues = sorted(
            {*queues_of.get(commitment_id, []), *(q for c, q in per_queue if c == commitment_id)}
        )
        total = totals[commitment_id].figures()
        lines = []
        for queue in queues:
            figures = per_queue[commitment_id, queue].figures()
            lines.append(Line(queue=queue, figures=figures, target_met=figures.meets(target)))
        trend = tuple(
            MonthFigures(month=month, met=values[0], decided=values[1], pending=values[2])
            for month in _months(request.since, request.until)
            for values in [months.get((commitment_id, month), [0, 0, 0])]
        )
        reports.append(
            CommitmentReport(
                commitment=commitment_id,
                label=commitment.label if commitment else commitment_id,
                business_days=commitment.business_days if commitment else None,
                target=target,
                total=Line(queue=None, figures=total, target_met=total.meets(target)),
                queues=tuple(lines),
                trend=trend,
            )
        )
    return tuple(reports)


# --- rendering ---------------------------------------------------------------------------------


def render_report(report: Report, fmt: str, templates_dir: Path) -> str:
    """The report as `fmt` (table | json | csv | html); the case listing when it was requested.

    With details, ``csv`` is the listing of cases (one row per case; the summary is the
    ``csv`` without details), ``json`` gains a ``cases`` list, ``table`` and ``html`` end with
    the listing. ``templates_dir`` holds ``report.html``.
    """
    if fmt == "table":
        return _render_table(report)
    if fmt == "json":
        return json.dumps(report_json(report), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return _render_csv(report)
    if fmt == "html":
        return _render_html(report, templates_dir)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _figures_json(figures: Figures, target_met: bool | None) -> dict[str, Any]:
    return {
        "cases": figures.cases,
        "met": figures.met,
        "late": figures.late,
        "open_late": figures.open_late,
        "pending": figures.pending,
        "decided": figures.decided,
        "rate": round(figures.rate, 4) if figures.rate is not None else None,
        "target_met": target_met,
        "median_days": figures.median_days,
        "p90_days": figures.p90_days,
        "days_on_hold": figures.days_on_hold,
        "cases_with_hold": figures.cases_with_hold,
    }


def _case_json(case: Case) -> dict[str, Any]:
    return {
        "ref": case.ref,
        "commitment": case.commitment,
        "queue": case.queue,
        "clock_start": case.clock_start.isoformat(),
        "due_date": case.due_date.isoformat(),
        "met_at": case.met_at.isoformat() if case.met_at else None,
        "outcome": case.outcome,
        "delay_days": case.delay_days,
        "days_on_hold": case.days_on_hold,
        "status": case.status,
    }


def report_json(report: Report) -> dict[str, Any]:
    """The JSON shape of the report (dates ISO, rates as fractions of 1 rounded to 4 places)."""
    data: dict[str, Any] = {
        "organisation": report.organisation,
        "since": report.request.since.isoformat(),
        "until": report.request.until.isoformat(),
        "queue": report.request.queue,
        "as_of": report.as_of.isoformat(),
        "timezone": report.timezone,
        "commitments": [
            {
                "id": item.commitment,
                "label": item.label,
                "business_days": item.business_days,
                "target": item.target,
                "all_queues": _figures_json(item.total.figures, item.total.target_met),
                "queues": [
                    {"queue": line.queue, **_figures_json(line.figures, line.target_met)}
                    for line in item.queues
                ],
                "trend": [
                    {
                        "month": point.month.strftime("%Y-%m"),
                        "met": point.met,
                        "decided": point.decided,
                        "pending": point.pending,
                        "rate": round(point.rate, 4) if point.rate is not None else None,
                    }
                    for point in item.trend
                ],
            }
            for item in report.commitments
        ],
    }
    if report.request.details:
        data["cases"] = [_case_json(case) for case in report.cases]
    return data


SUMMARY_COLUMNS = (
    "commitment",
    "queue",
    "business_days",
    "target",
    "cases",
    "met",
    "late",
    "open_late",
    "pending",
    "decided",
    "rate",
    "target_met",
    "median_days",
    "p90_days",
    "days_on_hold",
    "cases_with_hold",
)
CASE_COLUMNS = (
    "ref",
    "commitment",
    "queue",
    "clock_start",
    "due_date",
    "met_at",
    "outcome",
    "delay_days",
    "days_on_hold",
    "status",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _summary_rows(report: Report) -> list[dict[str, Any]]:
    rows = []
    for item in report.commitments:
        for line in (item.total, *item.queues):
            rows.append(
                {
                    "commitment": item.commitment,
                    "queue": line.queue or ALL_QUEUES,
                    "business_days": item.business_days,
                    "target": item.target,
                    **_figures_json(line.figures, line.target_met),
                }
            )
    return rows


def _render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if report.request.details:
        writer.writerow(CASE_COLUMNS)
        for case in report.cases:
            values = _case_json(case)
            writer.writerow([_cell(values[column]) for column in CASE_COLUMNS])
    else:
        writer.writerow(SUMMARY_COLUMNS)
        for row in _summary_rows(report):
            writer.writerow([_cell(row[column]) for column in SUMMARY_COLUMNS])
    return out.getvalue()


def _percent(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def _columns(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Iterable[int]
) -> list[str]:
    """Aligned text columns: those at the `numeric` indexes to the right, the rest to the left."""
    right = frozenset(numeric)
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _render_table(report: Report) -> str:
    request = report.request
    as_of = report.office_time(report.as_of)
    lines = [
        f"Service standards: clock starts {request.since} to {request.until}, "
        f"queue {request.queue or 'all'}, as of {as_of:%Y-%m-%d %H:%M} ({report.timezone})",
        "rate = met / (met + late + open_late); pending cases are not in the rate; "
        "delays in business days",
        "",
    ]
    header = (
        "commitment",
        "queue",
        "cases",
        "met",
        "late",
        "open late",
        "pending",
        "rate",
        "target",
        "target met",
        "median",
        "p90",
        "days on hold",
    )
    rows = []
    for item in report.commitments:
        for line in (item.total, *item.queues):
            f = line.figures
            rows.append(
                (
                    item.commitment if line.queue is None else "",
                    line.queue or ALL_QUEUES,
                    str(f.cases),
                    str(f.met),
                    str(f.late),
                    str(f.open_late),
                    str(f.pending),
                    _percent(f.rate),
                    _percent(item.target),
                    _cell(line.target_met) or "-",
                    _cell(f.median_days) or "-",
                    _cell(f.p90_days) or "-",
                    str(f.days_on_hold),
                )
            )
    lines.extend(_columns(header, rows, numeric=range(2, len(header))))
    if request.details:
        lines += ["", f"cases ({len(report.cases)})", ""]
        case_rows = [
            (
                c.ref,
                c.commitment,
                c.queue,
                c.clock_start.isoformat(),
                c.due_date.isoformat(),
                report.office_time(c.met_at).strftime("%Y-%m-%d %H:%M") if c.met_at else "-",
                c.outcome,
                _cell(c.delay_days) or "-",
                str(c.days_on_hold),
                c.status,
            )
            for c in report.cases
        ]
        case_header = (
            "ref",
            "commitment",
            "queue",
            "clock start",
            "due date",
            "met at",
            "outcome",
            "delay",
            "days on hold",
            "status",
        )
        lines.extend(_columns(case_header, case_rows, numeric=(7, 8)) if case_rows else ["(none)"])
    return "\n".join(lines) + "\n"


# --- charts: pure geometry, drawn by the template ----------------------------------------------

PALETTE = ("#1f5fa8", "#c2571a", "#2e7d32", "#7b3fa0", "#b8860b", "#00838f", "#ad1457")


@dataclass(frozen=True, slots=True)
class Bar:
    """One commitment's row in the bar chart: the rate's bar and the target's mark."""

    commitment: str
    label: str
    y: float  # top of the bar
    length: float  # 0 when no case is decided
    target_x: float | None
    rate: float | None
    target: float | None
    target_met: bool | None


@dataclass(frozen=True, slots=True)
class BarChart:
    width: int
    height: int
    label_right: int  # labels end here (text-anchor: end)
    plot_left: int
    plot_width: int
    plot_top: int
    plot_bottom: int
    bar_height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, int], ...]  # (x, percent)


def bar_chart(report: Report) -> BarChart:
    """Rate against target per commitment (every queue of the report), as horizontal bars."""
    width, label_right, plot_left, plot_width = 800, 390, 400, 300
    top, row, bar_height = 24, 30, 18
    bars = []
    for index, item in enumerate(report.commitments):
        figures = item.total.figures
        bars.append(
            Bar(
                commitment=item.commitment,
                label=item.label,
                y=top + index * row + (row - bar_height) / 2,
                length=round((figures.rate or 0.0) * plot_width, 1),
                target_x=(
                    round(plot_left + item.target * plot_width, 1)
                    if item.target is not None
                    else None
                ),
                rate=figures.rate,
                target=item.target,
                target_met=item.total.target_met,
            )
        )
    bottom = top + row * len(bars)
    return BarChart(
        width=width,
        height=bottom + 28,
        label_right=label_right,
        plot_left=plot_left,
        plot_width=plot_width,
        plot_top=top,
        plot_bottom=bottom,
        bar_height=bar_height,
        bars=tuple(bars),
        ticks=tuple((plot_left + plot_width * p / 100, p) for p in range(0, 101, 25)),
    )


@dataclass(frozen=True, slots=True)
class TrendPoint:
    x: float
    y: float
    month: date
    rate: float
    met: int
    decided: int


@dataclass(frozen=True, slots=True)
class TrendSeries:
    """One commitment's monthly rate; `paths` are the runs of months that have a decided case."""

    commitment: str
    label: str
    color: str
    target_y: float | None
    points: tuple[TrendPoint, ...]
    paths: tuple[str, ...]  # SVG polyline points, "x,y x,y ..."
    legend_y: float


@dataclass(frozen=True, slots=True)
class TrendChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    x_ticks: tuple[tuple[float, date, bool], ...]  # (x, month, show its label)
    y_ticks: tuple[tuple[float, int], ...]  # (y, percent)
    series: tuple[TrendSeries, ...]


def trend_chart(report: Report) -> TrendChart:
    """The monthly rate of each commitment that has a decided case, with its target, as lines."""
    width, left, right, top, bottom = 800, 56, 780, 16, 236
    months = report.months
    step = (right - left) / max(len(months) - 1, 1)
    xs = {
        month: round(left + step * index if len(months) > 1 else (left + right) / 2, 1)
        for index, month in enumerate(months)
    }

    def y_of(rate: float) -> float:
        return round(bottom - rate * (bottom - top), 1)

    every = -(-len(months) // 12)  # at most 12 month labels
    legend_top = bottom + 48
    series = []
    drawn = [item for item in report.commitments if any(p.decided for p in item.trend)]
    for index, item in enumerate(drawn):
        points: list[TrendPoint] = []
        paths: list[str] = []
        run: list[str] = []
        for point in item.trend:
            if point.rate is None:
                if run:
                    paths.append(" ".join(run))
                run = []
                continue
            plotted = TrendPoint(
                x=xs[point.month],
                y=y_of(point.rate),
                month=point.month,
                rate=point.rate,
                met=point.met,
                decided=point.decided,
            )
            points.append(plotted)
            run.append(f"{plotted.x},{plotted.y}")
        if run:
            paths.append(" ".join(run))
        series.append(
            TrendSeries(
                commitment=item.commitment,
                label=item.label,
                color=PALETTE[index % len(PALETTE)],
                target_y=y_of(item.target) if item.target is not None else None,
                points=tuple(points),
                paths=tuple(paths),
                legend_y=legend_top + 20 * index,
            )
        )
    return TrendChart(
        width=width,
        height=legend_top + 20 * len(series) + 8,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        x_ticks=tuple((xs[m], m, i % every == 0) for i, m in enumerate(months)),
        y_ticks=tuple((y_of(p / 100), p) for p in range(0, 101, 20)),
        series=tuple(series),
    )


def _render_html(report: Report, templates_dir: Path) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(TEMPLATE).render(
        report=report,
        as_of_local=report.office_time(report.as_of),
        bars=bar_chart(report),
        trend=trend_chart(report),
        cases=[
            (case, report.office_time(case.met_at) if case.met_at else None)
            for case in report.cases
        ],
    )
