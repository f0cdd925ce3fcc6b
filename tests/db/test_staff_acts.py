"""Staff acts per person: one row per staff message, counted while applied, held past the
hourly limit until a supervisor releases them."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mailbot.db import act_rows
from tests.db.seed import at, inbound, ticket

T = at("2025-03-03T14:00:00Z")


def test_an_act_is_recorded_once_per_staff_message(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    message = inbound(connection, ticket_id=row.id, kind="staff_reply")

    def record(state: str) -> None:
        act_rows.record(
            connection,
            person="Agent@MRI.gouv.qc.ca",
            at=T,
            ticket_id=row.id,
            inbound_id=message,
            acts=["close"],
            state=state,
        )

    record("held")
    record("applied")
    assert act_rows.state_of(connection, message) == "held"  # held stays held
    [held] = act_rows.held(connection, "agent@mri.gouv.qc.ca")
    assert (held.person, held.ref, held.acts) == ("agent@mri.gouv.qc.ca", "MRI-2025-00001", "close")
    assert act_rows.release(connection, [held.id], "Chef@MRI.gouv.qc.ca", T) == 1
    assert act_rows.release(connection, [held.id], "chef@mri.gouv.qc.ca", T) == 0
    assert [act.id for act in act_rows.released(connection)] == [held.id]
    record("applied")
    assert act_rows.state_of(connection, message) == "applied"  # replayed after its release
    assert act_rows.held(connection) == [] and act_rows.released(connection) == []


def test_applied_acts_are_counted_after_an_instant_per_person(connection: Connection) -> None:
    for n, (person, instant, state) in enumerate(
        [
            ("agent@mri.gouv.qc.ca", "2025-03-03T13:00:00Z", "applied"),
            ("agent@mri.gouv.qc.ca", "2025-03-03T13:30:00Z", "applied"),
            ("AGENT@mri.gouv.qc.ca", "2025-03-03T13:45:00Z", "applied"),
            ("agent@mri.gouv.qc.ca", "2025-03-03T13:50:00Z", "held"),
            ("autre@mri.gouv.qc.ca", "2025-03-03T13:50:00Z", "applied"),
        ]
    ):
        act_rows.record(
            connection,
            person=person,
            at=at(instant),
            ticket_id=None,
            inbound_id=inbound(connection, kind="staff_reply", uid=1000 + n),
            acts=["relay"],
            state=state,
        )
    assert (
        act_rows.applied_since(connection, "Agent@mri.gouv.qc.ca", at("2025-03-03T13:00:00Z")) == 2
    )
    assert [act.ref for act in act_rows.held(connection)] == [""]  # on no ticket
    act_rows.finish(connection, act_rows.held(connection)[0].id, "applied")
    assert (
        act_rows.applied_since(connection, "agent@mri.gouv.qc.ca", at("2025-03-03T13:00:00Z")) == 3
    )
