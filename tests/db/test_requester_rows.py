"""The rows of one requester's access request: their tickets whatever the case of the
address, each with its own messages and the mail sent to them, in order (the function reads
on a connection of its own, so the rows are committed first)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from mailbot.db import deadline_rows, hold_rows, requester_rows, ticket_rows
from tests.db.seed import at, day, inbound, queued, ticket

T = at("2025-03-03T14:00:00Z")


def test_a_requesters_tickets_with_what_hangs_off_each(committing_engine: Engine) -> None:
    with committing_engine.begin() as connection:
        mine = ticket(connection, "MRI-2025-00001", requester="Citoyen@Example.org")
        ticket(connection, "MRI-2025-00002", requester="autre@example.org")
        later = ticket(
            connection,
            "MRI-2025-00003",
            requester="citoyen@example.org",
            received_at="2025-03-04T14:00:00Z",
        )
        inbound(connection, ticket_id=mine.id, raw=b"request")
        inbound(connection, ticket_id=mine.id, kind="staff_reply", raw=b"staff")
        inbound(connection, ticket_id=mine.id, kind="follow_up", raw=b"follow-up")
        queued(connection, "ack", ticket_id=mine.id, recipient="citoyen@example.org")
        queued(connection, "notice", ticket_id=mine.id, recipient="agent@mri.gouv.qc.ca")
        deadline_rows.insert_deadlines(
            connection,
            mine.id,
            {
                "ack": {
                    "clock_start": day("2025-03-03"),
                    "due_date": day("2025-03-05"),
                    "due_at": at("2025-03-06T05:00:00Z"),
                    "days_on_hold": 0,
                }
            },
        )
        hold_rows.open_hold(connection, mine.id, T, "pièce", "agent", "incomplete")
        ticket_rows.add_event(connection, mine.id, T, "opened")
    found = requester_rows.requester_tickets(committing_engine, "citoyen@example.org")
    assert [item.ticket.ref for item in found] == ["MRI-2025-00001", "MRI-2025-00003"]
    first = found[0]
    assert [(r.kind, r.raw) for r in first.received] == [
        ("new_request", b"request"),
        ("follow_up", b"follow-up"),
    ]
    assert [s.purpose for s in first.sent] == ["acknowledgement"]
    assert [d.commitment for d in first.deadlines] == ["ack"]
    assert [(h.kind, h.started_at, h.ended_at) for h in first.holds] == [("incomplete", T, None)]
    assert [e.kind for e in first.events] == ["opened"]
    assert found[1].ticket.id == later.id and found[1].received == ()
