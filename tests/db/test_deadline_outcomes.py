"""A deadline row's outcome as of an instant in SQL (`outcome_sql`) is the one
`standards.compliance.deadline_outcome` gives, case by case: replies, holds and the instant
of the count before, at and after the due instant. (tests/standards/test_outcome_properties.py
checks the same over random histories, through the digest and the report.)"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db import deadline_rows, hold_rows
from mailbot.db.models import DEADLINE
from mailbot.db.outcome import outcome_sql
from mailbot.standards.business_calendar import Hold
from mailbot.standards.compliance import deadline_outcome, is_paused
from tests.db.seed import at, day, ticket

DUE = "2025-03-06T05:00:00Z"  # the end of Wednesday 2025-03-05 in Montréal (EST)
BEFORE, AFTER = "2025-03-06T04:59:59Z", "2025-03-06T05:00:01Z"
LATER = "2025-03-10T15:00:00Z"
NOON = "2025-03-05T17:00:00Z"  # the due day, 12:00 EST


@dataclass(frozen=True, slots=True)
class Case:
    """A deadline due at DUE, replied at `met_at` (or not), with `holds` (start, end, kind)
    on its ticket, counted as of `as_of`."""

    as_of: str
    met_at: str | None = None
    holds: tuple[tuple[str, str | None, str], ...] = ()
    commitment: str = "ack"


CASES = {
    # Replies.
    "a reply before the due instant is met": (Case(LATER, met_at=BEFORE), "met"),
    "a reply at the due instant is late": (Case(LATER, met_at=DUE), "late"),
    "a reply after it is late": (Case(LATER, met_at=AFTER), "late"),
    "a reply recorded after the instant of the count is not known yet": (
        Case(BEFORE, met_at=DUE),
        "pending",
    ),
    "a reply recorded at the instant of the count is known": (
        Case(BEFORE, met_at=BEFORE),
        "met",
    ),
    "a late reply not known yet, once the deadline passed, is open and late": (
        Case(AFTER, met_at=LATER),
        "open_late",
    ),
    # No reply.
    "no reply before the due instant is pending": (Case(BEFORE), "pending"),
    "no reply at the due instant is open and late": (Case(DUE), "open_late"),
    # Holds (kind "wait", `attente`, pauses every commitment).
    "a hold begun before the deadline and still open pauses it": (
        Case(LATER, holds=(("2025-03-04T15:00:00Z", None, "wait"),)),
        "pending",
    ),
    "a hold begun at the due instant pauses nothing": (
        Case(LATER, holds=((DUE, None, "wait"),)),
        "open_late",
    ),
    "a hold that ended before the count pauses nothing": (
        Case(LATER, holds=(("2025-03-04T15:00:00Z", "2025-03-07T15:00:00Z", "wait"),)),
        "open_late",
    ),
    "a hold that ends at the instant of the count no longer pauses": (
        Case(LATER, holds=(("2025-03-04T15:00:00Z", LATER, "wait"),)),
        "open_late",
    ),
    "a hold that ends after the count still pauses": (
        Case(LATER, holds=(("2025-03-04T15:00:00Z", "2025-03-11T15:00:00Z", "wait"),)),
        "pending",
    ),
    "a hold begun a second before the deadline pauses it": (
        Case(AFTER, holds=((BEFORE, None, "wait"),)),
        "pending",
    ),
    # Before the deadline every unanswered case is pending; whether its clock is paused
    # (the metrics leave paused clocks out) depends on the holds known at the count.
    "a hold begun at the instant of the count pauses the clock": (
        Case(NOON, holds=((NOON, None, "wait"),)),
        "pending",
    ),
    "a hold begun after the count does not pause it yet": (
        Case(NOON, holds=(("2025-03-05T17:00:01Z", None, "wait"),)),
        "pending",
    ),
    "a second hold still open pauses when the first ended": (
        Case(
            LATER,
            holds=(
                ("2025-03-03T15:00:00Z", "2025-03-04T15:00:00Z", "wait"),
                ("2025-03-05T15:00:00Z", None, "wait"),
            ),
        ),
        "pending",
    ),
    "a hold does not undo a reply": (
        Case(LATER, met_at=AFTER, holds=(("2025-03-04T15:00:00Z", None, "wait"),)),
        "late",
    ),
    # Incomplete requests (kind "incomplete") pause only the commitments counted from the
    # complete request ("info_reply" here), not the acknowledgement.
    "an open incomplete pauses a commitment counted from the complete request": (
        Case(LATER, holds=(("2025-03-04T15:00:00Z", None, "incomplete"),), commitment="info_reply"),
        "pending",
    ),
    "an open incomplete does not pause the acknowledgement": (
        Case(LATER, holds=(("2025-03-04T15:00:00Z", None, "incomplete"),), commitment="ack"),
        "open_late",
    ),
}
RESTARTING = ("info_reply",)


def store(connection: Connection, case: Case) -> int:
    """The case's ticket, deadline row and holds; the deadline row's id."""
    row = ticket(connection, "MRI-2025-00001", received_at="2025-03-03T14:00:00Z")
    deadline_rows.insert_deadlines(
        connection,
        row.id,
        {
            case.commitment: {
                "clock_start": day("2025-03-03"),
                "due_date": day("2025-03-05"),
                "due_at": at(DUE),
                "met_at": at(case.met_at) if case.met_at else None,
                "days_on_hold": 0,
            }
        },
    )
    for start, end, kind in case.holds:
        hold_rows.open_hold(connection, row.id, at(start), "", "agent@mri.gouv.qc.ca", kind)
        if end is not None:
            hold_rows.close_hold(connection, row.id, at(end), "citoyen@example.org")
    return deadline_rows.deadlines_of(connection, row.id)[case.commitment].id


@pytest.mark.parametrize(("case", "expected"), CASES.values(), ids=list(CASES))
def test_the_sql_outcome_is_the_rules_outcome(
    connection: Connection, case: Case, expected: str
) -> None:
    row_id = store(connection, case)
    as_of = at(case.as_of)
    sql = outcome_sql(as_of, restarting=RESTARTING)
    found = connection.execute(
        sa.select(
            sql.outcome.label("outcome"),
            sql.is_answered,
            sql.is_met,
            sql.is_late,
            sql.is_open_late,
            sql.is_paused,
        ).where(DEADLINE.c.id == row_id)
    ).one()
    pausing = [
        Hold(at(start), at(end) if end else None)
        for start, end, kind in case.holds
        if kind == "wait" or case.commitment in RESTARTING
    ]
    rule = deadline_outcome(at(DUE), at(case.met_at) if case.met_at else None, pausing, as_of)
    assert found.outcome == rule.value == expected
    assert [bool(flag) for flag in found[1:]] == [
        expected in ("met", "late"),
        expected == "met",
        expected == "late",
        expected == "open_late",
        is_paused(at(DUE), pausing, as_of),
    ]


def test_the_pausing_cases_pause_and_the_others_do_not() -> None:
    """The table above holds cases on both sides of `is_paused`."""
    paused = {
        name
        for name, (case, _) in CASES.items()
        if is_paused(
            at(DUE),
            [
                Hold(at(start), at(end) if end else None)
                for start, end, kind in case.holds
                if kind == "wait" or case.commitment in RESTARTING
            ],
            at(case.as_of),
        )
    }
    assert paused == {
        "a hold begun before the deadline and still open pauses it",
        "a hold that ends after the count still pauses",
        "a hold begun a second before the deadline pauses it",
        "a hold begun at the instant of the count pauses the clock",
        "a second hold still open pauses when the first ended",
        "a hold does not undo a reply",
        "an open incomplete pauses a commitment counted from the complete request",
    }
