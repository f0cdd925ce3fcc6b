"""Properties of the business calendar that must hold for any instant, any N, any hold."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from mailbot.settings import CalendarSettings
from mailbot.standards.business_calendar import BusinessCalendar, Hold, build_calendar

CALENDAR = build_calendar(CalendarSettings(), "America/Toronto")
ZONE = ZoneInfo("America/Toronto")
CUTOFF = time(16, 30)

FIRST = date(2007, 1, 1)  # the current North American DST rules start in 2007
LAST = date(2097, 12, 31)  # leaves room for deadlines and holds before 2100 ends

business_day_counts = st.integers(min_value=0, max_value=60)
wall_times = st.times()
folds = st.sampled_from([0, 1])


def _nth_sunday(year: int, month: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


@st.composite
def dst_week_dates(draw: st.DrawFn) -> date:
    """A date within a week of a DST change (2nd Sunday of March, 1st Sunday of November)."""
    year = draw(st.integers(min_value=FIRST.year, max_value=LAST.year))
    change = draw(st.sampled_from([_nth_sunday(year, 3, 2), _nth_sunday(year, 11, 1)]))
    return change + timedelta(days=draw(st.integers(min_value=-7, max_value=7)))


local_dates = st.one_of(st.dates(min_value=FIRST, max_value=LAST), dst_week_dates())


@st.composite
def local_instants(draw: st.DrawFn) -> tuple[date, time, datetime]:
    """A wall-clock date and time in office time, and the aware instant they name."""
    day = draw(local_dates)
    wall = draw(wall_times)
    instant = datetime.combine(day, wall, tzinfo=ZONE).replace(fold=draw(folds))
    return day, wall, instant


utc_instants = st.datetimes(
    min_value=datetime(2007, 1, 2), max_value=datetime(2097, 12, 30), timezones=st.just(UTC)
)


def expected_receipt_day(calendar: BusinessCalendar, day: date, wall: time) -> date:
    """The receipt rule written from the local date and wall time alone (the oracle)."""
    # A wall time inside the spring-forward gap is read an hour later: still before the cutoff.
    if calendar.is_business_day(day) and wall < CUTOFF:
        return day
    return calendar.next_business_day(day)


@given(utc_instants, business_day_counts)
def test_due_date_is_a_business_day(received: datetime, n: int) -> None:
    assert CALENDAR.is_business_day(CALENDAR.deadline(received, n).due_date)


@given(utc_instants, business_day_counts)
def test_due_date_is_exactly_n_business_days_after_the_receipt_day(
    received: datetime, n: int
) -> None:
    deadline = CALENDAR.deadline(received, n)
    assert CALENDAR.business_days_between(deadline.receipt_day, deadline.due_date) == n
    # ... and the first date that is: the day before it has one business day fewer.
    if n:
        day_before = deadline.due_date - timedelta(days=1)
        assert CALENDAR.business_days_between(deadline.receipt_day, day_before) == n - 1


@given(utc_instants)
def test_receipt_day_is_the_office_date_or_the_next_business_day(received: datetime) -> None:
    office_date = CALENDAR.office_date(received)
    receipt_day = CALENDAR.receipt_day(received)
    assert CALENDAR.is_business_day(receipt_day)
    assert receipt_day in (office_date, CALENDAR.next_business_day(office_date))


@given(utc_instants, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)))
def test_deadline_is_monotonic_in_the_received_time(received: datetime, later: timedelta) -> None:
    for n in (0, 2, 10, 30):
        first = CALENDAR.deadline(received, n)
        second = CALENDAR.deadline(received + later, n)
        assert first.receipt_day <= second.receipt_day
        assert first.due_date <= second.due_date
        assert first.due_at <= second.due_at


@given(local_instants(), business_day_counts)
def test_the_local_wall_time_alone_decides(instant: tuple[date, time, datetime], n: int) -> None:
    day, wall, received = instant
    receipt_day = expected_receipt_day(CALENDAR, day, wall)
    deadline = CALENDAR.deadline(received, n)
    assert deadline.receipt_day == receipt_day
    assert deadline.due_date == CALENDAR.add_business_days(receipt_day, n)
    # The same instant written in UTC, or in the other fold, changes nothing.
    assert CALENDAR.deadline(received.astimezone(UTC), n) == deadline
    assert CALENDAR.deadline(received.replace(fold=1 - received.fold), n) == deadline


@given(local_dates, wall_times, business_day_counts)
def test_the_same_wall_time_a_week_later_is_due_a_week_later(day: date, wall: time, n: int) -> None:
    # Across a DST change the UTC gap is 7 days +- 1 hour; in office time it is 7 days. A
    # calendar without holidays isolates the time-zone arithmetic from the holiday table.
    weekends_only = BusinessCalendar(zone=ZONE, receipt_cutoff=CUTOFF, days_off=())
    first = weekends_only.deadline(datetime.combine(day, wall, tzinfo=ZONE), n)
    week_later = datetime.combine(day + timedelta(days=7), wall, tzinfo=ZONE)
    second = weekends_only.deadline(week_later, n)
    assert second.receipt_day - first.receipt_day == timedelta(days=7)
    assert second.due_date - first.due_date == timedelta(days=7)
    assert second.due_at.astimezone(ZONE).time() == first.due_at.astimezone(ZONE).time()


@given(utc_instants, business_day_counts, wall_times, folds)
def test_any_instant_on_the_due_date_meets_the_standard(
    received: datetime, n: int, wall: time, fold: int
) -> None:
    deadline = CALENDAR.deadline(received, n)
    on_due_date = datetime.combine(deadline.due_date, wall, tzinfo=ZONE).replace(fold=fold)
    next_day = deadline.due_date + timedelta(days=1)
    on_next_day = datetime.combine(next_day, wall, tzinfo=ZONE).replace(fold=fold)
    assert deadline.is_met(on_due_date)
    assert not deadline.is_met(on_next_day)
    assert not deadline.is_met(deadline.due_at)
    # due_at is the local midnight that starts the next day.
    local_end = deadline.due_at.astimezone(ZONE)
    assert (local_end.date(), local_end.time()) == (next_day, time(0))
    assert deadline.due_at.tzinfo is UTC


@given(local_dates, st.integers(min_value=0, max_value=60))
def test_add_and_between_are_inverse(day: date, n: int) -> None:
    later = CALENDAR.add_business_days(day, n)
    assert CALENDAR.business_days_between(day, later) == n
    assert later >= day
    if n:
        assert CALENDAR.is_business_day(later)


# --- holds --------------------------------------------------------------------------------------


@st.composite
def holds_around(draw: st.DrawFn, received: datetime) -> Hold:
    start = received + draw(st.timedeltas(min_value=timedelta(days=-5), max_value=timedelta(60)))
    if draw(st.booleans()):
        return Hold(start=start)
    length = draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
    return Hold(start=start, end=start + length)


@given(st.data(), utc_instants, business_day_counts)
def test_holds_never_bring_a_deadline_earlier(
    data: st.DataObject, received: datetime, n: int
) -> None:
    holds = data.draw(st.lists(holds_around(received), max_size=3))
    as_of = received + data.draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(90)))
    plain = CALENDAR.deadline(received, n)
    held = CALENDAR.deadline_with_holds(received, n, holds, as_of)
    assert held.receipt_day == plain.receipt_day
    assert held.due_date >= plain.due_date
    assert held.days_on_hold >= 0
    assert held.due_date == CALENDAR.add_business_days(plain.due_date, held.days_on_hold)
    assert CALENDAR.is_business_day(held.due_date)
    if not holds:
        assert held == plain


@given(st.data(), utc_instants, st.integers(min_value=1, max_value=40), st.booleans())
def test_a_hold_of_k_business_days_moves_the_deadline_by_k(
    data: st.DataObject, received: datetime, n: int, still_open: bool
) -> None:
    plain = CALENDAR.deadline(received, n)
    # A hold that starts in office time on a day from the receipt day to the day before the
    # due date (so it begins before the clock has run out).
    window = (plain.due_date - plain.receipt_day).days
    start_day = plain.receipt_day + timedelta(days=data.draw(st.integers(0, window - 1)))
    start = datetime.combine(start_day, data.draw(wall_times), tzinfo=ZONE)
    length = data.draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)))
    if still_open:
        hold, as_of = Hold(start=start), start + length
    else:
        hold, as_of = Hold(start=start, end=start + length), start + length + timedelta(days=3)
    span = CALENDAR.hold_span(hold, as_of)
    assert span is not None
    assert span.paused_after == start_day
    k = span.business_days
    held = CALENDAR.deadline_with_holds(received, n, [hold], as_of)
    assert held.days_on_hold == k
    assert held.due_date == CALENDAR.add_business_days(plain.due_date, k)
    assert held.on_hold is still_open


@given(st.data(), utc_instants)
def test_a_hold_within_one_office_day_before_the_cutoff_pauses_nothing(
    data: st.DataObject, received: datetime
) -> None:
    day = CALENDAR.receipt_day(received)
    start_time = data.draw(st.times(max_value=time(16, 29)))
    end_time = data.draw(st.times(min_value=start_time, max_value=time(16, 29, 59)))
    hold = Hold(
        start=datetime.combine(day, start_time, tzinfo=ZONE),
        end=datetime.combine(day, end_time, tzinfo=ZONE),
    )
    assert hold.end is not None
    span = CALENDAR.hold_span(hold, hold.end + timedelta(days=1))
    assert span is not None
    assert span.business_days == 0


# --- configuration ------------------------------------------------------------------------------


@given(
    st.lists(st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)), max_size=8),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 10, 1)),
    business_day_counts,
)
def test_closure_days_are_never_business_days_nor_due_dates(
    closures: list[date], received_local: datetime, n: int
) -> None:
    calendar = build_calendar(
        CalendarSettings(closure_days=tuple(closures)), "America/Toronto", years=range(2024, 2029)
    )
    for day in closures:
        assert not calendar.is_business_day(day)
    deadline = calendar.deadline(received_local.replace(tzinfo=ZONE), n)
    assert deadline.due_date not in closures
    assert deadline.receipt_day not in closures
