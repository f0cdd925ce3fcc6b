"""Business days of the Quebec public service: holidays, receipt day, deadlines, holds (pure).

Nothing here reads the clock or does I/O: every instant is a parameter, aware, and only this
module converts it to office time. The rules are those of ``SERVICE-STANDARDS.md``:

* **Business day**: Monday to Friday, not a public-service holiday (the 13 days of
  `QuebecPublicServiceHolidays`, after the configured ``add_holidays``/``remove_holidays``),
  not a configured closure day.
* **Receipt day**: the office-time date of the arrival instant if it is a business day and the
  local time is before the cutoff (16:30); otherwise the next business day.
* **Deadline**: day 0 is the receipt day; the due date is the N-th business day after it; the
  deadline instant is the end of that day in office time (a reply sent that day is on time).
* **Holds** (the clock paused while waiting on the citizen): a hold pauses the business days
  strictly after the office date it started, up to and including the receipt day of the
  instant it ended (the day the complete request is "received" again). See `hold_span`.

Counting conventions, used everywhere in this module:

* ``add_business_days(day, n)`` is the smallest date ``d >= day`` with exactly ``n`` business
  days in ``(day, d]``: the n-th business day after ``day`` for ``n >= 1``, and ``day`` itself
  for ``n == 0`` (even if ``day`` is not a business day; clocks always start on one).
* ``business_days_between(start, end)`` counts the business days ``d`` with
  ``start < d <= end``, so ``business_days_between(day, add_business_days(day, n)) == n``.

The holiday table is computed once, when the calendar is built, for a fixed range of years
(2003, the first Journée nationale des patriotes, to 2100); asking about a date outside it
raises ``ValueError`` rather than answering without holidays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from holidays.calendars.gregorian import DEC, JAN, JUL, JUN
from holidays.groups.christian import ChristianHolidays
from holidays.groups.international import InternationalHolidays
from holidays.observed_holiday_base import (
    MON_TO_NEXT_TUE,
    SAT_SUN_TO_NEXT_MON,
    SAT_SUN_TO_NEXT_MON_TUE,
    SAT_SUN_TO_PREV_FRI,
    SAT_TO_PREV_FRI,
    SUN_TO_NEXT_MON,
    ObservedHolidayBase,
    ObservedRule,
)

from mailbot.errors import ConfigError
from mailbot.settings import CalendarSettings, CommitmentSettings

ONE_DAY = timedelta(days=1)
CLOSURE_NAME = "Fermeture"
ADDED_HOLIDAY_NAME = "Jour férié (liste officielle)"
FIRST_YEAR = 2003
LAST_YEAR = 2100
DEFAULT_YEARS = range(FIRST_YEAR, LAST_YEAR + 1)

# Weekend shifts of the fixed-date holidays, one rule per column of the standards page's table.
# A weekend day goes to the following Monday.
TO_NEXT_MONDAY = SAT_SUN_TO_NEXT_MON
# The second day of a pair (Jan 2, Dec 26): Saturday -> Monday; Sunday -> Tuesday and Monday ->
# Tuesday, because in both cases the first day of the pair (a Saturday or a Sunday) took Monday.
SECOND_DAY_OF_PAIR = SAT_SUN_TO_NEXT_MON_TUE + MON_TO_NEXT_TUE
# Saturday -> Friday before, Sunday -> Monday after (June 24, July 1).
TO_NEAREST_WEEKDAY = SAT_TO_PREV_FRI + SUN_TO_NEXT_MON
# Both weekend days -> the Friday before (Dec 24, Dec 31).
TO_FRIDAY_BEFORE = SAT_SUN_TO_PREV_FRI

FIXED_HOLIDAYS: tuple[tuple[int, int, str, ObservedRule], ...] = (
    (JAN, 1, "Jour de l'An", TO_NEXT_MONDAY),
    (JAN, 2, "Lendemain du jour de l'An", SECOND_DAY_OF_PAIR),
    (JUN, 24, "Fête nationale du Québec", TO_NEAREST_WEEKDAY),
    (JUL, 1, "Fête du Canada", TO_NEAREST_WEEKDAY),
    (DEC, 24, "Veille de Noël", TO_FRIDAY_BEFORE),
    (DEC, 25, "Noël", TO_NEXT_MONDAY),
    (DEC, 26, "Lendemain de Noël", SECOND_DAY_OF_PAIR),
    (DEC, 31, "Veille du jour de l'An", TO_FRIDAY_BEFORE),
)


class QuebecPublicServiceHolidays(ObservedHolidayBase, ChristianHolidays, InternationalHolidays):
    """The 13 holidays of the Quebec public service, with the official weekend shifts.

    Built on the ``holidays`` framework, so it behaves like any country class
    (``QuebecPublicServiceHolidays(years=2026)``, ``date in calendar``, ``get_named``...).
    With ``observed=False`` the fixed-date holidays stay on their nominal dates.

    Movable days: Good Friday, Easter Monday, Journée nationale des patriotes (the Monday
    before May 25), Labour Day (1st Monday of September), Thanksgiving (2nd Monday of October).
    Fixed days and their shifts are `FIXED_HOLIDAYS`; a shifted day keeps its own name.
    """

    start_year = FIRST_YEAR
    end_year = LAST_YEAR

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        ChristianHolidays.__init__(self)
        InternationalHolidays.__init__(self)
        super().__init__(*args, **kwargs)

    def _populate_public_holidays(self) -> None:
        for month, day, name, rule in FIXED_HOLIDAYS:
            self._add_shifted(date(self._year, month, day), name, rule)
        self._add_good_friday("Vendredi saint")
        self._add_easter_monday("Lundi de Pâques")
        # The Monday on or before May 24, i.e. the last Monday preceding May 25.
        self._add_holiday_1st_mon_before_may_24("Journée nationale des patriotes")
        self._add_holiday_1st_mon_of_sep("Fête du Travail")
        self._add_holiday_2nd_mon_of_oct("Action de grâce")

    def _add_shifted(self, nominal: date, name: str, rule: ObservedRule) -> None:
        # The shifted date is computed from the nominal weekday alone (never from what is
        # already in the table), so Jan 1 and Jan 2 cannot swallow each other's names.
        observed = self._get_observed_date(nominal, rule) if self.observed else nominal
        self._add_holiday(name, observed)


def official_holidays(years: Iterable[int]) -> dict[date, str]:
    """The rule-based public-service holidays of the given years, before any configuration."""
    table = QuebecPublicServiceHolidays(years=list(years))
    return dict(table.items())


# --- values -----------------------------------------------------------------------------------


def _require_aware(instant: datetime, what: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {instant.isoformat()}")


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a commitment falls due.

    ``receipt_day`` is day 0 of the clock (the receipt day, or the business day a staff date
    rolls to). ``due_at`` is the aware UTC instant at which the due date ends in office time.
    ``days_on_hold`` counts the business days the clock was paused before the due date (they
    moved it later by exactly that many business days). ``on_hold`` means a hold is still open
    at ``as_of``: ``due_date`` then assumes the information arrived at ``as_of`` and moves
    later each business day the hold stays open (unless the hold began after the due date).
    """

    receipt_day: date
    due_date: date
    due_at: datetime
    days_on_hold: int = 0
    on_hold: bool = False

    def is_met(self, at: datetime) -> bool:
        """True if a reply sent at `at` meets the standard: any time on the due date does."""
        _require_aware(at, "reply instant")
        return at < self.due_at


@dataclass(frozen=True, slots=True)
class Hold:
    """A pause of the clock while waiting on the citizen; ``end`` is None while it lasts.

    ``start`` is when the ministry asked for the missing information, ``end`` when it arrived
    (the server's arrival time, as for any receipt). Both aware.
    """

    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self.start, "hold start")
        if self.end is not None:
            _require_aware(self.end, "hold end")
            if self.end < self.start:
                raise ValueError(f"hold ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True, slots=True)
class HoldSpan:
    """The business days one hold paused: those after ``paused_after``, up to ``resumes_on``.

    ``paused_after`` is the office date of the hold's start: that day still counts (the clock
    ran on it). ``resumes_on`` is the receipt day of the instant the information arrived (or of
    ``as_of`` for an open hold): day 0 of the restarted clock, so it does not count either.
    ``business_days`` is how many business days lie in ``(paused_after, resumes_on]``.
    """

    paused_after: date
    resumes_on: date
    business_days: int
    is_open: bool

    def pauses(self, day: date) -> bool:
        return self.paused_after < day <= self.resumes_on


# --- the calendar -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Business days in office time: the public-service holidays after configuration.

    Build it with `build_calendar`. ``days_off`` lists every non-weekend day off of the covered
    ``years`` (holidays after overrides, plus closure days named ``"Fermeture"``), sorted.
    """

    zone: ZoneInfo
    receipt_cutoff: time
    days_off: tuple[tuple[date, str], ...]
    years: range = DEFAULT_YEARS
    _closed: frozenset[date] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_closed", frozenset(day for day, _ in self.days_off))

    # Days.

    def is_business_day(self, day: date) -> bool:
        """Monday to Friday, not a holiday, not a closure day."""
        self._check_covered(day)
        return day.weekday() < 5 and day not in self._closed

    def next_business_day(self, day: date) -> date:
        """The first business day strictly after `day`."""
        candidate = day + ONE_DAY
        while not self.is_business_day(candidate):
            candidate += ONE_DAY
        return candidate

    def business_day_on_or_after(self, day: date) -> date:
        """`day` itself if it is a business day, else the next one."""
        return day if self.is_business_day(day) else self.next_business_day(day)

    def add_business_days(self, day: date, n: int) -> date:
        """The n-th business day after `day`; `day` itself when n == 0 (see module docstring)."""
        if n < 0:
            raise ValueError(f"business days must be >= 0, got {n}")
        result = day
        for _ in range(n):
            result = self.next_business_day(result)
        return result

    def business_days_between(self, start: date, end: date) -> int:
        """How many business days d satisfy start < d <= end (0 if end <= start)."""
        count = 0
        day = start + ONE_DAY
        while day <= end:
            count += self.is_business_day(day)
            day += ONE_DAY
        return count

    def holidays_in(self, year: int) -> list[tuple[date, str]]:
        """The year's days off after configuration (closure days included), sorted by date."""
        if year not in self.years:
            raise ValueError(f"year {year} is outside the calendar ({self._describe_years()})")
        return [(day, name) for day, name in self.days_off if day.year == year]

    # Instants.

    def office_date(self, instant: datetime) -> date:
        """The date of an aware instant in office time."""
        _require_aware(instant, "instant")
        return instant.astimezone(self.zone).date()

    def receipt_day(self, received_at: datetime) -> date:
        """Day 0 of a request that arrived at `received_at` (an aware instant)."""
        _require_aware(received_at, "arrival time")
        local = received_at.astimezone(self.zone)
        day = local.date()
        if self.is_business_day(day) and local.time() < self.receipt_cutoff:
            return day
        return self.next_business_day(day)

    def end_of_day(self, day: date) -> datetime:
        """The UTC instant at which `day` ends in office time (the next local midnight)."""
        # Combining a local wall time with the zone (never a fixed offset) keeps DST right.
        next_midnight = datetime.combine(day + ONE_DAY, time(0), tzinfo=self.zone)
        return next_midnight.astimezone(UTC)

    # Deadlines.

    def deadline(self, received_at: datetime, business_days: int) -> Deadline:
        """The deadline of a commitment whose clock starts when the request is received."""
        return self._deadline_from(self.receipt_day(received_at), business_days)

    def deadline_from_day(self, start_day: date, business_days: int) -> Deadline:
        """The deadline of a clock started by a date staff give (interview, committee).

        Day 0 is `start_day`, or the next business day if it is not one.
        """
        return self._deadline_from(self.business_day_on_or_after(start_day), business_days)

    def hold_span(self, hold: Hold, as_of: datetime) -> HoldSpan | None:
        """What `hold` paused, as known at `as_of`; None if it had not started by then.

        A hold still open at `as_of` (no end, or an end after `as_of`) counts up to `as_of`:
        its span ends on the receipt day of `as_of`. Examples (office time): a hold from
        Wed 10:00 to the same Wed 14:00 pauses 0 days; to the same Wed 17:00 (after the
        cutoff) it pauses 1 (Thursday becomes day 0); Wed 10:00 to Mon 09:00 pauses 3
        (Thu, Fri, Mon).
        """
        _require_aware(as_of, "as_of")
        if hold.start > as_of:
            return None
        is_open = hold.end is None or hold.end > as_of
        resumed_at = as_of if is_open or hold.end is None else hold.end
        paused_after = self.office_date(hold.start)
        resumes_on = self.receipt_day(resumed_at)
        return HoldSpan(
            paused_after=paused_after,
            resumes_on=resumes_on,
            business_days=self.business_days_between(paused_after, resumes_on),
            is_open=is_open,
        )

    def deadline_with_holds(
        self,
        received_at: datetime,
        business_days: int,
        holds: Sequence[Hold],
        as_of: datetime,
    ) -> Deadline:
        """The deadline once the clock's pauses are taken out.

        The due date is the `business_days`-th business day after the receipt day that no hold
        paused (see `hold_span`). Overlapping holds pause a day once; paused days on or before
        the receipt day, or after the due date, do not move it. So holds never bring a
        deadline earlier, and a hold that paused k business days before the due date moves it
        exactly k business days later. `days_on_hold` is that k (over all holds).
        """
        spans = [span for hold in holds if (span := self.hold_span(hold, as_of)) is not None]
        deadline = self._deadline_from(self.receipt_day(received_at), business_days, spans)
        on_hold = any(span.is_open for span in spans)
        return Deadline(
            receipt_day=deadline.receipt_day,
            due_date=deadline.due_date,
            due_at=deadline.due_at,
            days_on_hold=deadline.days_on_hold,
            on_hold=on_hold,
        )

    def _deadline_from(
        self, day_zero: date, business_days: int, spans: Sequence[HoldSpan] = ()
    ) -> Deadline:
        if business_days < 0:
            raise ValueError(f"business days must be >= 0, got {business_days}")
        counted = paused = 0
        due = day_zero
        while counted < business_days:
            due = self.next_business_day(due)
            if any(span.pauses(due) for span in spans):
                paused += 1
            else:
                counted += 1
        return Deadline(
            receipt_day=day_zero,
            due_date=due,
            due_at=self.end_of_day(due),
            days_on_hold=paused,
        )

    def _check_covered(self, day: date) -> None:
        if day.year not in self.years:
            raise ValueError(f"{day} is outside the calendar ({self._describe_years()})")

    def _describe_years(self) -> str:
        return f"years {self.years.start} to {self.years.stop - 1}"


def build_calendar(
    calendar: CalendarSettings, timezone: str, *, years: range = DEFAULT_YEARS
) -> BusinessCalendar:
    """The business calendar of the configuration: official rules, then overrides, closures.

    ``remove_holidays`` takes a rule-based holiday out, ``add_holidays`` puts a day in (the
    official yearly list wins over the rules); ``closure_days`` are extra days off. A date both
    added and removed, a removed date that is not a holiday, or a date outside `years` is a
    ConfigError naming the key.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"organisation.timezone: unknown time zone {timezone!r}") from exc
    _check_overrides(calendar, years)
    table = official_holidays(years)
    for day in calendar.remove_holidays:
        if day not in table:
            raise ConfigError(f"calendar.remove_holidays: {day} is not a public-service holiday")
        del table[day]
    for day in calendar.add_holidays:
        table.setdefault(day, ADDED_HOLIDAY_NAME)
    for day in calendar.closure_days:
        table.setdefault(day, CLOSURE_NAME)
    return BusinessCalendar(
        zone=zone,
        receipt_cutoff=calendar.receipt_cutoff,
        days_off=tuple(sorted(table.items())),
        years=years,
    )


def _check_overrides(calendar: CalendarSettings, years: range) -> None:
    both = sorted(set(calendar.add_holidays) & set(calendar.remove_holidays))
    if both:
        listed = ", ".join(day.isoformat() for day in both)
        raise ConfigError(f"calendar: {listed} both in add_holidays and remove_holidays")
    for key in ("add_holidays", "remove_holidays", "closure_days"):
        for day in getattr(calendar, key):
            if day.year not in years:
                raise ConfigError(
                    f"calendar.{key}: {day} is outside the supported years "
                    f"{years.start} to {years.stop - 1}"
                )


# --- the `mailbot due` report -----------------------------------------------------------------

StartsAt = Literal["receipt", "staff_date"]


@dataclass(frozen=True, slots=True)
class DueLine:
    """One commitment's deadline in a `DueReport`.

    For a ``staff_date`` commitment the clock is started by a date staff give (interview,
    committee); the report counts it from the receipt day of the given instant.
    """

    commitment_id: str
    label: str
    business_days: int
    starts_at: StartsAt
    deadline: Deadline


@dataclass(frozen=True, slots=True)
class DueReport:
    """The deadlines of the given commitments for one arrival instant."""

    received_at: datetime
    received_at_office: datetime
    receipt_day: date
    lines: tuple[DueLine, ...]


def due_report(
    calendar: BusinessCalendar,
    received_at: datetime,
    commitments: Sequence[CommitmentSettings],
) -> DueReport:
    """The deadlines `mailbot due` prints for a request received at `received_at`."""
    receipt_day = calendar.receipt_day(received_at)
    lines = tuple(
        DueLine(
            commitment_id=commitment.id,
            label=commitment.label,
            business_days=commitment.business_days,
            starts_at=commitment.starts_at,
            # The receipt day is a business day, so a staff-date clock started on it counts the
            # same way; DueLine.starts_at records what the day means.
            deadline=calendar.deadline_from_day(receipt_day, commitment.business_days),
        )
        for commitment in commitments
    )
    return DueReport(
        received_at=received_at.astimezone(UTC),
        received_at_office=received_at.astimezone(calendar.zone),
        receipt_day=receipt_day,
        lines=lines,
    )
