"""The rows a merge and a referral touch: the ticket kept behind a chain of merges, history
moved with where it came from, a ticket's own request and follow-ups (never a merged
duplicate's), and the latest referral to a body still standing."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mailbot.db import handoff, inbound_rows, ticket_rows
from mailbot.db.ticket_rows import TicketRow
from tests.db.seed import at, inbound, queued, ticket

T = at("2025-03-03T14:00:00Z")


def merged(connection: Connection, row: TicketRow, into: str) -> TicketRow:
    ticket_rows.set_ticket_fields(
        connection, row.id, T, status="closed", closed_reason="merged", merged_into=into
    )
    found = ticket_rows.ticket_by_id(connection, row.id)
    assert found is not None
    return found


def test_the_ticket_kept_is_found_at_the_end_of_a_chain_of_merges(connection: Connection) -> None:
    first = ticket(connection, "MRI-2025-00001")
    second = ticket(connection, "MRI-2025-00002")
    kept = ticket(connection, "MRI-2025-00003")
    first = merged(connection, first, "MRI-2025-00002")
    merged(connection, second, "MRI-2025-00003")
    assert handoff.kept_ticket(connection, first).ref == "MRI-2025-00003"
    assert handoff.kept_ticket(connection, kept) == kept
    lost = merged(connection, ticket(connection, "MRI-2025-00004"), "MRI-2025-09999")
    assert handoff.kept_ticket(connection, lost) == lost  # the reference is unknown
    rows = ticket_rows.tickets_by_ref(connection, ["MRI-2025-00001", "MRI-2025-00003"])
    assert {ref: row.ref for ref, row in handoff.follow_merges(connection, rows).items()} == {
        "MRI-2025-00001": "MRI-2025-00003",
        "MRI-2025-00003": "MRI-2025-00003",
    }


def test_a_loop_of_merges_ends_after_the_most_hops(connection: Connection) -> None:
    one = merged(connection, ticket(connection, "MRI-2025-00001"), "MRI-2025-00002")
    merged(connection, ticket(connection, "MRI-2025-00002"), "MRI-2025-00001")
    assert handoff.kept_ticket(connection, one).ref in {"MRI-2025-00001", "MRI-2025-00002"}


def test_history_moves_to_the_ticket_kept_remembering_its_first_ticket(
    connection: Connection,
) -> None:
    first = ticket(connection, "MRI-2025-00001")
    second = ticket(connection, "MRI-2025-00002")
    kept = ticket(connection, "MRI-2025-00003")
    message = inbound(connection, ticket_id=first.id)
    ticket_rows.add_event(connection, first.id, T, "opened")
    queued(connection, "ack", ticket_id=first.id, message_id="<ack@mri.gouv.qc.ca>")
    assert handoff.move_history(connection, first.id, second.id) == 1
    own = inbound(connection, ticket_id=second.id)
    assert handoff.move_history(connection, second.id, kept.id) == 2
    rows = ticket_rows.ticket_history(connection, kept.id)
    assert [(m["id"], m["merged_from"]) for m in rows["messages"]] == [
        (message, first.id),
        (own, second.id),
    ]
    assert [event["kind"] for event in rows["events"]] == ["opened"]
    assert ticket_rows.ticket_history(connection, first.id)["messages"] == []
    # The duplicate's outbox rows stay its own: they were sent as the duplicate's.
    assert inbound_rows.citizen_thread(connection, first.id) == ([], ["<ack@mri.gouv.qc.ca>"])


def test_a_tickets_own_request_and_follow_ups_after_a_message(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")
    duplicate = ticket(connection, "MRI-2025-00002")
    inbound(connection, ticket_id=duplicate.id)
    handoff.move_history(connection, duplicate.id, row.id)
    own = inbound(connection, ticket_id=row.id)
    command = inbound(connection, ticket_id=row.id, kind="staff_reply")
    later = inbound(connection, ticket_id=row.id, kind="follow_up", flags="oversized")
    inbound(connection, ticket_id=row.id, kind="follow_up", state="held")  # a stranger's
    first = handoff.first_request(connection, row.id)
    assert first is not None and (first.inbound_id, first.received_at) == (own, T)
    after = handoff.follow_ups_after(connection, row.id, command)
    assert [(r.inbound_id, r.flags) for r in after] == [(later, "oversized")]
    assert handoff.follow_ups_after(connection, row.id, later) == []


def test_the_latest_referral_to_a_body_not_refused_for_good(connection: Connection) -> None:
    row = ticket(connection, "MRI-2025-00001")

    def referral(n: int, address: str, state: str) -> int:
        """A staff command that referred the ticket to `address`, its row now `state`."""
        command = inbound(connection, ticket_id=row.id, kind="staff_reply")
        row_id = queued(
            connection, f"referral:{n}", ticket_id=row.id, purpose="referral", recipient=address
        )
        connection.exec_driver_sql(f"UPDATE outbox SET state = '{state}' WHERE id = {row_id}")
        ticket_rows.add_event(
            connection, row.id, T, "referral_queued", inbound_id=command, outbox_id=row_id
        )
        return command

    sent = referral(0, "Organisme@Example.org", "sent")
    referral(1, "organisme@example.org", "failed")  # refused for good
    referral(2, "autre@example.org", "pending")
    assert handoff.last_referral_to(connection, row.id, "ORGANISME@example.org") == sent
    assert handoff.last_referral_to(connection, row.id, "nobody@example.org") is None
