"""The report's figures from one fixed set of tickets, the same on SQLite and PostgreSQL:
counts per (commitment, queue, month of clock start), reply delays by office date, the case
listing and the incomplete requests, as of one instant."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Connection

from mailbot.db import deadline_rows, hold_rows, report_rows, ticket_rows
from mailbot.db.report_rows import CaseFilter, CaseRow, CountRow, DelayRow, IncompleteRow
from mailbot.settings import CalendarSettings
from mailbot.standards.business_calendar import build_calendar
from tests.db.seed import at, day, ticket

CALENDAR = build_calendar(CalendarSettings(), "America/Toronto")
AS_OF = "2025-04-15T16:00:00Z"  # Tuesday 12:00 EDT
R, P = "renseignements", "plaintes"

# ref: (queue, status, {commitment: (clock start, due date, reply or None, days on hold)},
#       [(hold kind, start, end or None)])
Deadlines = dict[str, tuple[str, str, str | None, int]]
Holds = list[tuple[str, str, str | None]]
TICKETS: dict[str, tuple[str, str, Deadlines, Holds]] = {
    "MRI-2025-00001": (
        R,
        "answered",
        {
            "ack": ("2025-03-03", "2025-03-05", "2025-03-04T15:00:00Z", 0),  # met
            "info_reply": ("2025-03-03", "2025-03-31", "2025-04-02T14:00:00Z", 0),  # late
        },
        [],
    ),
    "MRI-2025-00002": (
        R,
        "on_hold",
        {
            "ack": ("2025-03-10", "2025-03-12", None, 0),  # open and late: the hold came after
            "info_reply": ("2025-03-10", "2025-04-07", None, 18),  # pending: paused
        },
        [("wait", "2025-03-20T15:00:00Z", None)],
    ),
    "MRI-2025-00003": (
        R,
        "answered",
        # met: 23:59:59.999999 EDT on the due day, dated that day
        {"ack": ("2025-03-17", "2025-03-19", "2025-03-20T03:59:59.999999Z", 0)},
        [],
    ),
    "MRI-2025-00004": (  # a merged duplicate: left out
        R,
        "closed",
        {"ack": ("2025-03-17", "2025-03-19", "2025-03-18T15:00:00Z", 0)},
        [("incomplete", "2025-03-17T15:00:00Z", "2025-03-18T15:00:00Z")],
    ),
    "MRI-2025-00005": (
        P,
        "answered",
        {"ack": ("2025-03-04", "2025-03-06", "2025-03-06T16:00:00Z", 0)},  # met, 11:00 EST
        [],
    ),
    "MRI-2025-00006": (
        R,
        "open",
        {"ack": ("2025-04-01", "2025-04-03", None, 0)},  # open and late
        [("incomplete", "2025-04-01T15:00:00Z", "2025-04-02T15:00:00Z")],
    ),
    "MRI-2025-00007": (
        R,
        "on_hold",
        {
            "ack": ("2025-04-07", "2025-04-09", None, 0),  # open and late: not paused
            "info_reply": ("2025-04-07", "2025-04-10", None, 3),  # pending: paused
        },
        [("incomplete", "2025-04-08T15:00:00Z", None)],
    ),
    "MRI-2025-00008": (  # before the period: left out
        R,
        "answered",
        {"ack": ("2025-02-24", "2025-02-26", "2025-02-25T15:00:00Z", 0)},
        [],
    ),
    "MRI-2025-00009": (
        R,
        "open",
        # pending: the reply comes after the instant of the report
        {"ack": ("2025-04-14", "2025-04-16", "2025-04-15T18:00:00Z", 0)},
        [],
    ),
    "MRI-2025-00010": (
        P,
        "answered",
        {"ack": ("2025-03-04", "2025-03-06", "2025-03-06T20:00:00Z", 0)},  # met, 15:00 EST
        [],
    ),
}


def store(connection: Connection) -> None:
    for ref, (queue, status, deadlines, holds) in TICKETS.items():
        first_start = min(start for start, _, _, _ in deadlines.values())
        row = ticket(connection, ref, received_at=f"{first_start}T14:00:00Z", mailbox=queue)
        now = at(f"{first_start}T14:00:00Z")
        ticket_rows.set_ticket_fields(connection, row.id, now, status=status)
        if ref == "MRI-2025-00004":
            ticket_rows.set_ticket_fields(
                connection, row.id, now, closed_reason="merged", merged_into="MRI-2025-00003"
            )
        deadline_rows.insert_deadlines(
            connection,
            row.id,
            {
                commitment: {
                    "clock_start": day(start),
                    "due_date": day(due),
                    "due_at": CALENDAR.end_of_day(day(due)),
                    "met_at": at(met) if met else None,
                    "days_on_hold": on_hold,
                }
                for commitment, (start, due, met, on_hold) in deadlines.items()
            },
        )
        for kind, started, ended in holds:
            hold_rows.open_hold(connection, row.id, at(started), "", "agent", kind)
            if ended is not None:
                hold_rows.close_hold(connection, row.id, at(ended), "citoyen")


def cases(queue: str | None = None, restarting: tuple[str, ...] = ("info_reply",)) -> CaseFilter:
    return CaseFilter(
        since=day("2025-03-01"),
        until=day("2025-04-30"),
        queue=queue,
        as_of=at(AS_OF),
        restarting=restarting,
        excluded_reasons=("merged",),
    )


def count(
    commitment: str,
    queue: str,
    month: str,
    cases: int,
    met: int,
    late: int,
    open_late: int,
    days_on_hold: int,
    cases_with_hold: int,
    answers: tuple[str, ...] = (),
) -> CountRow:
    """A count row, with the first and last reply instants (`answers`)."""
    first, last = (at(answers[0]), at(answers[-1])) if answers else (None, None)
    return CountRow(
        commitment,
        queue,
        day(month),
        cases,
        met,
        late,
        open_late,
        days_on_hold,
        cases_with_hold,
        first,
        last,
    )


def test_the_counts_per_commitment_queue_and_month(connection: Connection) -> None:
    store(connection)
    found = sorted(report_rows.count_rows(connection, cases()))
    assert found == sorted(
        [
            count(
                "ack",
                P,
                "2025-03-01",
                2,
                2,
                0,
                0,
                0,
                0,
                answers=("2025-03-06T16:00:00Z", "2025-03-06T20:00:00Z"),
            ),
            count(
                "ack",
                R,
                "2025-03-01",
                3,
                2,
                0,
                1,
                0,
                0,
                answers=("2025-03-04T15:00:00Z", "2025-03-20T03:59:59.999999Z"),
            ),
            count("ack", R, "2025-04-01", 3, 0, 0, 2, 0, 0),
            count(
                "info_reply", R, "2025-03-01", 2, 0, 1, 0, 18, 1, answers=("2025-04-02T14:00:00Z",)
            ),
            count("info_reply", R, "2025-04-01", 1, 0, 0, 0, 3, 1),
        ]
    )
    assert all(row.first_answer is None or row.first_answer.tzinfo for row in found)


def test_an_open_incomplete_pauses_only_the_commitments_counted_from_the_complete_request(
    connection: Connection,
) -> None:
    store(connection)
    april = [
        row
        for row in report_rows.count_rows(connection, cases(restarting=()))
        if row.commitment == "info_reply" and row.month == date(2025, 4, 1)
    ]
    assert april == [count("info_reply", R, "2025-04-01", 1, 0, 0, 1, 3, 1)]


def test_one_queue_counts_only_its_tickets(connection: Connection) -> None:
    store(connection)
    assert report_rows.count_rows(connection, cases(P)) == [
        count(
            "ack",
            P,
            "2025-03-01",
            2,
            2,
            0,
            0,
            0,
            0,
            answers=("2025-03-06T16:00:00Z", "2025-03-06T20:00:00Z"),
        )
    ]
    assert report_rows.queue_has_tickets(connection, P)
    assert not report_rows.queue_has_tickets(connection, "autre")


def test_the_replies_are_counted_by_the_office_date_they_were_sent(
    connection: Connection,
) -> None:
    """The range of reply instants spans the change to summer time (2025-03-09)."""
    store(connection)
    first, last = at("2025-03-04T15:00:00Z"), at("2025-04-02T14:00:00Z")
    found = sorted(report_rows.delay_rows(connection, cases(), CALENDAR, first, last))
    assert found == sorted(
        [
            DelayRow("ack", P, day("2025-03-04"), day("2025-03-06"), 0, 2),
            DelayRow("ack", R, day("2025-03-03"), day("2025-03-04"), 0, 1),
            DelayRow("ack", R, day("2025-03-17"), day("2025-03-19"), 0, 1),
            DelayRow("info_reply", R, day("2025-03-03"), day("2025-04-02"), 0, 1),
        ]
    )


def case(ref: str, commitment: str, outcome: str, status: str, met: str | None = None) -> CaseRow:
    queue, _, deadlines, _ = TICKETS[ref]
    start, due, _, on_hold = deadlines[commitment]
    first = min(s for s, _, _, _ in deadlines.values())
    return CaseRow(
        ref,
        commitment,
        queue,
        day(start),
        day(due),
        at(met) if met else None,
        outcome,
        on_hold,
        status,
        day(first),
    )


def test_the_case_listing_in_order_with_each_outcome(connection: Connection) -> None:
    store(connection)
    assert list(report_rows.case_rows(connection, cases())) == [
        case("MRI-2025-00005", "ack", "met", "answered", "2025-03-06T16:00:00Z"),
        case("MRI-2025-00010", "ack", "met", "answered", "2025-03-06T20:00:00Z"),
        case("MRI-2025-00001", "ack", "met", "answered", "2025-03-04T15:00:00Z"),
        case("MRI-2025-00002", "ack", "open_late", "on_hold"),
        case("MRI-2025-00003", "ack", "met", "answered", "2025-03-20T03:59:59.999999Z"),
        case("MRI-2025-00006", "ack", "open_late", "open"),
        case("MRI-2025-00007", "ack", "open_late", "on_hold"),
        case("MRI-2025-00009", "ack", "pending", "open"),  # its reply is not known yet
        case("MRI-2025-00001", "info_reply", "late", "answered", "2025-04-02T14:00:00Z"),
        case("MRI-2025-00002", "info_reply", "pending", "on_hold"),
        case("MRI-2025-00007", "info_reply", "pending", "on_hold"),
    ]


def test_the_incomplete_requests_of_the_listed_tickets(connection: Connection) -> None:
    store(connection)
    assert list(report_rows.incomplete_rows(connection, cases())) == [
        IncompleteRow("MRI-2025-00006", at("2025-04-01T15:00:00Z"), at("2025-04-02T15:00:00Z")),
        IncompleteRow("MRI-2025-00007", at("2025-04-08T15:00:00Z"), None),
    ]
