"""What reconciliation and the journal read and write: sent messages whose copy is still to
keep, the reference counter set back from the mail store, replayed messages' own UIDs, and a
message found only in the Sent folder recorded once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Connection

from mailbot.db import graph_rows, journal_rows, outbox_rows, ticket_rows
from tests.db.seed import at, inbound, queued

T = at("2025-03-03T14:00:00Z")


def send(connection: Connection, row_id: int, sent_at: str) -> None:
    """Lease row `row_id` alone and record it sent at `sent_at`."""
    journal_rows.lease_for(connection, row_id, "test", T + timedelta(minutes=10))
    [row] = outbox_rows.leased_rows(connection, [row_id], "test")
    assert outbox_rows.record_attempt(connection, row, {"state": "sent", "sent_at": at(sent_at)})


def test_sent_messages_wait_for_their_copy_oldest_first(connection: Connection) -> None:
    rows = [queued(connection, f"k{n}", purpose="notice") for n in range(4)]
    send(connection, rows[0], "2025-03-03T14:05:00Z")
    send(connection, rows[1], "2025-03-03T14:01:00.5Z")
    send(connection, rows[3], "2025-03-03T14:09:00Z")
    assert [c.id for c in journal_rows.copies_to_keep(connection, 10)] == [
        rows[0],
        rows[1],
        rows[3],
    ]
    assert [c.id for c in journal_rows.copies_to_keep(connection, 1, after_id=rows[0])] == [rows[1]]
    oldest = journal_rows.oldest_copy_to_keep(connection)
    assert oldest == at("2025-03-03T14:01:00.5Z") and oldest.tzinfo is not None
    journal_rows.record_copies(connection, [rows[1]], at("2025-03-03T15:00:00Z"))
    journal_rows.record_copies(connection, [rows[1], rows[3]], at("2025-03-03T16:00:00Z"))
    assert [c.id for c in journal_rows.copies_to_keep(connection, 10)] == [rows[0]]
    assert journal_rows.oldest_copy_to_keep(connection) == at("2025-03-03T14:05:00Z")


def test_nothing_to_keep_is_none(connection: Connection) -> None:
    queued(connection, "k", purpose="notice")
    assert journal_rows.copies_to_keep(connection, 10) == []
    assert journal_rows.oldest_copy_to_keep(connection) is None
    assert journal_rows.newest_arrival(connection) is None


def test_the_newest_arrival_is_aware(connection: Connection) -> None:
    inbound(connection, stored_at="2025-03-03T14:00:00Z")
    inbound(connection, stored_at="2025-03-04T09:30:00.25Z")
    newest = journal_rows.newest_arrival(connection)
    assert newest == at("2025-03-04T09:30:00.25Z") and newest.tzinfo is not None


def test_the_reference_counter_is_set_back_and_counted_on(connection: Connection) -> None:
    assert journal_rows.counter_value(connection, "MRI", 2025) == 0
    journal_rows.set_counter(connection, "MRI", 2025, 41)
    assert ticket_rows.allocate_ref(connection, "MRI", 2025) == "MRI-2025-00042"
    journal_rows.set_counter(connection, "MRI", 2025, 50)
    assert journal_rows.counter_value(connection, "MRI", 2025) == 50
    assert journal_rows.counter_value(connection, "MRI", 2026) == 0


def test_replayed_messages_are_numbered_after_the_last_replayed_of_their_mailbox(
    connection: Connection,
) -> None:
    box = "renseignements"
    assert journal_rows.next_replayed_uid(connection, box) == 1
    inbound(connection, uidvalidity=journal_rows.REPLAYED_UIDVALIDITY, uid=3)
    inbound(connection, uidvalidity=77, uid=900)
    inbound(connection, mailbox="plaintes", uidvalidity=journal_rows.REPLAYED_UIDVALIDITY, uid=8)
    assert journal_rows.next_replayed_uid(connection, box) == 4


def test_pending_rows_after_an_id_and_a_message_found_in_the_sent_folder(
    connection: Connection,
) -> None:
    rows = [queued(connection, f"k{n}", purpose="notice") for n in range(3)]
    send(connection, rows[1], "2025-03-03T14:05:00Z")
    assert [row.id for row in journal_rows.pending_rows(connection)] == [rows[0], rows[2]]
    assert [row.id for row in journal_rows.pending_rows(connection, rows[0])] == [rows[2]]
    assert journal_rows.highest_outbox_id(connection) == rows[2]
    journal_rows.mark_journalled(connection, rows[2], "<found@mri.gouv.qc.ca>", T)
    assert journal_rows.outbox_has_message_id(connection, "<found@mri.gouv.qc.ca>")
    copy: dict[str, object] = {
        "ticket_id": None,
        "purpose": "digest",
        "dedupe_key": "digest:chef@mri.gouv.qc.ca:2025-03-03",
        "message_id": "<digest@mri.gouv.qc.ca>",
        "envelope_from": "",
        "recipient": "chef@mri.gouv.qc.ca",
        "raw": b"",
        "state": "sent",
        "attempts": 1,
        "next_attempt_at": T,
        "last_error": "",
        "created_at": T,
        "sent_at": T,
        "sent_copy_at": T,
    }
    journal_rows.insert_sent_copy(connection, copy)
    journal_rows.insert_sent_copy(connection, {**copy, "message_id": "<again@mri.gouv.qc.ca>"})
    assert journal_rows.outbox_has_message_id(connection, "<digest@mri.gouv.qc.ca>")
    assert not journal_rows.outbox_has_message_id(connection, "<again@mri.gouv.qc.ca>")
    assert journal_rows.highest_outbox_id(connection) > rows[2]


def test_known_message_ids_are_ours_theirs_and_the_transports(connection: Connection) -> None:
    inbound(connection, message_id="<in@example.org>")
    inbound(connection, message_id="")
    queued(connection, "k", message_id="<ours@mri.gouv.qc.ca>")
    graph_rows.record_alias(connection, "<exch@outlook.com>", "<ours@mri.gouv.qc.ca>", T)
    assert journal_rows.known_message_ids(connection) == {
        "<in@example.org>",
        "<ours@mri.gouv.qc.ca>",
        "<exch@outlook.com>",
    }
