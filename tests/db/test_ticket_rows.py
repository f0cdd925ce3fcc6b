"""Ticket rows and their event log: an instant stamped once, a status moved only from the
one expected, a ticket marked answered, lookups by reference and by the Message-ID of a stored
message."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mailbot.db import ticket_rows
from tests.db.seed import at, day, inbound, queued, ticket

T = at("2025-03-03T14:00:00Z")
LATER = at("2025-03-03T15:00:00Z")


def read(connection: Connection, ticket_id: int) -> ticket_rows.TicketRow:
    found = ticket_rows.ticket_by_id(connection, ticket_id)
    assert found is not None
    return found


def test_a_new_ticket_is_open_and_read_back_as_written(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001", received_at="2025-03-03T14:00:00.5Z")
    assert row.status == "open"
    read = ticket_rows.ticket_by_id(connection, row.id)
    assert read == ticket_rows.ticket_by_ref(connection, "MRI-2025-00001") == row
    assert read is not None and read.received_at == at("2025-03-03T14:00:00.5Z")
    assert read.receipt_date == day("2025-03-03")
    assert ticket_rows.ticket_by_ref(connection, "MRI-2025-99999") is None


def test_an_instant_is_stamped_only_once_and_unstamped_only_if_it_is_that_one(
    connection: Connection,
) -> None:
    row = ticket(connection, "MRI-2025-00001")
    ticket_rows.stamp_first(connection, row.id, "acknowledged_at", T)
    ticket_rows.stamp_first(connection, row.id, "acknowledged_at", LATER)
    record = ticket_rows.ticket_record(connection, "MRI-2025-00001")
    assert record is not None and record["acknowledged_at"] == T
    ticket_rows.unstamp(connection, row.id, "acknowledged_at", LATER)
    record = ticket_rows.ticket_record(connection, "MRI-2025-00001")
    assert record is not None and record["acknowledged_at"] == T
    ticket_rows.unstamp(connection, row.id, "acknowledged_at", T)
    record = ticket_rows.ticket_record(connection, "MRI-2025-00001")
    assert record is not None and record["acknowledged_at"] is None


def test_a_status_moves_only_from_the_status_expected(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    ticket_rows.set_status_where(connection, row.id, T, "answered", was="on_hold")
    assert read(connection, row.id).status == "open"
    ticket_rows.set_status_where(connection, row.id, T, "answered", was="open")
    assert read(connection, row.id).status == "answered"


def test_a_ticket_is_marked_answered_once_and_only_from_open(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    ticket_rows.mark_answered(connection, row.id, T, LATER)
    ticket_rows.mark_answered(connection, row.id, LATER, LATER)
    record = ticket_rows.ticket_record(connection, "MRI-2025-00001")
    assert record is not None
    assert (record["answered_at"], record["status"], record["updated_at"]) == (T, "answered", LATER)
    held = ticket(connection, "MRI-2025-00002", status="on_hold")
    ticket_rows.mark_answered(connection, held.id, T, T)
    assert read(connection, held.id).status == "on_hold"


def test_the_due_date_is_set_and_cleared(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    ticket_rows.set_due_date(connection, row.id, day("2025-03-05"), T)
    assert read(connection, row.id).due_date == day("2025-03-05")
    ticket_rows.set_due_date(connection, row.id, None, LATER)
    record = ticket_rows.ticket_record(connection, "MRI-2025-00001")
    assert record is not None and (record["due_date"], record["updated_at"]) == (None, LATER)


def test_tickets_are_found_by_reference_and_by_the_message_ids_they_hold(
    connection: Connection,
) -> None:
    first = ticket(connection, "MRI-2025-00001")
    second = ticket(connection, "MRI-2025-00002")
    inbound(connection, ticket_id=first.id, message_id="<a@example.org>")
    inbound(connection, ticket_id=second.id, message_id="<b@example.org>")
    inbound(connection, message_id="<c@example.org>")  # on no ticket
    found = ticket_rows.tickets_by_ref(connection, ["MRI-2025-00002", "MRI-2025-00009"])
    assert list(found) == ["MRI-2025-00002"] and found["MRI-2025-00002"].id == second.id
    assert ticket_rows.tickets_by_ref(connection, []) == {}
    assert ticket_rows.tickets_of_message_ids(
        connection, ["<a@example.org>", "<b@example.org>", "<c@example.org>"]
    ) == {"<a@example.org>": "MRI-2025-00001", "<b@example.org>": "MRI-2025-00002"}
    assert ticket_rows.tickets_of_message_ids(connection, []) == {}


def test_the_actor_of_an_event_is_found_by_its_outbox_row(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    relayed = queued(connection, "reply:1", ticket_id=row.id, purpose="reply")
    ticket_rows.add_event(
        connection,
        row.id,
        T,
        "reply_relayed",
        "x" * 5000,
        actor="agent@mri.gouv.qc.ca",
        outbox_id=relayed,
    )
    assert ticket_rows.actor_of(connection, relayed, "reply_relayed") == "agent@mri.gouv.qc.ca"
    assert ticket_rows.actor_of(connection, relayed, "referral_queued") is None
    [event] = ticket_rows.ticket_history(connection, row.id)["events"]
    assert (event["kind"], len(event["detail"]), event["at"]) == ("reply_relayed", 4000, T)


def test_ticket_records_oldest_first_of_one_status_or_mailbox(connection: Connection) -> None:
    ticket(connection, "MRI-2025-00002", received_at="2025-03-04T14:00:00Z", mailbox="plaintes")
    ticket(connection, "MRI-2025-00001", received_at="2025-03-03T14:00:00Z", status="answered")
    ticket(connection, "MRI-2025-00003", received_at="2025-03-05T14:00:00Z")
    refs = [record["ref"] for record in ticket_rows.ticket_records(connection)]
    assert refs == ["MRI-2025-00001", "MRI-2025-00002", "MRI-2025-00003"]
    opened = ticket_rows.ticket_records(connection, status="open")
    assert [record["ref"] for record in opened] == ["MRI-2025-00002", "MRI-2025-00003"]
    complaints = ticket_rows.ticket_records(connection, mailbox="plaintes")
    assert [record["ref"] for record in complaints] == ["MRI-2025-00002"]
