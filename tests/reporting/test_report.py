"""The service-standards report as a specification: known cases in, hand-counted figures out.

Every expected figure below was counted by hand from the cases in `CASES` with the rules of
docs/report-rules.md, on the public-service calendar (holidays 2025-12-24, 25, 26, 31,
2026-01-01, 02). The report is made as of Thursday 2026-01-15 12:00 office time, for the clock
starts of November and December 2025. No conftest fixture is used.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mailbot.db.models import Ticket, TicketDeadline, TicketHold, UtcDateTime
from mailbot.db.report_rows import office_date_sql, offset_segments
from mailbot.db.store import make_engine, migrate, session_scope
from mailbot.errors import NotFound
from mailbot.reporting.report import (
    Figures,
    Report,
    ReportRequest,
    build_report,
    nearest_rank,
    render_report,
)
from mailbot.settings import CalendarSettings, Settings, load_settings
from mailbot.standards.business_calendar import BusinessCalendar, Hold, build_calendar

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
TORONTO = ZoneInfo("America/Toronto")
NOVEMBER, DECEMBER = date(2025, 11, 1), date(2025, 12, 1)


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """An aware instant given as office wall time (America/Toronto)."""
    return datetime(year, month, day, hour, minute, tzinfo=TORONTO)


AS_OF = local(2026, 1, 15, 12)
PERIOD = ReportRequest(since=date(2025, 11, 1), until=date(2025, 12, 31))


@dataclass(frozen=True)
class Clock:
    """One deadline row: commitment, clock start, due date, reply instant, days on hold."""

    commitment: str
    start: date
    due: date
    met_at: datetime | None = None
    days_on_hold: int = 0


@dataclass(frozen=True)
class Given:
    ref: str
    mailbox: str
    category: str
    status: str
    received_at: datetime
    clocks: tuple[Clock, ...]
    holds: tuple[tuple[datetime, datetime | None], ...] = ()


D = date
# fmt: off
CASES = (
    # -- renseignements -------------------------------------------------------------------------
    Given("MRI-2025-00001", "renseignements", "information", "answered", local(2025, 11, 3, 10), (
        Clock("ack", D(2025, 11, 3), D(2025, 11, 5), local(2025, 11, 3, 10, 5)),  # met, 0
        Clock("info_reply", D(2025, 11, 3), D(2025, 11, 17), local(2025, 11, 14, 15)),  # met, 9
    )),
    # Friday 17:05, after the cutoff: day 0 is Monday 12-22; the ack left at once, on the 19th.
    Given("MRI-2025-00002", "renseignements", "information", "answered",
          local(2025, 12, 19, 17, 5), (
        Clock("ack", D(2025, 12, 22), D(2025, 12, 29), local(2025, 12, 19, 17, 6)),  # met, 0
        # 23:59 office time on the due day is 04:59 UTC the next day: still met, 10 days.
        Clock("info_reply", D(2025, 12, 22), D(2026, 1, 13),
              datetime(2026, 1, 14, 4, 59, tzinfo=UTC)),
    )),
    Given("MRI-2025-00003", "renseignements", "information", "open", local(2025, 12, 23, 9), (
        Clock("ack", D(2025, 12, 23), D(2025, 12, 30), local(2026, 1, 5, 10)),  # late, 3
        Clock("info_reply", D(2025, 12, 23), D(2026, 1, 14)),  # open, past due: open_late
    )),
    # On hold from Thu 11-06 10:00 to Mon 11-10 09:00: Fri 7 and Mon 10 paused.
    Given("MRI-2025-00004", "renseignements", "information", "answered", local(2025, 11, 5, 10), (
        Clock("ack", D(2025, 11, 5), D(2025, 11, 7), local(2025, 11, 5, 11)),  # met, 0
        # 11 business days to Thu 11-20, less 2 on hold: met, 9.
        Clock("info_reply", D(2025, 11, 5), D(2025, 11, 21), local(2025, 11, 20, 14), 2),
    ), holds=((local(2025, 11, 6, 10), local(2025, 11, 10, 9)),)),
    Given("MRI-2025-00005", "renseignements", "information", "answered", local(2025, 12, 1, 10), (
        Clock("ack", D(2025, 12, 1), D(2025, 12, 3), local(2025, 12, 4, 9)),  # late, 3
        Clock("info_reply", D(2025, 12, 1), D(2025, 12, 15), local(2025, 12, 17, 11)),  # late, 12
    )),
    Given("MRI-2025-00006", "renseignements", "information", "open", local(2025, 12, 30, 10), (
        Clock("ack", D(2025, 12, 30), D(2026, 1, 6)),  # never sent: open_late
        Clock("info_reply", D(2025, 12, 30), D(2026, 1, 16)),  # not due yet: pending
    )),
    # A hold open since Wed 12-10, before the deadline: the clock is paused, not late. The row
    # was last brought up to date on 12-17 (5 days on hold); its stored due date has passed.
    Given("MRI-2025-00007", "renseignements", "information", "on_hold", local(2025, 12, 8, 10), (
        Clock("ack", D(2025, 12, 8), D(2025, 12, 10), local(2025, 12, 8, 11)),  # met, 0
        Clock("info_reply", D(2025, 12, 8), D(2026, 1, 6), None, 5),  # pending
    ), holds=((local(2025, 12, 10, 10), None),)),
    # A hold opened after the deadline had passed rescues nothing.
    Given("MRI-2025-00008", "renseignements", "information", "on_hold", local(2025, 11, 10, 10), (
        Clock("ack", D(2025, 11, 10), D(2025, 11, 12), local(2025, 11, 10, 10, 30)),  # met, 0
        Clock("info_reply", D(2025, 11, 10), D(2025, 11, 24)),  # open_late
    ), holds=((local(2025, 12, 1, 10), None),)),
    # A complaint that arrived in the information mailbox and was reclassified.
    Given("MRI-2025-00009", "renseignements", "complaint", "answered", local(2025, 11, 3, 10), (
        Clock("ack", D(2025, 11, 3), D(2025, 11, 5), local(2025, 11, 4, 9)),  # met, 1
        Clock("complaint_reply", D(2025, 11, 3), D(2025, 11, 24), local(2025, 11, 24, 16)),  # 15
    )),
    # Closed without a recorded reply: not met.
    Given("MRI-2025-00010", "renseignements", "information", "closed", local(2025, 11, 17, 10), (
        Clock("ack", D(2025, 11, 17), D(2025, 11, 19), local(2025, 11, 17, 10, 1)),  # met, 0
        Clock("info_reply", D(2025, 11, 17), D(2025, 12, 1)),  # open_late
    )),
    # -- plaintes -------------------------------------------------------------------------------
    Given("MRI-2025-00011", "plaintes", "complaint", "answered", local(2025, 11, 3, 10), (
        Clock("ack", D(2025, 11, 3), D(2025, 11, 5), local(2025, 11, 3, 10, 2)),  # met, 0
        Clock("complaint_reply", D(2025, 11, 3), D(2025, 11, 24), local(2025, 11, 25, 10)),  # 16
    )),
    Given("MRI-2025-00012", "plaintes", "complaint", "open", local(2025, 12, 19, 17, 5), (
        Clock("ack", D(2025, 12, 22), D(2025, 12, 29), local(2025, 12, 22, 9)),  # met, 0
        Clock("complaint_reply", D(2025, 12, 22), D(2026, 1, 20)),  # pending
    )),
    Given("MRI-2025-00013", "plaintes", "complaint", "answered", local(2025, 12, 1, 10), (
        Clock("ack", D(2025, 12, 1), D(2025, 12, 3), local(2025, 12, 2, 9)),  # met, 1
        Clock("complaint_reply", D(2025, 12, 1), D(2025, 12, 22), local(2025, 12, 19, 15)),  # 14
    )),
    # -- outside the period (clock starts 2025-10-31 and 2026-01-05) ----------------------------
    Given("MRI-2025-00014", "renseignements", "information", "answered", local(2025, 10, 31, 10), (
        Clock("ack", D(2025, 10, 31), D(2025, 11, 4), local(2025, 10, 31, 11)),
        Clock("info_reply", D(2025, 10, 31), D(2025, 11, 14), local(2025, 11, 3, 9)),
    )),
    Given("MRI-2026-00001", "renseignements", "information", "open", local(2026, 1, 5, 10), (
        Clock("ack", D(2026, 1, 5), D(2026, 1, 7)),
        Clock("info_reply", D(2026, 1, 5), D(2026, 1, 19)),
    )),
)
# fmt: on

# (ref, commitment) -> (outcome, delay in business days) of every case in the period.
EXPECTED_CASES = {
    ("MRI-2025-00001", "ack"): ("met", 0),
    ("MRI-2025-00001", "info_reply"): ("met", 9),
    ("MRI-2025-00002", "ack"): ("met", 0),
    ("MRI-2025-00002", "info_reply"): ("met", 10),
    ("MRI-2025-00003", "ack"): ("late", 3),
    ("MRI-2025-00003", "info_reply"): ("open_late", None),
    ("MRI-2025-00004", "ack"): ("met", 0),
    ("MRI-2025-00004", "info_reply"): ("met", 9),
    ("MRI-2025-00005", "ack"): ("late", 3),
    ("MRI-2025-00005", "info_reply"): ("late", 12),
    ("MRI-2025-00006", "ack"): ("open_late", None),
    ("MRI-2025-00006", "info_reply"): ("pending", None),
    ("MRI-2025-00007", "ack"): ("met", 0),
    ("MRI-2025-00007", "info_reply"): ("pending", None),
    ("MRI-2025-00008", "ack"): ("met", 0),
    ("MRI-2025-00008", "info_reply"): ("open_late", None),
    ("MRI-2025-00009", "ack"): ("met", 1),
    ("MRI-2025-00009", "complaint_reply"): ("met", 15),
    ("MRI-2025-00010", "ack"): ("met", 0),
    ("MRI-2025-00010", "info_reply"): ("open_late", None),
    ("MRI-2025-00011", "ack"): ("met", 0),
    ("MRI-2025-00011", "complaint_reply"): ("late", 16),
    ("MRI-2025-00012", "ack"): ("met", 0),
    ("MRI-2025-00012", "complaint_reply"): ("pending", None),
    ("MRI-2025-00013", "ack"): ("met", 1),
    ("MRI-2025-00013", "complaint_reply"): ("met", 14),
}


def figures(
    cases: int,
    met: int,
    late: int,
    open_late: int,
    pending: int,
    median: int | None,
    p90: int | None,
    hold_days: int = 0,
    with_hold: int = 0,
) -> Figures:
    return Figures(
        cases=cases,
        met=met,
        late=late,
        open_late=open_late,
        pending=pending,
        median_days=median,
        p90_days=p90,
        days_on_hold=hold_days,
        cases_with_hold=with_hold,
    )


NOTHING = figures(0, 0, 0, 0, 0, None, None)


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return build_calendar(CalendarSettings(), "America/Toronto")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config" / "mailbot.toml", environ={})


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, calendar: BusinessCalendar
) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("report") / "mailbot.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    now = local(2026, 1, 15, 12)
    with session_scope(engine) as session:
        for given in CASES:
            ticket = Ticket(
                ref=given.ref,
                mailbox=given.mailbox,
                category=given.category,
                status=given.status,
                requester="citoyen@example.org",
                language="fr",
                subject="Texte confidentiel",
                received_at=given.received_at,
                receipt_date=calendar.receipt_day(given.received_at),
                created_at=now,
                updated_at=now,
            )
            session.add(ticket)
            session.flush()
            assert ticket.id is not None
            for clock in given.clocks:
                session.add(
                    TicketDeadline(
                        ticket_id=ticket.id,
                        commitment=clock.commitment,
                        clock_start=clock.start,
                        due_date=clock.due,
                        due_at=calendar.end_of_day(clock.due),
                        met_at=clock.met_at,
                        days_on_hold=clock.days_on_hold,
                    )
                )
            for started_at, ended_at in given.holds:
                session.add(
                    TicketHold(
                        ticket_id=ticket.id,
                        started_at=started_at,
                        ended_at=ended_at,
                        reason="pièces manquantes",
                    )
                )
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def report(engine: Engine, settings: Settings, calendar: BusinessCalendar) -> Report:
    return build_report(engine, settings, calendar, PERIOD, as_of=AS_OF)


def by_id(report: Report) -> dict[str, dict[str | None, Figures]]:
    return {
        item.commitment: {line.queue: line.figures for line in (item.total, *item.queues)}
        for item in report.commitments
    }


# --- the test data agrees with the calendar ------------------------------------------------------


def test_the_literal_due_dates_are_the_calendars(calendar: BusinessCalendar) -> None:
    days = {"ack": 2, "info_reply": 10, "complaint_reply": 15}
    for given in CASES:
        for clock in given.clocks:
            if clock.days_on_hold:
                continue
            deadline = calendar.deadline(given.received_at, days[clock.commitment])
            assert (deadline.receipt_day, deadline.due_date) == (clock.start, clock.due), given.ref
    held = calendar.deadline_with_holds(
        local(2025, 11, 5, 10),
        10,
        [Hold(local(2025, 11, 6, 10), local(2025, 11, 10, 9))],
        as_of=AS_OF,
    )
    assert (held.due_date, held.days_on_hold) == (date(2025, 11, 21), 2)
    # MRI-2025-00007 as last recomputed, on 12-17 at 09:00, its hold still open.
    open_hold = calendar.deadline_with_holds(
        local(2025, 12, 8, 10), 10, [Hold(local(2025, 12, 10, 10))], as_of=local(2025, 12, 17, 9)
    )
    assert (open_hold.due_date, open_hold.days_on_hold) == (date(2026, 1, 6), 5)


# --- the figures ---------------------------------------------------------------------------------


def test_every_figure_per_commitment_and_queue(report: Report) -> None:
    assert by_id(report) == {
        "ack": {
            None: figures(13, 10, 2, 1, 0, median=0, p90=3),
            "plaintes": figures(3, 3, 0, 0, 0, median=0, p90=1),
            "renseignements": figures(10, 7, 2, 1, 0, median=0, p90=3),
        },
        "info_reply": {
            None: figures(9, 3, 1, 3, 2, median=9, p90=12, hold_days=7, with_hold=2),
            "renseignements": figures(9, 3, 1, 3, 2, median=9, p90=12, hold_days=7, with_hold=2),
        },
        "complaint_reply": {
            None: figures(4, 2, 1, 0, 1, median=15, p90=16),
            "plaintes": figures(3, 1, 1, 0, 1, median=14, p90=16),
            "renseignements": figures(1, 1, 0, 0, 0, median=15, p90=15),
        },
        # Configured commitments without a case still appear, with nothing to rate.
        "internship_ack": {None: NOTHING},
        "internship_result": {None: NOTHING},
        "cooperation_ack": {None: NOTHING},
        "cooperation_result": {None: NOTHING},
    }


def test_rates_targets_and_verdicts(report: Report) -> None:
    summary = {
        (item.commitment, line.queue): (
            line.figures.decided,
            line.figures.rate,
            item.target,
            line.target_met,
        )
        for item in report.commitments
        for line in (item.total, *item.queues)
    }
    assert summary == {
        ("ack", None): (13, 10 / 13, 0.95, False),
        ("ack", "plaintes"): (3, 1.0, 0.95, True),
        ("ack", "renseignements"): (10, 0.7, 0.95, False),
        ("info_reply", None): (7, 3 / 7, 0.90, False),
        ("info_reply", "renseignements"): (7, 3 / 7, 0.90, False),
        ("complaint_reply", None): (3, 2 / 3, 0.85, False),
        ("complaint_reply", "plaintes"): (2, 0.5, 0.85, False),
        ("complaint_reply", "renseignements"): (1, 1.0, 0.85, True),
        ("internship_ack", None): (0, None, 0.95, None),
        ("internship_result", None): (0, None, 0.85, None),
        ("cooperation_ack", None): (0, None, 0.95, None),
        ("cooperation_result", None): (0, None, 0.80, None),
    }


def test_a_rate_equal_to_the_target_meets_it() -> None:
    # 19/20 is exactly 95 %: no floating-point rounding may turn it into a miss.
    assert figures(20, 19, 1, 0, 0, 0, 0).meets(0.95) is True
    assert figures(20, 17, 3, 0, 0, 0, 0).meets(0.85) is True
    assert figures(100, 89, 11, 0, 0, 0, 0).meets(0.90) is False


def test_monthly_trend_by_month_of_clock_start(report: Report) -> None:
    trend = {
        item.commitment: [(p.month, p.met, p.decided, p.pending) for p in item.trend]
        for item in report.commitments
    }
    assert report.months == (NOVEMBER, DECEMBER)
    assert trend["ack"] == [(NOVEMBER, 6, 6, 0), (DECEMBER, 4, 7, 0)]
    assert trend["info_reply"] == [(NOVEMBER, 2, 4, 0), (DECEMBER, 1, 3, 2)]
    assert trend["complaint_reply"] == [(NOVEMBER, 1, 2, 0), (DECEMBER, 1, 1, 1)]
    assert trend["internship_ack"] == [(NOVEMBER, 0, 0, 0), (DECEMBER, 0, 0, 0)]


def test_no_listing_unless_asked(report: Report) -> None:
    assert report.cases == ()


def test_details_list_every_case_behind_the_figures(
    engine: Engine, settings: Settings, calendar: BusinessCalendar
) -> None:
    request = ReportRequest(since=PERIOD.since, until=PERIOD.until, details=True)
    report = build_report(engine, settings, calendar, request, as_of=AS_OF)
    listed = {(c.ref, c.commitment): (c.outcome, c.delay_days) for c in report.cases}
    assert listed == EXPECTED_CASES
    assert len(report.cases) == len(EXPECTED_CASES)
    held = next(c for c in report.cases if c.ref == "MRI-2025-00007" and c.commitment != "ack")
    assert (
        held.queue,
        held.clock_start,
        held.due_date,
        held.met_at,
        held.days_on_hold,
        held.status,
    ) == ("renseignements", date(2025, 12, 8), date(2026, 1, 6), None, 5, "on_hold")
    late_night = next(
        c for c in report.cases if c.ref == "MRI-2025-00002" and c.commitment == "info_reply"
    )
    assert late_night.met_at == datetime(2026, 1, 14, 4, 59, tzinfo=UTC)


def test_one_queue(engine: Engine, settings: Settings, calendar: BusinessCalendar) -> None:
    request = ReportRequest(since=PERIOD.since, until=PERIOD.until, queue="plaintes")
    report = build_report(engine, settings, calendar, request, as_of=AS_OF)
    assert by_id(report) == {
        "ack": {
            None: figures(3, 3, 0, 0, 0, median=0, p90=1),
            "plaintes": figures(3, 3, 0, 0, 0, median=0, p90=1),
        },
        "complaint_reply": {
            None: figures(3, 1, 1, 0, 1, median=14, p90=16),
            "plaintes": figures(3, 1, 1, 0, 1, median=14, p90=16),
        },
    }


def test_an_unknown_queue_is_not_found(
    engine: Engine, settings: Settings, calendar: BusinessCalendar
) -> None:
    request = ReportRequest(since=PERIOD.since, until=PERIOD.until, queue="stages-typo")
    with pytest.raises(NotFound, match="stages-typo"):
        build_report(engine, settings, calendar, request, as_of=AS_OF)


def test_as_of_decides_what_is_known(
    engine: Engine, settings: Settings, calendar: BusinessCalendar
) -> None:
    # On 2026-01-10 the reply of MRI-2025-00002 (sent 01-13) and the deadline of
    # MRI-2025-00003 (01-14) are both still in the future: two more pending cases.
    report = build_report(engine, settings, calendar, PERIOD, as_of=local(2026, 1, 10, 12))
    assert by_id(report)["info_reply"][None] == figures(
        9, 2, 1, 2, 4, median=9, p90=12, hold_days=7, with_hold=2
    )
    assert by_id(report)["ack"][None] == figures(13, 10, 2, 1, 0, median=0, p90=3)


def test_a_naive_as_of_or_a_reversed_period_is_refused(
    engine: Engine, settings: Settings, calendar: BusinessCalendar
) -> None:
    with pytest.raises(ValueError, match="aware"):
        build_report(engine, settings, calendar, PERIOD, as_of=datetime(2026, 1, 15, 12))
    with pytest.raises(ValueError, match="after"):
        ReportRequest(since=date(2025, 12, 31), until=date(2025, 11, 1))


# --- the building blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("histogram", "median", "p90"),
    [
        ({}, None, None),
        ({7: 1}, 7, 7),
        ({0: 6, 1: 1, 3: 2}, 0, 3),  # 9 values: ranks 5 and 9
        ({9: 2, 10: 1, 12: 1}, 9, 12),  # 4 values: ranks 2 and 4
        ({1: 5, 2: 5}, 1, 2),  # 10 values: ranks 5 and 9
    ],
)
def test_nearest_rank(histogram: dict[int, int], median: int | None, p90: int | None) -> None:
    from fractions import Fraction

    assert nearest_rank(histogram, Fraction(1, 2)) == median
    assert nearest_rank(histogram, Fraction(9, 10)) == p90


def test_offset_segments_find_the_dst_changes(calendar: BusinessCalendar) -> None:
    first = datetime(2025, 10, 1, tzinfo=UTC)
    last = datetime(2026, 4, 1, tzinfo=UTC)
    assert offset_segments(calendar, first, last) == [
        (first, -4 * 3600),
        (datetime(2025, 11, 2, 6, tzinfo=UTC), -5 * 3600),
        (datetime(2026, 3, 8, 7, tzinfo=UTC), -4 * 3600),
    ]


def test_office_date_in_sqlite_across_dst(engine: Engine, calendar: BusinessCalendar) -> None:
    instants = {
        datetime(2025, 11, 2, 3, 59, tzinfo=UTC): date(2025, 11, 1),  # 23:59 EDT
        datetime(2025, 11, 2, 4, 0, tzinfo=UTC): date(2025, 11, 2),  # 00:00 EDT
        datetime(2025, 11, 3, 4, 59, tzinfo=UTC): date(2025, 11, 2),  # 23:59 EST
        datetime(2025, 11, 3, 5, 0, tzinfo=UTC): date(2025, 11, 3),
        datetime(2026, 3, 8, 4, 59, tzinfo=UTC): date(2026, 3, 7),  # 23:59 EST
        datetime(2026, 3, 9, 3, 59, tzinfo=UTC): date(2026, 3, 8),  # 23:59 EDT
        datetime(2026, 3, 9, 4, 0, tzinfo=UTC): date(2026, 3, 9),
    }
    first, last = min(instants), max(instants)
    with engine.connect() as connection:
        for instant, expected in instants.items():
            column = sa.literal(instant, UtcDateTime())
            sql = office_date_sql(column, connection.dialect.name, calendar, first, last)
            assert connection.execute(sa.select(sql)).scalar() == expected.isoformat()
            assert calendar.office_date(instant) == expected


# --- the outputs ---------------------------------------------------------------------------------


def test_json(report: Report) -> None:
    data = json.loads(render_report(report, "json", TEMPLATES))
    assert (data["since"], data["until"], data["queue"], data["timezone"]) == (
        "2025-11-01",
        "2025-12-31",
        None,
        "America/Toronto",
    )
    assert data["as_of"] == "2026-01-15T12:00:00-05:00"
    assert "cases" not in data
    ack = data["commitments"][0]
    assert (ack["id"], ack["business_days"], ack["target"]) == ("ack", 2, 0.95)
    assert ack["all_queues"] == {
        "cases": 13,
        "met": 10,
        "late": 2,
        "open_late": 1,
        "pending": 0,
        "decided": 13,
        "rate": 0.7692,
        "target_met": False,
        "median_days": 0,
        "p90_days": 3,
        "days_on_hold": 0,
        "cases_with_hold": 0,
    }
    assert [q["queue"] for q in ack["queues"]] == ["plaintes", "renseignements"]
    assert ack["trend"] == [
        {"month": "2025-11", "met": 6, "decided": 6, "pending": 0, "rate": 1.0},
        {"month": "2025-12", "met": 4, "decided": 7, "pending": 0, "rate": 0.5714},
    ]
    info = data["commitments"][1]["queues"][0]
    assert info == {
        "queue": "renseignements",
        "cases": 9,
        "met": 3,
        "late": 1,
        "open_late": 3,
        "pending": 2,
        "decided": 7,
        "rate": 0.4286,
        "target_met": False,
        "median_days": 9,
        "p90_days": 12,
        "days_on_hold": 7,
        "cases_with_hold": 2,
    }


def test_json_with_details_has_the_cases(
    engine: Engine, settings: Settings, calendar: BusinessCalendar
) -> None:
    request = ReportRequest(since=PERIOD.since, until=PERIOD.until, details=True)
    report = build_report(engine, settings, calendar, request, as_of=AS_OF)
    data = json.loads(render_report(report, "json", TEMPLATES))
    assert len(data["cases"]) == 26
    assert data["cases"][0] == {
        "ref": "MRI-2025-00011",
        "commitment": "ack",
        "queue": "plaintes",
        "clock_start": "2025-11-03",
        "due_date": "2025-11-05",
        "met_at": "2025-11-03T15:02:00+00:00",
        "outcome": "met",
        "delay_days": 0,
        "days_on_hold": 0,
        "status": "answered",
        "first_receipt": "2025-11-03",
        "incomplete": "",
    }
    # Reports show references, dates and status, never what citizens wrote.
    assert "Texte confidentiel" not in json.dumps(data)
    assert "citoyen@example.org" not in json.dumps(data)


def test_csv_summary(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv", TEMPLATES))))
    assert len(rows) == 12
    assert rows[0] == {
        "commitment": "ack",
        "queue": "*",
        "business_days": "2",
        "target": "0.95",
        "cases": "13",
        "met": "10",
        "late": "2",
        "open_late": "1",
        "pending": "0",
        "decided": "13",
        "rate": "0.7692",
        "target_met": "no",
        "median_days": "0",
        "p90_days": "3",
        "days_on_hold": "0",
        "cases_with_hold": "0",
    }
    empty = next(row for row in rows if row["commitment"] == "cooperation_result")
    assert (empty["cases"], empty["rate"], empty["target_met"], empty["median_days"]) == (
        "0",
        "",
        "",
        "",
    )


def test_csv_with_details_lists_the_cases(
    engine: Engine, settings: Settings, calendar: BusinessCalendar
) -> None:
    request = ReportRequest(since=PERIOD.since, until=PERIOD.until, details=True)
    report = build_report(engine, settings, calendar, request, as_of=AS_OF)
    text = render_report(report, "csv", TEMPLATES)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == (
        "ref,commitment,queue,clock_start,due_date,met_at,outcome,delay_days,days_on_hold,status,"
        "first_receipt,incomplete"
    )
    assert {(r["ref"], r["commitment"]): r["outcome"] for r in rows} == {
        key: outcome for key, (outcome, _) in EXPECTED_CASES.items()
    }
    closed = next(r for r in rows if r["ref"] == "MRI-2025-00010" and r["commitment"] != "ack")
    assert closed == {
        "ref": "MRI-2025-00010",
        "commitment": "info_reply",
        "queue": "renseignements",
        "clock_start": "2025-11-17",
        "due_date": "2025-12-01",
        "met_at": "",
        "outcome": "open_late",
        "delay_days": "",
        "days_on_hold": "0",
        "status": "closed",
        "first_receipt": closed["first_receipt"],
        "incomplete": "",
    }


def test_table(engine: Engine, settings: Settings, calendar: BusinessCalendar) -> None:
    request = ReportRequest(since=PERIOD.since, until=PERIOD.until, details=True)
    text = render_report(
        build_report(engine, settings, calendar, request, as_of=AS_OF), "table", TEMPLATES
    )
    lines = text.splitlines()
    assert lines[0] == (
        "Service standards: clock starts 2025-11-01 to 2025-12-31, queue all, "
        "as of 2026-01-15 12:00 (America/Toronto)"
    )
    assert re.search(
        r"^ack\s+\*\s+13\s+10\s+2\s+1\s+0\s+76\.9%\s+95\.0%\s+no\s+0\s+3\s+0$", text, re.MULTILINE
    )
    assert re.search(
        r"^\s+renseignements\s+9\s+3\s+1\s+3\s+2\s+42\.9%\s+90\.0%\s+no\s+9\s+12"
        r"\s+7$",
        text,
        re.MULTILINE,
    )
    assert "cases (26)" in text
    assert re.search(
        r"^MRI-2025-00002\s+info_reply\s+renseignements\s+2025-12-22\s+2026-01-13"
        r"\s+2026-01-13 23:59\s+met\s+10\s+0\s+answered\s+\d{4}-\d\d-\d\d\s+-$",
        text,
        re.MULTILINE,
    )


def test_html_is_one_self_contained_french_page(
    engine: Engine, settings: Settings, calendar: BusinessCalendar
) -> None:
    request = ReportRequest(since=PERIOD.since, until=PERIOD.until, details=True)
    html = render_report(
        build_report(engine, settings, calendar, request, as_of=AS_OF), "html", TEMPLATES
    )
    assert html.startswith("<!DOCTYPE html>")
    assert '<html lang="fr">' in html
    assert "Respect des normes de service" in html
    assert "du lundi 1er novembre 2025 au mercredi 31 décembre 2025" not in html  # not a Monday
    assert "du samedi 1er novembre 2025 au mercredi 31 décembre 2025" in html
    # Two inline charts: rate against target, and the monthly trend.
    assert html.count("<svg") == 2
    assert html.count("<polyline") == 3  # ack, info_reply, complaint_reply
    assert "76,9&nbsp;%" in html and "42,9&nbsp;%" in html
    # Nothing is fetched: no script, stylesheet, image or font from anywhere.
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert not re.search(r"(src|href)\s*=", html)
    assert not re.search(r"https?://", html)
    # Autoescaped: an apostrophe in a label comes out as an entity.
    assert "Accusé de réception d&#39;une candidature de stage" in html
    # The listing: 26 cases, French outcomes, no citizen text.
    assert "Liste des cas (26)" in html
    assert "sans réponse, en retard" in html
    assert "Texte confidentiel" not in html


def test_unknown_format(report: Report) -> None:
    with pytest.raises(ValueError, match="format"):
        render_report(report, "pdf", TEMPLATES)
