"""The service-standards report: how many cases met each commitment, per queue (reads).

`build_report` asks the database for aggregates (`mailbot.db.report_rows`) and assembles them into
the frozen values of `mailbot.reporting.values`; `render_report`
(`mailbot.reporting.render_report`) writes
those values as a table, JSON, CSV or a self-contained French HTML page. Nothing here writes
to the database or reads the clock: the instant the report is made "as of" is a parameter.
The assembly (sums, delays in business days, percentiles, the target verdict) is pure.

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
* **Outcomes** (``met``, ``late``, ``open_late``, ``pending``) are decided as of ``as_of`` by
  the one rule of `mailbot.standards.compliance.deadline_outcome` (the digest's, the reminders' and
  the
  metrics' too), counted in SQL by its translation `mailbot.db.outcome`; the rule, with the
  due instant and holds placed after the deadline, is written in docs/report-rules.md.
* **The rate** is ``met / (met + late + open_late)``. Pending cases are reported but are not in
  the rate: their outcome is not known yet. The target is met when the rate is at least the
  commitment's target, compared exactly (``7/8`` against ``0.85`` with fractions, no rounding;
  `mailbot.standards.compliance`, the rule the supervisors' digest uses too).
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
* **Incomplete requests.** The commitments counted from the complete request start again from
  the receipt day of what completed it: that day is their ``clock_start`` (period, deadline,
  delay). While the request is still incomplete (an open hold of kind ``incomplete``) those
  cases are pending; it does not pause the others. ``--details`` shows the first receipt and
  each declaration and completion.
* **Reclassified complaints** count under the commitments their ticket ended with (the
  deadline rows present), in the queue the message arrived in, from the original clock start
  (a category change keeps the receipt day).
* **Automatic messages** (bounces, auto-replies, robots) never open tickets, so they have no
  deadline rows and are absent by construction.
* **Merged requests** (closed with the reason ``merged``) are left out of every figure
  (`EXCLUDED_CLOSING_REASONS`): the request counts once, on the ticket kept, whose clock runs
  from the earlier receipt of the two. **Referred requests** (reason ``referred``) count: the
  referral is the response, met at its instant.
* **Withdrawn requests**: the ticket model has no such status yet. Add the status to
  `EXCLUDED_STATUSES` and every figure leaves those cases out.
* **Reopened tickets**: ``met_at`` is the first reply; a follow-up does not start a new case.

How it stays fast: one aggregate query grouped by commitment, queue and month of the clock
start (counts with ``CASE``); one grouped by (commitment, queue, clock start, reply date, days
on hold) for the delays, whose few thousand distinct date pairs are turned into business days
here with the calendar; the case listing only when asked for. No ticket object is loaded.
The queries share one transaction, so every figure describes the same snapshot.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from sqlalchemy.engine import Engine

from mailbot.db import report_rows
from mailbot.errors import NotFound
from mailbot.reporting.render_report import FORMATS, render_report
from mailbot.reporting.values import (
    Case,
    CommitmentReport,
    Figures,
    Line,
    MonthFigures,
    Report,
    ReportRequest,
)
from mailbot.settings import Settings
from mailbot.standards.business_calendar import BusinessCalendar
from mailbot.standards.compliance import EXCLUDED_CLOSING_REASONS, EXCLUDED_STATUSES

# What the command line and other callers use; the values are defined in report_values and
# written out by report_render.
__all__ = ["FORMATS", "Figures", "Report", "ReportRequest", "build_report", "render_report"]


def rules_text() -> str:
    """docs/report-rules.md, the counting rules in full: the repository's copy in a checkout,
    the copy shipped inside the package (mailbot/docs/) otherwise. `mailbot report-rules`
    prints it; the HTML report's footer points to that command."""
    import mailbot

    package = Path(mailbot.__file__).resolve().parent
    for path in (package.parent / "docs" / RULES_FILE, package / "docs" / RULES_FILE):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise NotFound(f"{RULES_FILE} is not installed with mailbot")


RULES_FILE = "report-rules.md"
MEDIAN = Fraction(1, 2)
NINETIETH = Fraction(9, 10)


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
    cases = report_rows.CaseFilter(
        since=request.since,
        until=request.until,
        queue=request.queue,
        as_of=as_of,
        excluded_statuses=EXCLUDED_STATUSES,
        restarting=settings.restarting_commitments,
        excluded_reasons=EXCLUDED_CLOSING_REASONS,
    )
    configured = [mailbox.name for mailbox in settings.mailboxes]
    with report_rows.snapshot(engine) as connection:
        queue = request.queue
        # A queue no longer configured is known by its tickets; any other name is a typo.
        known = (
            queue is None or queue in configured or report_rows.queue_has_tickets(connection, queue)
        )
        if not known:
            raise NotFound(f"no queue {queue!r} (configured: {', '.join(configured)})")
        counts = report_rows.count_rows(connection, cases)
        # The replies' range bounds the time-zone arithmetic of the delay query.
        firsts = [row.first_answer for row in counts if row.first_answer is not None]
        lasts = [row.last_answer for row in counts if row.last_answer is not None]
        delays: list[report_rows.DelayRow] = []
        if firsts and lasts:
            delays = report_rows.delay_rows(connection, cases, calendar, min(firsts), max(lasts))
        listing = []
        if request.details:
            spells: dict[str, list[tuple[datetime, datetime | None]]] = defaultdict(list)
            for spell in report_rows.incomplete_rows(connection, cases):
                completed = spell.completed_at
                spells[spell.ref].append(
                    (
                        spell.declared_at.astimezone(calendar.zone),
                        completed.astimezone(calendar.zone) if completed else None,
                    )
                )
            listing = _cases(report_rows.case_rows(connection, cases), calendar, spells)
    return Report(
        request=request,
        as_of=as_of,
        organisation=settings.organisation.name,
        timezone=calendar.zone.key,
        months=_months(request.since, request.until),
        commitments=_assemble(settings, calendar, request, counts, delays),
        cases=tuple(listing),
    )


# --- the assembly (pure) -----------------------------------------------------------------------


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

    def add(self, row: report_rows.CountRow) -> None:
        self.cases += row.cases
        self.met += row.met
        self.late += row.late
        self.open_late += row.open_late
        self.days_on_hold += row.days_on_hold
        self.cases_with_hold += row.cases_with_hold

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


def _cases(
    rows: Iterable[report_rows.CaseRow],
    calendar: BusinessCalendar,
    spells: Mapping[str, list[tuple[datetime, datetime | None]]],
) -> list[Case]:
    """The listing: each case with its delay in business days when it was answered, its
    first receipt and each time its request was declared incomplete and completed."""
    days = _BusinessDays(calendar)
    cases = []
    for row in rows:
        delay = None
        if row.met_at is not None:
            delay = days.delay(row.clock_start, calendar.office_date(row.met_at), row.days_on_hold)
        cases.append(
            Case(
                ref=row.ref,
                commitment=row.commitment,
                queue=row.queue,
                clock_start=row.clock_start,
                due_date=row.due_date,
                met_at=row.met_at,
                outcome=row.outcome,
                delay_days=delay,
                days_on_hold=row.days_on_hold,
                status=row.status,
                first_receipt=row.first_receipt,
                incomplete=tuple(spells.get(row.ref, ())),
            )
        )
    return cases


def _months(since: date, until: date) -> tuple[date, ...]:
    months = []
    month = since.replace(day=1)
    while month <= until:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return tuple(months)


def _assemble(
    settings: Settings,
    calendar: BusinessCalendar,
    request: ReportRequest,
    counts: Iterable[report_rows.CountRow],
    delays: Iterable[report_rows.DelayRow],
) -> tuple[CommitmentReport, ...]:
    """The report's lines from the grouped rows (pure): one per commitment, with its queues.

    1. Add up the counts (`report_rows.CountRow`, one per commitment, queue and month of the clock
       start, outcomes already decided by the one rule) into a tally per commitment, per
       commitment and queue, and per commitment and month (the trend).
    2. Turn each delay row's (clock start, reply date) into business days once, less the days
       on hold, and add its cases to the histograms behind the median and 90th percentile.
    3. List the commitments: every configured one in the report's scope (all of them, or the
       queue's), even without a case, then those found only in the data; each with its total
       line, a line per queue, the target verdict (`compliance.meets`, exact) and the months
       of the period.
    """
    totals: dict[str, _Tally] = defaultdict(_Tally)
    per_queue: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    months: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in counts:
        totals[row.commitment].add(row)
        per_queue[row.commitment, row.queue].add(row)
        month = months[row.commitment, row.month]
        decided = row.met + row.late + row.open_late
        month[0] += row.met
        month[1] += decided
        month[2] += row.cases - decided
    days = _BusinessDays(calendar)
    for delay_row in delays:
        delay = days.delay(delay_row.clock_start, delay_row.reply_day, delay_row.days_on_hold)
        totals[delay_row.commitment].delays[delay] += delay_row.cases
        per_queue[delay_row.commitment, delay_row.queue].delays[delay] += delay_row.cases

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
