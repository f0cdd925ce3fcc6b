"""What retention finds due, as of a cut-off: finished tickets of one queue (closed then, or
answered and left with nothing owed), never one under legal hold; the mail of no ticket; the
bounce state of addresses no ticket kept whole still names. The column-by-column clearing is
held by tests/privacy/test_retention.py."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from mailbot.db import deadline_rows, legal_holds, retention_rows, service_state, ticket_rows
from tests.db.seed import at, day, inbound, queued, ticket

CUTOFF = at("2023-06-01T00:00:00Z")
BEFORE, AFTER = at("2023-01-01T12:00:00Z"), at("2023-07-01T12:00:00Z")


def finished(
    connection: Connection, ref: str, *, status: str = "closed", when: str = "before", **kw: str
) -> int:
    """A ticket closed (or answered) before or after the cut-off, with a stored message."""
    row = ticket(connection, ref, **kw)
    instant = BEFORE if when == "before" else AFTER
    closed = {"closed_at": instant} if status == "closed" else {}
    ticket_rows.set_ticket_fields(connection, row.id, instant, status=status, **closed)
    inbound(connection, ticket_id=row.id)
    return row.id


def test_finished_tickets_of_the_queue_are_due(connection: Connection) -> None:
    finished(connection, "MRI-2023-00001")  # closed before the cut-off
    finished(connection, "MRI-2023-00002", when="after")
    finished(connection, "MRI-2023-00003", status="answered")  # answered and left
    owed = finished(connection, "MRI-2023-00004", status="answered")
    deadline_rows.insert_deadlines(
        connection,
        owed,
        {
            "interview": {
                "clock_start": day("2022-12-01"),
                "due_date": day("2023-01-15"),
                "due_at": at("2023-01-16T05:00:00Z"),
                "days_on_hold": 0,
            }
        },
    )
    held = finished(connection, "MRI-2023-00005")
    legal_holds.set_legal_hold(connection, held, "litige", BEFORE, by="admin", via="cli")
    finished(connection, "MRI-2023-00006", mailbox="plaintes")
    finished(connection, "MRI-2023-00007", status="open")
    due = retention_rows.due_raw(connection, "renseignements", CUTOFF, 10)
    assert [t.ref for t in due] == ["MRI-2023-00001", "MRI-2023-00003"]
    assert [t.ref for t in retention_rows.due_raw(connection, "renseignements", CUTOFF, 1)] == [
        "MRI-2023-00001"
    ]
    anonymise = retention_rows.due_anonymisation(connection, "renseignements", CUTOFF, 10)
    assert [t.ref for t in anonymise] == ["MRI-2023-00001", "MRI-2023-00003"]


def test_raw_is_due_while_some_bytes_remain_and_unsent_mail_keeps_its_own(
    connection: Connection,
) -> None:
    emptied = finished(connection, "MRI-2023-00001")
    retention_rows.destroy_raw(connection, [emptied], CUTOFF)
    queued(connection, "unsent", ticket_id=emptied)  # pending: the worker needs its bytes
    assert retention_rows.due_raw(connection, "renseignements", CUTOFF, 10) == []
    assert [
        t.ref for t in retention_rows.due_anonymisation(connection, "renseignements", CUTOFF, 10)
    ] == ["MRI-2023-00001"]
    ticket_rows.set_ticket_fields(connection, emptied, BEFORE, anonymised_at=CUTOFF)
    assert retention_rows.due_anonymisation(connection, "renseignements", CUTOFF, 10) == []


def test_the_mail_of_no_ticket_is_found_by_id_and_by_cut_off(connection: Connection) -> None:
    row = ticket(connection, "MRI-2023-00001")
    inbound(connection, ticket_id=row.id)
    old = inbound(connection, stored_at="2023-01-01T12:00:00Z", message_id="<old@example.org>")
    empty = inbound(connection, stored_at="2023-01-02T12:00:00Z", raw=b"", message_id="<e@x>")
    inbound(connection, stored_at="2023-01-03T12:00:00Z", raw=b"", message_id="")  # nothing left
    recent = inbound(connection, stored_at="2023-07-01T12:00:00Z")
    raw = retention_rows.unlinked_raw(connection, 0, 10)
    assert [copy.id for copy, _ in raw] == [old, recent]
    assert [copy.id for copy, _ in retention_rows.unlinked_raw(connection, old, 10)] == [recent]
    copies = retention_rows.unlinked_copies(connection, CUTOFF, 10)
    assert [copy.id for copy in copies] == [old, empty]


def test_an_address_is_forgotten_once_no_ticket_kept_whole_names_it(connection: Connection) -> None:
    kept = ticket(connection, "MRI-2023-00001", requester="Garde@Example.org")
    for address in ("garde@example.org", "parti@example.org"):
        service_state.mark_undeliverable(connection, address, "5.1.1", BEFORE)
    retention_rows.forget_addresses(connection, ["GARDE@example.org", "Parti@example.org", ""])
    remaining = connection.exec_driver_sql("SELECT address FROM address_state").scalars().all()
    assert remaining == ["garde@example.org"]
    ticket_rows.set_ticket_fields(connection, kept.id, BEFORE, anonymised_at=CUTOFF)
    retention_rows.forget_addresses(connection, ["garde@example.org"])
    assert connection.exec_driver_sql("SELECT address FROM address_state").all() == []


def test_a_requesters_tickets_are_found_whatever_the_case(connection: Connection) -> None:
    ticket(connection, "MRI-2023-00001", requester="Citoyen@Example.org")
    ticket(connection, "MRI-2023-00002", requester="citoyen@example.org")
    ticket(connection, "MRI-2023-00003", requester="autre@example.org")
    found = retention_rows.tickets_of_requester(connection, "CITOYEN@EXAMPLE.ORG")
    assert [row.ref for row in found] == ["MRI-2023-00001", "MRI-2023-00002"]


def test_a_legal_hold_has_the_owner_who_placed_it_until_released(connection: Connection) -> None:
    row = ticket(connection, "MRI-2023-00001")
    assert legal_holds.hold_origin(connection, row.id) is None
    legal_holds.set_legal_hold(
        connection, row.id, "litige", BEFORE, by="juriste@mri.gouv.qc.ca", via="email"
    )
    assert legal_holds.hold_origin(connection, row.id) == legal_holds.HoldOrigin(
        "juriste@mri.gouv.qc.ca", by_email=True
    )
    legal_holds.set_legal_hold(connection, row.id, "litige", AFTER, by="admin", via="cli")
    assert legal_holds.hold_origin(connection, row.id) == legal_holds.HoldOrigin(
        "admin", by_email=False
    )
    legal_holds.set_legal_hold(connection, row.id, None, AFTER)
    assert legal_holds.hold_origin(connection, row.id) is None
    record = ticket_rows.ticket_record(connection, "MRI-2023-00001")
    assert record is not None
    assert (record["legal_hold_reason"], record["legal_hold_by"], record["legal_hold_via"]) == (
        None,
        None,
        None,
    )
