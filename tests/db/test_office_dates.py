"""The office date of a stored instant, in SQL (`office_date_sql`): the same date on SQLite
(UTC offsets applied segment by segment) as on PostgreSQL (its own time-zone database), and
as `BusinessCalendar.office_date`, across both daylight-saving changes, around midnight and
at the 16:30 receipt cut-off (which moves the receipt day, never the office date)."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db import deadline_rows
from mailbot.db.models import DEADLINE
from mailbot.db.report_rows import office_date_sql
from mailbot.settings import CalendarSettings
from mailbot.standards.business_calendar import build_calendar
from tests.db.seed import at, day, ticket

CALENDAR = build_calendar(CalendarSettings(), "America/Toronto")

# A UTC instant -> its date in Montréal. 2025: EDT from 2025-03-09 07:00 UTC (02:00 EST
# becomes 03:00 EDT), EST again from 2025-11-02 06:00 UTC (02:00 EDT becomes 01:00 EST).
OFFICE_DATES = {
    "2025-03-07T21:29:59Z": "2025-03-07",  # Friday 16:29:59 EST
    "2025-03-07T21:30:00Z": "2025-03-07",  # Friday 16:30 EST: received Monday, dated Friday
    "2025-03-08T04:59:59Z": "2025-03-07",  # 23:59:59 EST
    "2025-03-08T05:00:00Z": "2025-03-08",  # midnight EST
    "2025-03-09T04:30:00Z": "2025-03-08",  # 23:30 EST, the night of the change
    "2025-03-09T06:59:59Z": "2025-03-09",  # 01:59:59 EST
    "2025-03-09T07:00:00Z": "2025-03-09",  # 03:00 EDT
    "2025-03-10T03:59:59Z": "2025-03-09",  # 23:59:59 EDT, the first evening of summer time
    "2025-03-10T04:00:00Z": "2025-03-10",  # midnight EDT
    "2025-03-10T20:30:00Z": "2025-03-10",  # 16:30 EDT
    "2025-07-01T03:59:59.999999Z": "2025-06-30",  # the last microsecond of a summer day
    "2025-11-02T03:59:59Z": "2025-11-01",  # 23:59:59 EDT
    "2025-11-02T04:00:00Z": "2025-11-02",  # midnight EDT
    "2025-11-02T05:30:00Z": "2025-11-02",  # 01:30 EDT
    "2025-11-02T06:30:00Z": "2025-11-02",  # 01:30 EST, the hour lived twice
    "2025-11-03T04:30:00Z": "2025-11-02",  # 23:30 EST, the first evening of winter time
    "2025-11-03T04:59:59Z": "2025-11-02",  # 23:59:59 EST
    "2025-11-03T05:00:00Z": "2025-11-03",  # midnight EST
    "2025-11-03T21:30:00Z": "2025-11-03",  # 16:30 EST
}


def store_instants(connection: Connection, instants: list[datetime]) -> int:
    """One ticket whose deadline rows are met at `instants` (commitment "c<index>")."""
    row = ticket(connection, "MRI-2025-00001")
    deadline_rows.insert_deadlines(
        connection,
        row.id,
        {
            f"c{index}": {
                "clock_start": day("2025-01-02"),
                "due_date": day("2025-01-02"),
                "due_at": at("2025-01-03T05:00:00Z"),
                "met_at": instant,
                "days_on_hold": 0,
            }
            for index, instant in enumerate(instants)
        },
    )
    return row.id


def office_dates_in_sql(
    connection: Connection, ticket_id: int, first: datetime, last: datetime
) -> dict[str, str]:
    """commitment -> the office date the database gives for its `met_at`, as ISO text (SQLite
    gives text, PostgreSQL a date)."""
    office_date = office_date_sql(DEADLINE.c.met_at, connection.dialect.name, CALENDAR, first, last)
    rows = connection.execute(
        sa.select(DEADLINE.c.commitment, office_date).where(DEADLINE.c.ticket_id == ticket_id)
    )
    return {commitment: str(value) for commitment, value in rows}


def test_one_query_over_both_changes_gives_each_instant_its_office_date(
    connection: Connection,
) -> None:
    instants = [at(text) for text in OFFICE_DATES]
    ticket_id = store_instants(connection, instants)
    found = office_dates_in_sql(connection, ticket_id, min(instants), max(instants))
    assert found == {f"c{index}": date for index, date in enumerate(OFFICE_DATES.values())}


@pytest.mark.parametrize(("instant", "office_date"), OFFICE_DATES.items())
def test_each_instant_alone_has_its_office_date(
    connection: Connection, instant: str, office_date: str
) -> None:
    """A range of one instant: no change of offset inside it."""
    ticket_id = store_instants(connection, [at(instant)])
    assert office_dates_in_sql(connection, ticket_id, at(instant), at(instant)) == {
        "c0": office_date
    }
    assert CALENDAR.office_date(at(instant)) == day(office_date)


def test_a_range_that_starts_in_summer_time_and_ends_in_winter_time(
    connection: Connection,
) -> None:
    instants = [at("2025-10-31T03:30:00Z"), at("2025-11-03T04:30:00Z")]
    ticket_id = store_instants(connection, instants)
    assert office_dates_in_sql(connection, ticket_id, instants[0], instants[1]) == {
        "c0": "2025-10-30",  # 23:30 EDT
        "c1": "2025-11-02",  # 23:30 EST
    }
