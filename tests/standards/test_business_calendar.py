"""The business calendar as a specification: literal dates in, literal dates out."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from mailbot.errors import ConfigError
from mailbot.settings import DEFAULT_COMMITMENTS, CalendarSettings
from mailbot.standards.business_calendar import (
    BusinessCalendar,
    Deadline,
    Hold,
    HoldSpan,
    QuebecPublicServiceHolidays,
    build_calendar,
    due_report,
)

TORONTO = ZoneInfo("America/Toronto")


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return build_calendar(CalendarSettings(), "America/Toronto")


def local(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An aware instant given as office wall time (America/Toronto)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=TORONTO)


# --- the holiday calendar -----------------------------------------------------------------------

# Worked out by hand from the standards page's rules and shift table.
EXPECTED_HOLIDAYS = {
    2025: [
        (date(2025, 1, 1), "Jour de l'An"),  # Wednesday
        (date(2025, 1, 2), "Lendemain du jour de l'An"),  # Thursday
        (date(2025, 4, 18), "Vendredi saint"),  # Easter: April 20
        (date(2025, 4, 21), "Lundi de Pâques"),
        (date(2025, 5, 19), "Journée nationale des patriotes"),  # May 25 is a Sunday
        (date(2025, 6, 24), "Fête nationale du Québec"),  # Tuesday
        (date(2025, 7, 1), "Fête du Canada"),  # Tuesday
        (date(2025, 9, 1), "Fête du Travail"),
        (date(2025, 10, 13), "Action de grâce"),
        (date(2025, 12, 24), "Veille de Noël"),  # Wednesday
        (date(2025, 12, 25), "Noël"),  # Thursday
        (date(2025, 12, 26), "Lendemain de Noël"),  # Friday
        (date(2025, 12, 31), "Veille du jour de l'An"),  # Wednesday
    ],
    2026: [
        (date(2026, 1, 1), "Jour de l'An"),  # Thursday
        (date(2026, 1, 2), "Lendemain du jour de l'An"),  # Friday
        (date(2026, 4, 3), "Vendredi saint"),  # Easter: April 5
        (date(2026, 4, 6), "Lundi de Pâques"),
        (date(2026, 5, 18), "Journée nationale des patriotes"),  # May 25 is itself a Monday
        (date(2026, 6, 24), "Fête nationale du Québec"),  # Wednesday
        (date(2026, 7, 1), "Fête du Canada"),  # Wednesday
        (date(2026, 9, 7), "Fête du Travail"),
        (date(2026, 10, 12), "Action de grâce"),
        (date(2026, 12, 24), "Veille de Noël"),  # Thursday
        (date(2026, 12, 25), "Noël"),  # Friday
        (date(2026, 12, 28), "Lendemain de Noël"),  # Saturday -> Monday
        (date(2026, 12, 31), "Veille du jour de l'An"),  # Thursday
    ],
    2027: [
        (date(2027, 1, 1), "Jour de l'An"),  # Friday
        (date(2027, 1, 4), "Lendemain du jour de l'An"),  # Saturday -> Monday
        (date(2027, 3, 26), "Vendredi saint"),  # Easter: March 28
        (date(2027, 3, 29), "Lundi de Pâques"),
        (date(2027, 5, 24), "Journée nationale des patriotes"),  # May 25 is a Tuesday
        (date(2027, 6, 24), "Fête nationale du Québec"),  # Thursday
        (date(2027, 7, 1), "Fête du Canada"),  # Thursday
        (date(2027, 9, 6), "Fête du Travail"),
        (date(2027, 10, 11), "Action de grâce"),
        (date(2027, 12, 24), "Veille de Noël"),  # Friday
        (date(2027, 12, 27), "Noël"),  # Saturday -> Monday
        (date(2027, 12, 28), "Lendemain de Noël"),  # Sunday -> Tuesday
        (date(2027, 12, 31), "Veille du jour de l'An"),  # Friday
    ],
    2028: [
        (date(2028, 1, 3), "Jour de l'An"),  # Saturday -> Monday
        (date(2028, 1, 4), "Lendemain du jour de l'An"),  # Sunday -> Tuesday
        (date(2028, 4, 14), "Vendredi saint"),  # Easter: April 16
        (date(2028, 4, 17), "Lundi de Pâques"),
        (date(2028, 5, 22), "Journée nationale des patriotes"),  # May 25 is a Thursday
        (date(2028, 6, 23), "Fête nationale du Québec"),  # Saturday -> Friday
        (date(2028, 6, 30), "Fête du Canada"),  # Saturday -> Friday
        (date(2028, 9, 4), "Fête du Travail"),
        (date(2028, 10, 9), "Action de grâce"),
        (date(2028, 12, 22), "Veille de Noël"),  # Sunday -> Friday
        (date(2028, 12, 25), "Noël"),  # Monday
        (date(2028, 12, 26), "Lendemain de Noël"),  # Tuesday
        (date(2028, 12, 29), "Veille du jour de l'An"),  # Sunday -> Friday
    ],
}


@pytest.mark.parametrize(
    ("year", "day", "name"),
    [(year, day, name) for year, days in EXPECTED_HOLIDAYS.items() for day, name in days],
)
def test_each_holiday_of_2025_to_2028_is_on_its_date(year: int, day: date, name: str) -> None:
    table = QuebecPublicServiceHolidays(years=year)
    assert table.get(day) == name


@pytest.mark.parametrize("year", sorted(EXPECTED_HOLIDAYS))
def test_the_year_has_exactly_the_expected_holidays(calendar: BusinessCalendar, year: int) -> None:
    assert calendar.holidays_in(year) == EXPECTED_HOLIDAYS[year]


def test_2026_and_2027_equal_the_standards_page(calendar: BusinessCalendar) -> None:
    page_2026 = [
        (1, 1), (1, 2), (4, 3), (4, 6), (5, 18), (6, 24), (7, 1), (9, 7), (10, 12),
        (12, 24), (12, 25), (12, 28), (12, 31),
    ]  # fmt: skip
    page_2027 = [
        (1, 1), (1, 4), (3, 26), (3, 29), (5, 24), (6, 24), (7, 1), (9, 6), (10, 11),
        (12, 24), (12, 27), (12, 28), (12, 31),
    ]  # fmt: skip
    assert [day for day, _ in calendar.holidays_in(2026)] == [date(2026, *md) for md in page_2026]
    assert [day for day, _ in calendar.holidays_in(2027)] == [date(2027, *md) for md in page_2027]


def test_pair_collisions_when_the_first_day_takes_monday() -> None:
    # 2023: Jan 1 is a Sunday -> Monday Jan 2, so Jan 2 (a Monday) -> Tuesday Jan 3.
    # 2022: Dec 24 Sat -> Fri 23; Dec 25 Sun -> Mon 26; Dec 26 Mon -> Tue 27; Dec 31 Sat -> Fri 30.
    table = QuebecPublicServiceHolidays(years=[2022, 2023])
    assert table.get(date(2023, 1, 2)) == "Jour de l'An"
    assert table.get(date(2023, 1, 3)) == "Lendemain du jour de l'An"
    assert table.get(date(2022, 12, 23)) == "Veille de Noël"
    assert table.get(date(2022, 12, 26)) == "Noël"
    assert table.get(date(2022, 12, 27)) == "Lendemain de Noël"
    assert table.get(date(2022, 12, 30)) == "Veille du jour de l'An"
    assert date(2022, 12, 24) not in table
    assert date(2022, 12, 25) not in table


def test_june_24_and_july_1_on_sunday_go_to_monday() -> None:
    table = QuebecPublicServiceHolidays(years=2029)  # both fall on a Sunday in 2029
    assert table.get(date(2029, 6, 25)) == "Fête nationale du Québec"
    assert table.get(date(2029, 7, 2)) == "Fête du Canada"


def test_without_observed_the_fixed_days_stay_on_their_nominal_dates() -> None:
    table = QuebecPublicServiceHolidays(years=2027, observed=False)
    assert table.get(date(2027, 1, 2)) == "Lendemain du jour de l'An"
    assert table.get(date(2027, 12, 25)) == "Noël"
    assert table.get(date(2027, 12, 26)) == "Lendemain de Noël"


def test_every_year_has_13_distinct_weekday_holidays() -> None:
    table = QuebecPublicServiceHolidays(years=range(2003, 2101))
    for year in range(2003, 2101):
        days = [day for day in table if day.year == year]
        assert len(days) == 13, year
        assert all(day.weekday() < 5 for day in days), year


def test_the_package_canada_qc_calendar_is_not_the_public_service_one() -> None:
    private_sector = holidays.country_holidays("CA", subdiv="QC", years=2026)
    assert date(2026, 1, 2) not in private_sector
    assert date(2026, 1, 2) in QuebecPublicServiceHolidays(years=2026)


# --- configuration ------------------------------------------------------------------------------


def test_added_holiday_is_a_day_off() -> None:
    cal = build_calendar(CalendarSettings(add_holidays=(date(2026, 12, 29),)), "America/Toronto")
    assert not cal.is_business_day(date(2026, 12, 29))
    assert (date(2026, 12, 29), "Jour férié (liste officielle)") in cal.holidays_in(2026)


def test_removed_holiday_is_a_business_day_again() -> None:
    cal = build_calendar(CalendarSettings(remove_holidays=(date(2026, 12, 31),)), "America/Toronto")
    assert cal.is_business_day(date(2026, 12, 31))
    assert date(2026, 12, 31) not in [day for day, _ in cal.holidays_in(2026)]
    assert len(cal.holidays_in(2026)) == 12


def test_official_list_can_move_a_holiday() -> None:
    settings = CalendarSettings(
        remove_holidays=(date(2026, 12, 28),), add_holidays=(date(2026, 12, 29),)
    )
    cal = build_calendar(settings, "America/Toronto")
    assert cal.is_business_day(date(2026, 12, 28))
    assert not cal.is_business_day(date(2026, 12, 29))


def test_closure_day_is_not_a_business_day_and_is_listed() -> None:
    cal = build_calendar(CalendarSettings(closure_days=(date(2025, 12, 29),)), "America/Toronto")
    assert not cal.is_business_day(date(2025, 12, 29))
    assert (date(2025, 12, 29), "Fermeture") in cal.holidays_in(2025)
    # A closure day moves deadlines: received Mon 2025-12-22, +2 is now Tue 2025-12-30.
    assert cal.deadline(local(2025, 12, 22, 10), 2).due_date == date(2025, 12, 30)


def test_closure_on_a_holiday_keeps_the_holiday_name() -> None:
    cal = build_calendar(CalendarSettings(closure_days=(date(2025, 12, 25),)), "America/Toronto")
    assert cal.holidays_in(2025).count((date(2025, 12, 25), "Noël")) == 1
    assert len(cal.holidays_in(2025)) == 13


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            CalendarSettings(add_holidays=(date(2026, 3, 2),), remove_holidays=(date(2026, 3, 2),)),
            "both in add_holidays and remove_holidays",
        ),
        (
            CalendarSettings(remove_holidays=(date(2026, 3, 2),)),
            "calendar.remove_holidays: 2026-03-02 is not a public-service holiday",
        ),
        (
            CalendarSettings(closure_days=(date(2101, 1, 5),)),
            "calendar.closure_days: 2101-01-05 is outside",
        ),
    ],
)
def test_inconsistent_overrides_are_config_errors(settings: CalendarSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_calendar(settings, "America/Toronto")


def test_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        build_calendar(CalendarSettings(), "Mars/Olympus")


def test_dates_outside_the_covered_years_are_refused(calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="outside the calendar"):
        calendar.is_business_day(date(2101, 1, 3))
    with pytest.raises(ValueError, match="outside the calendar"):
        calendar.holidays_in(1999)


# --- days ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 11, 3), True),  # Monday
        (date(2025, 11, 7), True),  # Friday
        (date(2025, 11, 8), False),  # Saturday
        (date(2025, 11, 9), False),  # Sunday
        (date(2025, 12, 26), False),  # Lendemain de Noël
        (date(2026, 12, 28), False),  # Lendemain de Noël, shifted
        (date(2026, 12, 26), False),  # Saturday: the nominal day is still a weekend day
    ],
)
def test_is_business_day(calendar: BusinessCalendar, day: date, expected: bool) -> None:
    assert calendar.is_business_day(day) is expected


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        (date(2025, 11, 3), 0, date(2025, 11, 3)),
        (date(2025, 11, 8), 0, date(2025, 11, 8)),  # n == 0 is the day itself, even a Saturday
        (date(2025, 11, 8), 1, date(2025, 11, 10)),
        (date(2025, 11, 7), 1, date(2025, 11, 10)),
        (date(2025, 12, 23), 1, date(2025, 12, 29)),  # over Dec 24, 25, 26 and a weekend
        (date(2025, 12, 30), 1, date(2026, 1, 5)),  # over Dec 31, Jan 1, Jan 2 and a weekend
    ],
)
def test_add_business_days(calendar: BusinessCalendar, day: date, n: int, expected: date) -> None:
    assert calendar.add_business_days(day, n) == expected


def test_add_business_days_refuses_negative(calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        calendar.add_business_days(date(2025, 11, 3), -1)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 11, 3), date(2025, 11, 3), 0),
        (date(2025, 11, 3), date(2025, 11, 4), 1),  # the start is not counted, the end is
        (date(2025, 11, 7), date(2025, 11, 10), 1),
        (date(2025, 11, 10), date(2025, 11, 3), 0),  # end before start
        (date(2025, 12, 22), date(2026, 1, 13), 10),  # worked example, +10
    ],
)
def test_business_days_between(
    calendar: BusinessCalendar, start: date, end: date, expected: int
) -> None:
    assert calendar.business_days_between(start, end) == expected


# --- receipt day --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        (local(2025, 11, 3, 16, 29, 59), date(2025, 11, 3)),
        (local(2025, 11, 3, 16, 30, 0), date(2025, 11, 4)),
        (local(2025, 11, 3, 0, 0, 0), date(2025, 11, 3)),
        (local(2025, 11, 7, 16, 30), date(2025, 11, 10)),  # Friday after cutoff -> Monday
        (local(2025, 11, 8, 10, 0), date(2025, 11, 10)),  # Saturday -> Monday
        (local(2025, 11, 9, 23, 59), date(2025, 11, 10)),  # Sunday -> Monday
        (local(2025, 12, 24, 9, 0), date(2025, 12, 29)),  # holidays then a weekend
        (local(2027, 12, 27, 9, 0), date(2027, 12, 29)),  # Noël shifted, then Dec 28
    ],
)
def test_receipt_day(calendar: BusinessCalendar, received: datetime, expected: date) -> None:
    assert calendar.receipt_day(received) == expected


def test_receipt_day_converts_utc_to_office_time(calendar: BusinessCalendar) -> None:
    # 21:15 UTC is 16:15 EST (before the cutoff) but 17:15 EDT (after it).
    assert calendar.receipt_day(datetime(2025, 11, 3, 21, 15, tzinfo=UTC)) == date(2025, 11, 3)
    assert calendar.receipt_day(datetime(2025, 10, 30, 21, 15, tzinfo=UTC)) == date(2025, 10, 31)
    # 03:00 UTC on a Tuesday is still Monday evening in Toronto.
    assert calendar.receipt_day(datetime(2025, 11, 4, 3, 0, tzinfo=UTC)) == date(2025, 11, 4)
    assert calendar.office_date(datetime(2025, 11, 4, 3, 0, tzinfo=UTC)) == date(2025, 11, 3)


def test_naive_instants_are_refused(calendar: BusinessCalendar) -> None:
    naive = datetime(2025, 11, 3, 10, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.receipt_day(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.deadline(naive, 2)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.office_date(naive)
    deadline = calendar.deadline(local(2025, 11, 3, 10), 2)
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline.is_met(naive)


def test_the_cutoff_comes_from_the_settings() -> None:
    cal = build_calendar(CalendarSettings(receipt_cutoff=time(12, 0)), "America/Toronto")
    assert cal.receipt_day(local(2025, 11, 3, 11, 59)) == date(2025, 11, 3)
    assert cal.receipt_day(local(2025, 11, 3, 12, 0)) == date(2025, 11, 4)


# DST weeks: 2026-03-08 (spring forward) and 2025-11-02 (fall back).
@pytest.mark.parametrize(
    ("received_local", "receipt", "due_10"),
    [
        (local(2026, 3, 6, 16, 29), date(2026, 3, 6), date(2026, 3, 20)),  # Fri, EST
        (local(2026, 3, 6, 16, 30), date(2026, 3, 9), date(2026, 3, 23)),
        (local(2026, 3, 8, 3, 30), date(2026, 3, 9), date(2026, 3, 23)),  # the DST Sunday
        (local(2026, 3, 9, 16, 29), date(2026, 3, 9), date(2026, 3, 23)),  # Mon, EDT
        (local(2026, 3, 9, 16, 30), date(2026, 3, 10), date(2026, 3, 24)),
        (local(2025, 10, 31, 16, 29), date(2025, 10, 31), date(2025, 11, 14)),  # Fri, EDT
        (local(2025, 11, 2, 1, 30), date(2025, 11, 3), date(2025, 11, 17)),  # ambiguous hour
        (local(2025, 11, 3, 16, 29), date(2025, 11, 3), date(2025, 11, 17)),  # Mon, EST
        (local(2025, 11, 3, 16, 30), date(2025, 11, 4), date(2025, 11, 18)),
    ],
)
def test_dst_weeks_follow_the_local_wall_time(
    calendar: BusinessCalendar, received_local: datetime, receipt: date, due_10: date
) -> None:
    # The same instant given in UTC must give the same answer: only office time matters.
    as_utc = received_local.astimezone(UTC)
    for received in (received_local, as_utc):
        deadline = calendar.deadline(received, 10)
        assert deadline.receipt_day == receipt
        assert deadline.due_date == due_10


def test_same_local_time_either_side_of_dst_gives_the_same_dates(
    calendar: BusinessCalendar,
) -> None:
    before = calendar.deadline(local(2026, 3, 2, 16, 29), 5)  # Monday, EST
    after = calendar.deadline(local(2026, 3, 9, 16, 29), 5)  # Monday, EDT
    utc_gap = local(2026, 3, 9, 16, 29).astimezone(UTC) - local(2026, 3, 2, 16, 29).astimezone(UTC)
    assert utc_gap == timedelta(days=7, hours=-1)
    assert after.due_date - before.due_date == timedelta(days=7)
    assert after.receipt_day - before.receipt_day == timedelta(days=7)


# --- deadlines ----------------------------------------------------------------------------------

WORKED_EXAMPLES = [
    # received (office time), receipt day, +2, +10, +15, +30 — the standards page's table.
    (
        local(2025, 11, 3, 10, 0),
        date(2025, 11, 3),
        date(2025, 11, 5),
        date(2025, 11, 17),
        date(2025, 11, 24),
        date(2025, 12, 15),
    ),
    (
        local(2025, 12, 19, 17, 5),
        date(2025, 12, 22),
        date(2025, 12, 29),
        date(2026, 1, 13),
        date(2026, 1, 20),
        date(2026, 2, 10),
    ),
    (
        local(2025, 12, 23, 9, 0),
        date(2025, 12, 23),
        date(2025, 12, 30),
        date(2026, 1, 14),
        date(2026, 1, 21),
        date(2026, 2, 11),
    ),
    (
        local(2028, 6, 22, 11, 0),
        date(2028, 6, 22),
        date(2028, 6, 27),
        date(2028, 7, 10),
        date(2028, 7, 17),
        date(2028, 8, 7),
    ),
]


@pytest.mark.parametrize(
    ("received", "receipt", "plus_2", "plus_10", "plus_15", "plus_30"), WORKED_EXAMPLES
)
def test_worked_examples_of_the_standards_page(
    calendar: BusinessCalendar,
    received: datetime,
    receipt: date,
    plus_2: date,
    plus_10: date,
    plus_15: date,
    plus_30: date,
) -> None:
    assert calendar.receipt_day(received) == receipt
    for business_days, expected in ((2, plus_2), (10, plus_10), (15, plus_15), (30, plus_30)):
        deadline = calendar.deadline(received, business_days)
        assert deadline.receipt_day == receipt
        assert deadline.due_date == expected, business_days


def test_deadline_instant_is_the_end_of_the_due_date_in_office_time(
    calendar: BusinessCalendar,
) -> None:
    deadline = calendar.deadline(local(2025, 11, 3, 10), 2)
    assert deadline == Deadline(
        receipt_day=date(2025, 11, 3),
        due_date=date(2025, 11, 5),
        due_at=datetime(2025, 11, 6, 5, 0, tzinfo=UTC),  # midnight EST
    )
    assert deadline.is_met(local(2025, 11, 5, 23, 59, 59))
    assert deadline.is_met(datetime(2025, 11, 6, 4, 59, 59, 999999, tzinfo=UTC))
    assert not deadline.is_met(datetime(2025, 11, 6, 5, 0, tzinfo=UTC))
    assert not deadline.is_met(local(2025, 11, 6, 0, 0))


def test_deadline_instant_in_summer_time(calendar: BusinessCalendar) -> None:
    # Due Friday 2025-10-31 (EDT): ends at midnight EDT, 04:00 UTC, though the next
    # Sunday switches to EST.
    deadline = calendar.deadline(local(2025, 10, 29, 10), 2)
    assert deadline.due_date == date(2025, 10, 31)
    assert deadline.due_at == datetime(2025, 11, 1, 4, 0, tzinfo=UTC)


def test_deadline_ending_on_the_eve_of_spring_forward(calendar: BusinessCalendar) -> None:
    # Due Friday 2026-03-06: Saturday midnight is still EST (05:00 UTC).
    deadline = calendar.deadline(local(2026, 3, 4, 10), 2)
    assert deadline.due_date == date(2026, 3, 6)
    assert deadline.due_at == datetime(2026, 3, 7, 5, 0, tzinfo=UTC)


def test_zero_business_days_is_due_on_the_receipt_day(calendar: BusinessCalendar) -> None:
    deadline = calendar.deadline(local(2025, 11, 8, 10), 0)  # Saturday
    assert deadline.receipt_day == deadline.due_date == date(2025, 11, 10)


@pytest.mark.parametrize(
    ("start_day", "day_zero", "due_30"),
    [
        (date(2025, 11, 3), date(2025, 11, 3), date(2025, 12, 15)),  # a business day
        (date(2025, 11, 8), date(2025, 11, 10), date(2025, 12, 22)),  # Saturday -> Monday
        (date(2025, 12, 25), date(2025, 12, 29), date(2026, 2, 12)),  # Noël -> Monday 29
    ],
)
def test_deadline_from_a_staff_date(
    calendar: BusinessCalendar, start_day: date, day_zero: date, due_30: date
) -> None:
    deadline = calendar.deadline_from_day(start_day, 30)
    assert deadline.receipt_day == day_zero
    assert deadline.due_date == due_30


# --- holds --------------------------------------------------------------------------------------

RECEIVED = local(2025, 11, 3, 10, 0)  # Monday; +10 is Mon 2025-11-17 without a hold
AS_OF = local(2026, 1, 31, 12, 0)


def test_hold_worked_example_wednesday_to_monday(calendar: BusinessCalendar) -> None:
    # Asked Wed 11-05 10:00, answered Mon 11-10 09:00: Thu 6, Fri 7 and Mon 10 are paused
    # (Wednesday ran; Monday is day 0 of the restarted clock).
    hold = Hold(start=local(2025, 11, 5, 10), end=local(2025, 11, 10, 9))
    assert calendar.hold_span(hold, AS_OF) == HoldSpan(
        paused_after=date(2025, 11, 5),
        resumes_on=date(2025, 11, 10),
        business_days=3,
        is_open=False,
    )
    deadline = calendar.deadline_with_holds(RECEIVED, 10, [hold], AS_OF)
    assert deadline.receipt_day == date(2025, 11, 3)
    assert deadline.due_date == date(2025, 11, 20)  # Nov 17 + 3 business days
    assert deadline.days_on_hold == 3
    assert not deadline.on_hold
    assert deadline.due_at == datetime(2025, 11, 21, 5, 0, tzinfo=UTC)


def test_hold_started_on_the_due_date_does_not_move_it(calendar: BusinessCalendar) -> None:
    # The +2 acknowledgement is due Wed 11-05; that day had already begun counting.
    hold = Hold(start=local(2025, 11, 5, 10), end=local(2025, 11, 10, 9))
    deadline = calendar.deadline_with_holds(RECEIVED, 2, [hold], AS_OF)
    assert deadline.due_date == date(2025, 11, 5)
    assert deadline.days_on_hold == 0


@pytest.mark.parametrize(
    ("start", "end", "paused"),
    [
        (local(2025, 11, 5, 10), local(2025, 11, 5, 14), 0),  # same day, before the cutoff
        (local(2025, 11, 5, 10), local(2025, 11, 5, 16, 30), 1),  # same day, at the cutoff
        (local(2025, 11, 5, 17), local(2025, 11, 6, 9), 1),  # started after hours: Thu paused
        (local(2025, 11, 5, 10), local(2025, 11, 8, 11), 3),  # answered Saturday -> Monday
        (local(2025, 11, 5, 10), local(2025, 11, 7, 16, 45), 3),  # Fri after cutoff -> Monday
        (local(2025, 11, 8, 10), local(2025, 11, 10, 9), 1),  # asked Saturday: Monday paused
    ],
)
def test_hold_counting_rule(
    calendar: BusinessCalendar, start: datetime, end: datetime, paused: int
) -> None:
    hold = Hold(start=start, end=end)
    span = calendar.hold_span(hold, AS_OF)
    assert span is not None
    assert span.business_days == paused
    deadline = calendar.deadline_with_holds(RECEIVED, 10, [hold], AS_OF)
    assert deadline.days_on_hold == paused
    assert deadline.due_date == calendar.add_business_days(date(2025, 11, 17), paused)


def test_hold_over_the_holidays(calendar: BusinessCalendar) -> None:
    # Received Mon 2025-12-15; +10 is Tue 2026-01-06 without a hold. On hold Fri 12-19 to
    # Mon 2026-01-05: paused Dec 22, 23, 29, 30 and Jan 5 (holidays are not business days).
    hold = Hold(start=local(2025, 12, 19, 10), end=local(2026, 1, 5, 10))
    assert calendar.deadline(local(2025, 12, 15, 10), 10).due_date == date(2026, 1, 6)
    deadline = calendar.deadline_with_holds(local(2025, 12, 15, 10), 10, [hold], AS_OF)
    assert deadline.days_on_hold == 5
    assert deadline.due_date == date(2026, 1, 13)


def test_open_hold_counts_up_to_as_of(calendar: BusinessCalendar) -> None:
    hold = Hold(start=local(2025, 11, 5, 10))
    friday = calendar.deadline_with_holds(RECEIVED, 10, [hold], local(2025, 11, 7, 12))
    assert (friday.days_on_hold, friday.due_date, friday.on_hold) == (2, date(2025, 11, 19), True)
    monday = calendar.deadline_with_holds(RECEIVED, 10, [hold], local(2025, 11, 10, 12))
    assert (monday.days_on_hold, monday.due_date, monday.on_hold) == (3, date(2025, 11, 20), True)


def test_as_of_replays_what_was_known_then(calendar: BusinessCalendar) -> None:
    hold = Hold(start=local(2025, 11, 5, 10), end=local(2025, 11, 10, 9))
    before_the_hold = calendar.deadline_with_holds(RECEIVED, 10, [hold], local(2025, 11, 4, 12))
    assert before_the_hold == calendar.deadline(RECEIVED, 10)
    during_the_hold = calendar.deadline_with_holds(RECEIVED, 10, [hold], local(2025, 11, 7, 12))
    assert during_the_hold.on_hold
    assert during_the_hold.days_on_hold == 2


def test_overlapping_holds_pause_a_day_once(calendar: BusinessCalendar) -> None:
    holds = [
        Hold(start=local(2025, 11, 5, 10), end=local(2025, 11, 10, 9)),  # Thu, Fri, Mon
        Hold(start=local(2025, 11, 6, 10), end=local(2025, 11, 11, 9)),  # Fri, Mon, Tue
    ]
    deadline = calendar.deadline_with_holds(RECEIVED, 10, holds, AS_OF)
    assert deadline.days_on_hold == 4  # Thu 6, Fri 7, Mon 10, Tue 11
    assert deadline.due_date == date(2025, 11, 21)


def test_two_separate_holds_add_up(calendar: BusinessCalendar) -> None:
    holds = [
        Hold(start=local(2025, 11, 4, 10), end=local(2025, 11, 5, 10)),  # Wed 5
        Hold(start=local(2025, 11, 12, 10), end=local(2025, 11, 14, 10)),  # Thu 13, Fri 14
    ]
    deadline = calendar.deadline_with_holds(RECEIVED, 10, holds, AS_OF)
    assert deadline.days_on_hold == 3
    assert deadline.due_date == date(2025, 11, 20)


def test_hold_after_the_due_date_does_not_rescue_it(calendar: BusinessCalendar) -> None:
    hold = Hold(start=local(2025, 11, 18, 10), end=local(2025, 11, 25, 10))
    deadline = calendar.deadline_with_holds(RECEIVED, 10, [hold], AS_OF)
    assert deadline.due_date == date(2025, 11, 17)
    assert deadline.days_on_hold == 0


def test_hold_before_the_receipt_day_does_not_count(calendar: BusinessCalendar) -> None:
    # Received Fri 17:05 (receipt day Mon 12-22); a hold from Saturday to Monday 09:00 pauses
    # only Monday, which is day 0 anyway: nothing moves.
    received = local(2025, 12, 19, 17, 5)
    hold = Hold(start=local(2025, 12, 20, 10), end=local(2025, 12, 22, 9))
    deadline = calendar.deadline_with_holds(received, 2, [hold], AS_OF)
    assert deadline.due_date == date(2025, 12, 29)
    assert deadline.days_on_hold == 0


def test_hold_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Hold(start=datetime(2025, 11, 5, 10))
    with pytest.raises(ValueError, match="before it starts"):
        Hold(start=local(2025, 11, 5, 10), end=local(2025, 11, 5, 9))


# --- the `mailbot due` report -------------------------------------------------------------------


def test_due_report_for_one_standard(calendar: BusinessCalendar) -> None:
    (cooperation_result,) = [c for c in DEFAULT_COMMITMENTS if c.id == "cooperation_result"]
    report = due_report(calendar, local(2025, 12, 19, 17, 5), [cooperation_result])
    assert report.receipt_day == date(2025, 12, 22)
    (line,) = report.lines
    assert line.starts_at == "staff_date"
    assert line.deadline.due_date == date(2026, 2, 10)
