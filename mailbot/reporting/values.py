"""The values of the service-standards report: what it asks, what it found (pure, frozen).

`mailbot.reporting.report` builds them from the database, `mailbot.reporting.render_report` writes
them out;
the counting rules are in the docstring of `mailbot.reporting.report` and in docs/report-rules.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from mailbot.standards import compliance


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
class Figures(compliance.Outcomes):
    """The counts behind one line of the report (see `mailbot.reporting.report` for each rule)."""

    cases: int
    median_days: int | None
    p90_days: int | None
    days_on_hold: int
    cases_with_hold: int


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
    # The request's first receipt day, and each time it was declared incomplete and completed
    # (office instants; completed None while it waits): `clock_start` is counted from the last
    # completion for the commitments counted from the complete request.
    first_receipt: date | None = None
    incomplete: tuple[tuple[datetime, datetime | None], ...] = ()


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
