"""The backlog the operators' health and metrics read, as of an instant: the outbox's depth
and ages, quarantined messages, open tickets per queue, deadlines due today and overdue."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Connection

from mailbot.db import backlog, deadline_rows, hold_rows, outbox_rows
from tests.db.seed import at, day, inbound, queued, ticket

NOW = at("2025-03-05T15:00:00Z")  # Wednesday 10:00 EST
TODAY = day("2025-03-05")


def test_an_empty_database_has_an_empty_backlog(connection: Connection) -> None:
    assert backlog.backlog(connection, NOW, TODAY, braking=False) == backlog.Backlog()


def test_the_backlog_as_of_an_instant(connection: Connection) -> None:
    info = ticket(connection, "MRI-2025-00001")
    complaint = ticket(connection, "MRI-2025-00002", mailbox="plaintes")
    ticket(connection, "MRI-2025-00003", status="answered")
    closed = ticket(connection, "MRI-2025-00004", status="closed")
    held = ticket(connection, "MRI-2025-00005", status="on_hold")
    queued(connection, "ack", now="2025-03-05T14:00:00Z")
    queued(connection, "notice", purpose="notice", now="2025-03-05T14:30:00Z")
    queued(connection, "later", purpose="notice", now="2025-03-05T16:00:00Z")  # not due yet
    sent = queued(connection, "sent", purpose="notice", now="2025-03-05T13:00:00Z")
    outbox_rows.lease(connection, at("2025-03-05T13:00:00Z"), NOW, "t", 1, paced=None)
    [row] = outbox_rows.leased_rows(connection, [sent], "t")
    outbox_rows.record_attempt(connection, row, {"state": "sent", "sent_at": NOW})
    inbound(connection, state="quarantined")
    inbound(connection, state="processed")

    def due(ticket_id: int, commitment: str, due_date: str, met: str | None = None) -> None:
        deadline_rows.insert_deadlines(
            connection,
            ticket_id,
            {
                commitment: {
                    "clock_start": day("2025-03-03"),
                    "due_date": day(due_date),
                    "due_at": at(f"{due_date}T05:00:00Z") + timedelta(days=1),
                    "met_at": at(met) if met else None,
                    "days_on_hold": 0,
                }
            },
        )

    due(info.id, "ack", "2025-03-05")  # due today
    due(info.id, "info_reply", "2025-03-04")  # overdue
    due(complaint.id, "ack", "2025-03-04", met="2025-03-04T15:00:00Z")  # answered
    due(closed.id, "ack", "2025-03-04")  # closed: not counted
    due(held.id, "ack", "2025-03-04")  # paused
    hold_rows.open_hold(connection, held.id, at("2025-03-04T15:00:00Z"), "", "agent")
    found = backlog.backlog(connection, NOW, TODAY, braking=False)
    assert found == backlog.Backlog(
        outbox_depth=3,
        oldest_pending=at("2025-03-05T14:00:00Z"),
        due_since=at("2025-03-05T14:00:00Z"),
        quarantined=1,
        open_tickets={"renseignements": 1, "plaintes": 1},
        due_today={"ack": 1},
        overdue={"info_reply": 1},
    )
    braking = backlog.backlog(connection, NOW, TODAY, braking=True)
    assert braking.due_since == at("2025-03-05T14:30:00Z")  # the paced acknowledgement aside
