"""The clock rows of a ticket: one deadline per commitment, met once, reopened on demand;
one open hold at a time, never ended before it began."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mailbot.db import deadline_rows, hold_rows
from mailbot.standards.business_calendar import Hold
from tests.db.seed import at, day, ticket

T = at("2025-03-03T14:00:00Z")
LATER = at("2025-03-04T14:00:00Z")


def deadline(due: str) -> dict[str, object]:
    return {
        "clock_start": day("2025-03-03"),
        "due_date": day(due),
        "due_at": at(f"{due}T23:59:59-05:00"),
        "days_on_hold": 0,
    }


def met(connection: Connection, ticket_id: int) -> dict[str, object]:
    return {c: row.met_at for c, row in deadline_rows.deadlines_of(connection, ticket_id).items()}


def test_deadlines_are_met_once_and_only_those_named(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    deadline_rows.insert_deadlines(
        connection,
        row.id,
        {
            "ack": deadline("2025-03-05"),
            "info_reply": deadline("2025-03-31"),
            "x": deadline("2025-04-01"),
        },
    )
    deadline_rows.meet_deadlines(connection, row.id, ["ack", "info_reply"], T)
    deadline_rows.meet_deadlines(connection, row.id, ["ack"], LATER)
    assert met(connection, row.id) == {"ack": T, "info_reply": T, "x": None}
    deadline_rows.reopen_deadlines(connection, row.id, ["info_reply"])
    deadline_rows.reopen_deadlines(connection, row.id, [])
    assert met(connection, row.id) == {"ack": T, "info_reply": None, "x": None}
    deadline_rows.meet_deadlines(connection, row.id, ["info_reply", "x"], LATER)
    deadline_rows.unmeet_deadlines_at(connection, row.id, LATER)
    assert met(connection, row.id) == {"ack": T, "info_reply": None, "x": None}


def test_a_deadline_is_set_in_place_or_added_and_deleted_by_commitment(
    connection: Connection,
) -> None:
    row = ticket(connection, "MRI-2025-00001")
    other = ticket(connection, "MRI-2025-00002")
    deadline_rows.insert_deadlines(connection, row.id, {"ack": deadline("2025-03-05")})
    deadline_rows.insert_deadlines(connection, other.id, {"ack": deadline("2025-03-05")})
    deadline_rows.insert_deadlines(connection, row.id, {})
    first_id = deadline_rows.deadlines_of(connection, row.id)["ack"].id
    deadline_rows.set_deadline(connection, row.id, "ack", deadline("2025-03-06"))
    deadline_rows.set_deadline(connection, row.id, "interview", deadline("2025-03-20"))
    found = deadline_rows.deadlines_of(connection, row.id)
    assert (found["ack"].id, found["ack"].due_date) == (first_id, day("2025-03-06"))
    assert found["interview"].due_date == day("2025-03-20")
    deadline_rows.update_deadline(connection, first_id, {"due_date": day("2025-03-07")})
    assert deadline_rows.deadlines_of(connection, row.id)["ack"].due_date == day("2025-03-07")
    deadline_rows.delete_deadlines(connection, row.id, ["ack"])
    deadline_rows.delete_deadlines(connection, row.id, [])
    assert list(deadline_rows.deadlines_of(connection, row.id)) == ["interview"]
    assert deadline_rows.deadlines_of(connection, other.id)["ack"].due_date == day("2025-03-05")


def test_one_hold_is_open_at_a_time_and_ends_no_earlier_than_it_began(
    connection: Connection,
) -> None:
    row = ticket(connection, "MRI-2025-00001")
    assert not hold_rows.close_hold(connection, row.id, T, "citoyen")  # none open
    hold_rows.open_hold(connection, row.id, LATER, "pièce manquante", "agent", "incomplete")
    hold_rows.open_hold(connection, row.id, T, "ignored", "agent", "wait")  # one is open
    assert hold_rows.open_hold_kind(connection, row.id) == "incomplete"
    assert hold_rows.open_hold_start(connection, row.id) == LATER
    assert hold_rows.close_hold(connection, row.id, T, "citoyen")  # before it began
    assert hold_rows.open_hold_kind(connection, row.id) is None
    assert hold_rows.incomplete_spells(connection, row.id) == [
        hold_rows.IncompleteSpell(LATER, "pièce manquante", "agent", LATER, "citoyen")
    ]


def test_holds_are_read_by_kind_and_spells_oldest_first(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    other = ticket(connection, "MRI-2025-00002")
    spells = [
        ("wait", "2025-03-03T14:00:00Z", "2025-03-04T14:00:00Z"),
        ("incomplete", "2025-03-05T14:00:00Z", "2025-03-06T14:00:00Z"),
        ("incomplete", "2025-03-07T14:00:00Z", None),
    ]
    for kind, start, end in spells:
        hold_rows.open_hold(connection, row.id, at(start), kind, "agent", kind)
        if end:
            hold_rows.close_hold(connection, row.id, at(end), "citoyen")
    hold_rows.open_hold(connection, other.id, T, "", "agent", "wait")
    assert hold_rows.holds_of(connection, row.id) == [
        Hold(at("2025-03-03T14:00:00Z"), at("2025-03-04T14:00:00Z"))
    ]
    assert hold_rows.holds_of(connection, row.id, "incomplete") == [
        Hold(at("2025-03-05T14:00:00Z"), at("2025-03-06T14:00:00Z")),
        Hold(at("2025-03-07T14:00:00Z"), None),
    ]
    assert [spell.completed_at for spell in hold_rows.incomplete_spells(connection, row.id)] == [
        at("2025-03-06T14:00:00Z"),
        None,
    ]
    assert hold_rows.open_hold_kind(connection, other.id) == "wait"
