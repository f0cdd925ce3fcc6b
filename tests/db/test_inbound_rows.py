"""Stored inbound messages: a request delivered twice is found by its fingerprint (or, for
rows stored before fingerprints, its bytes); the IMAP checkpoint only moves forward; a
ticket's thread and its held replies come back in order."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mailbot.db import inbound_rows
from tests.db.seed import at, inbound, queued, ticket

T = at("2025-03-03T14:00:00Z")


def test_a_duplicate_is_the_first_copy_with_the_fingerprint_not_quarantined(
    connection: Connection,
) -> None:
    row = ticket(connection, "MRI-2025-00001")
    inbound(connection, fingerprint="f1", state="quarantined")
    first = inbound(connection, fingerprint="f1", ticket_id=row.id, mailbox="plaintes")
    inbound(connection, fingerprint="f1")
    assert inbound_rows.duplicate_of(connection, "f1", "any") == inbound_rows.Duplicate(
        first, "plaintes", row.id
    )
    assert inbound_rows.duplicate_of(connection, "f2", "any") is None


def test_a_row_without_fingerprint_is_a_duplicate_by_its_bytes(connection: Connection) -> None:
    old = inbound(connection, fingerprint="", sha256="ab" * 32)
    inbound(connection, fingerprint="other", sha256="cd" * 32)
    assert inbound_rows.duplicate_of(connection, "new", "ab" * 32) == inbound_rows.Duplicate(
        old, "renseignements", None
    )
    assert inbound_rows.duplicate_of(connection, "new", "cd" * 32) is None


def test_a_message_is_known_by_mailbox_uidvalidity_and_uid(connection: Connection) -> None:
    inbound(connection, mailbox="renseignements", uidvalidity=7, uid=42, state="set_aside")
    assert inbound_rows.stored_state(connection, "renseignements", 7, 42) == "set_aside"
    assert inbound_rows.stored_state(connection, "renseignements", 8, 42) is None
    assert inbound_rows.stored_state(connection, "plaintes", 7, 42) is None


def test_the_checkpoint_only_moves_forward_per_uidvalidity(connection: Connection) -> None:
    box = "renseignements"
    inbound_rows.advance_checkpoint(connection, box, 7, 10, T)
    inbound_rows.advance_checkpoint(connection, box, 7, 5, T)
    inbound_rows.advance_checkpoint(connection, box, 7, 12, T)
    inbound_rows.advance_checkpoint(connection, box, 9, 3, T)
    assert inbound_rows.known_uidvalidities(connection, box) == {7, 9}
    assert inbound_rows.known_uidvalidities(connection, "plaintes") == set()
    last = connection.exec_driver_sql(
        "SELECT uidvalidity, last_uid FROM imap_checkpoint ORDER BY uidvalidity"
    ).all()
    assert [tuple(row) for row in last] == [(7, 12), (9, 3)]


def test_outcomes_and_moves_of_more_uids_than_one_statement_takes(connection: Connection) -> None:
    uids = list(range(1, 1102))  # three batches of at most 500
    for uid in uids:
        inbound(connection, uidvalidity=3, uid=uid, flags="oversized" if uid == 1101 else "")
    inbound(connection, uidvalidity=4, uid=1)
    found = inbound_rows.stored_outcomes(connection, "renseignements", 3, [*uids, 5000])
    assert len(found) == 1101
    assert (found[1], found[1101]) == (("processed", ""), ("processed", "oversized"))
    inbound_rows.record_moves(connection, "renseignements", 3, uids, "Traités", T)
    moved = connection.exec_driver_sql(
        "SELECT count(*) FROM inbound_message WHERE folder = 'Traités'"
    ).scalar_one()
    assert moved == 1101


def test_the_request_that_opened_a_ticket_is_its_own_first(connection: Connection) -> None:
    kept = ticket(connection, "MRI-2025-00001")
    duplicate = ticket(connection, "MRI-2025-00002")
    brought = inbound(connection, ticket_id=duplicate.id, message_id="<dup@example.org>")
    own = inbound(connection, ticket_id=kept.id, message_id="<own@example.org>")
    inbound(connection, ticket_id=kept.id, kind="follow_up")
    connection.exec_driver_sql(
        f"UPDATE inbound_message SET ticket_id = {kept.id}, merged_from = {duplicate.id}"
        f" WHERE id = {brought}"
    )
    first = inbound_rows.first_request(connection, kept.id)
    assert first is not None and (first.id, first.message_id) == (own, "<own@example.org>")
    assert inbound_rows.first_request(connection, duplicate.id) is None


def test_a_tickets_thread_is_the_citizens_messages_and_ours_in_order(
    connection: Connection,
) -> None:
    row = ticket(connection, "MRI-2025-00001")
    inbound(connection, ticket_id=row.id, message_id="<c1@example.org>")
    inbound(connection, ticket_id=row.id, kind="staff_reply", message_id="<s1@mri.gouv.qc.ca>")
    inbound(connection, ticket_id=row.id, kind="follow_up", message_id="")
    inbound(connection, ticket_id=row.id, kind="follow_up", message_id="<c2@example.org>")
    queued(connection, "ack", ticket_id=row.id, message_id="<o1@mri.gouv.qc.ca>")
    queued(connection, "notice", ticket_id=row.id, purpose="notice", message_id="<n@mri>")
    queued(connection, "reply", ticket_id=row.id, purpose="reply", message_id="<o2@mri.gouv.qc.ca>")
    assert inbound_rows.citizen_thread(connection, row.id) == (
        ["<c1@example.org>", "<c2@example.org>"],
        ["<o1@mri.gouv.qc.ca>", "<o2@mri.gouv.qc.ca>"],
    )


def test_held_replies_newest_first_and_staff_replies_between_two_messages(
    connection: Connection,
) -> None:
    row = ticket(connection, "MRI-2025-00001")

    def staff(state: str = "processed", flags: str = "") -> int:
        return inbound(connection, ticket_id=row.id, kind="staff_reply", state=state, flags=flags)

    cut = staff("held", "uncertain_cut")
    between = staff()
    other = staff("held", "other")
    command = staff("held", "x,unmarked_command")
    inbound(connection, ticket_id=row.id, kind="follow_up")
    held = inbound_rows.held_for_confirmation(connection, row.id)
    assert [message.id for message in held] == [command, cut]
    after = inbound_rows.staff_replies_after(connection, row.id, cut, command)
    assert [message.id for message in after] == [between, other]


def test_quarantined_messages_oldest_first(connection: Connection) -> None:
    first = inbound(connection, state="quarantined", message_id="<q1@example.org>")
    inbound(connection, state="processed")
    second = inbound(connection, state="quarantined", mailbox="plaintes")
    found = inbound_rows.quarantined(connection)
    assert [(q.id, q.mailbox) for q in found] == [(first, "renseignements"), (second, "plaintes")]
    assert found[0].received_at == T
