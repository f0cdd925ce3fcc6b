"""The outbox table's contracts: a dedupe key queues once; leases give each due row to one
owner at a time, and only the owner of a live lease writes the attempt's outcome."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mailbot.db import outbox_rows, ticket_rows
from mailbot.db.models import OUTBOX
from tests.db.concurrent import start_second
from tests.db.seed import at, day, queued, ticket

T = at("2025-03-03T14:00:00Z")
LEASE = timedelta(minutes=10)


def state_of(connection: Connection, row_id: int) -> tuple[str, str | None]:
    """(state, lease owner) of an outbox row."""
    row = connection.execute(
        sa.select(OUTBOX.c.state, OUTBOX.c.lease_owner).where(OUTBOX.c.id == row_id)
    ).one()
    return row.state, row.lease_owner


def outbox_count(connection: Connection) -> int:
    return int(connection.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar_one())


# --- queueing -----------------------------------------------------------------------------------


def test_a_second_queueing_under_the_same_dedupe_key_returns_none_and_writes_nothing(
    connection: Connection,
) -> None:
    first = queued(connection, "ack:MRI-2025-00001", recipient="Citoyen@Example.org")
    again = outbox_rows.queue_message(
        connection,
        ticket_id=None,
        purpose="acknowledgement",
        dedupe_key="ack:MRI-2025-00001",
        message_id="<another@mri.gouv.qc.ca>",
        envelope_from="",
        recipient="someone-else@example.org",
        raw=b"other",
        now=T + timedelta(hours=1),
    )
    assert again is None
    assert outbox_count(connection) == 1
    assert outbox_rows.row_by_message_id(connection, "<another@mri.gouv.qc.ca>") is None
    kept = outbox_rows.row_by_message_id(connection, "ack:MRI-2025-00001@mri.gouv.qc.ca")
    assert kept == outbox_rows.SentMessage(first, None, "citoyen@example.org", "acknowledgement")
    assert outbox_rows.is_queued(connection, "ack:MRI-2025-00001")
    assert not outbox_rows.is_queued(connection, "ack:MRI-2025-00002")


def test_a_row_queued_after_another_waits_for_it_and_is_released_or_withdrawn_with_it(
    connection: Connection,
) -> None:
    referral = queued(connection, "referral:1", purpose="referral")
    notice = queued(connection, "notice:1", purpose="notice", after_id=referral)
    other = queued(connection, "notice:2", purpose="notice", after_id=referral)
    assert state_of(connection, notice) == ("waiting", None)
    assert outbox_rows.lease(connection, T, T + LEASE, "a", 10, paced=None) == [referral]
    assert outbox_rows.release_waiting(connection, referral, T) == 2
    assert state_of(connection, notice) == ("pending", None)
    refused = queued(connection, "referral:2", purpose="referral")
    withheld = queued(connection, "notice:3", purpose="notice", after_id=refused)
    assert outbox_rows.withdraw_waiting(connection, refused, "550 refused") == [withheld]
    assert state_of(connection, withheld) == ("withdrawn", None)
    assert outbox_rows.withdraw_waiting(connection, referral, "late") == []  # none waits now
    assert state_of(connection, other) == ("pending", None)


# --- leases -------------------------------------------------------------------------------------


def test_two_owners_never_lease_the_same_row(connection: Connection) -> None:
    """The second owner gets the free rows, as many as it asks for (the rows held by the
    first do not use up its limit)."""
    rows = [queued(connection, f"k{n}", purpose="notice") for n in range(3)]
    first = outbox_rows.lease(connection, T, T + LEASE, "owner-a", 2, paced=None)
    second = outbox_rows.lease(connection, T, T + LEASE, "owner-b", 1, paced=None)
    assert first == rows[:2]
    assert second == rows[2:]
    assert outbox_rows.lease(connection, T, T + LEASE, "owner-c", 10, paced=None) == []
    assert [row.id for row in outbox_rows.leased_rows(connection, rows, "owner-a")] == rows[:2]
    assert [row.lease_owner for row in outbox_rows.leased_rows(connection, rows, "owner-b")] == [
        "owner-b"
    ]


def test_only_due_pending_rows_are_leased(connection: Connection) -> None:
    later = queued(connection, "later", purpose="notice", now="2025-03-03T15:00:00Z")
    sent = queued(connection, "sent", purpose="notice")
    leased = outbox_rows.lease(connection, T, T + LEASE, "a", 10, paced=None)
    assert leased == [sent]
    row = outbox_rows.leased_rows(connection, leased, "a")[0]
    assert outbox_rows.record_attempt(
        connection, row, {"state": "sent", "sent_at": T, "attempts": 1}
    )
    assert outbox_rows.lease(
        connection, at("2025-03-03T15:00:00Z"), T + LEASE, "b", 10, paced=None
    ) == [later]


def test_paced_rows_beyond_the_capacity_stay_pending_and_unleased(connection: Connection) -> None:
    acks = [queued(connection, f"ack{n}") for n in range(3)]
    notice = queued(connection, "notice", purpose="notice")
    assert outbox_rows.lease(connection, T, T + LEASE, "a", 2, paced=True) == acks[:2]
    assert outbox_rows.lease(connection, T, T + LEASE, "a", 10, paced=False) == [notice]
    assert state_of(connection, acks[2]) == ("pending", None)
    assert outbox_rows.due_paced(connection, T) == 3  # leased or not, none is sent yet
    assert outbox_rows.lease(connection, T, T + LEASE, "a", 0, paced=True) == []


def test_a_lost_lease_cannot_write_the_outcome_its_new_owner_writes(
    connection: Connection,
) -> None:
    row_id = queued(connection, "k", purpose="notice")
    assert outbox_rows.lease(connection, T, T + LEASE, "old", 1, paced=None) == [row_id]
    old = outbox_rows.leased_rows(connection, [row_id], "old")[0]
    expired = T + LEASE + timedelta(seconds=1)
    assert outbox_rows.lease(connection, expired, expired + LEASE, "new", 1, paced=None) == [row_id]
    new = outbox_rows.leased_rows(connection, [row_id], "new")[0]
    assert outbox_rows.leased_rows(connection, [row_id], "old") == []
    assert not outbox_rows.record_attempt(
        connection, old, {"state": "failed", "attempts": 1, "last_error": "550"}
    )
    assert state_of(connection, row_id) == ("pending", "new")
    assert outbox_rows.record_attempt(
        connection, new, {"state": "sent", "sent_at": expired, "attempts": 1}
    )
    assert state_of(connection, row_id) == ("sent", None)
    # A row no longer pending is not written again, even by the owner it had.
    assert not outbox_rows.record_attempt(connection, new, {"state": "failed"})


def test_a_live_lease_is_not_taken_before_it_expires(connection: Connection) -> None:
    row_id = queued(connection, "k", purpose="notice")
    assert outbox_rows.lease(connection, T, T + LEASE, "a", 1, paced=None) == [row_id]
    assert (
        outbox_rows.lease(
            connection, T + LEASE - timedelta(seconds=1), T + 2 * LEASE, "b", 1, paced=None
        )
        == []
    )


def test_releasing_frees_only_the_owners_pending_rows(connection: Connection) -> None:
    mine = [queued(connection, f"mine{n}", purpose="notice") for n in range(2)]
    theirs = queued(connection, "theirs", purpose="notice")
    assert outbox_rows.lease(connection, T, T + LEASE, "me.1", 2, paced=None) == mine
    assert outbox_rows.lease(connection, T, T + LEASE, "them.1", 1, paced=None) == [theirs]
    done = outbox_rows.leased_rows(connection, mine[:1], "me.1")[0]
    assert outbox_rows.record_attempt(connection, done, {"state": "sent", "sent_at": T})
    assert sorted(outbox_rows.live_lease_owners(connection, T, "")) == ["me.1", "them.1"]
    assert outbox_rows.release_leases(connection, "me.1") == 1
    assert state_of(connection, mine[0]) == ("sent", None)
    assert state_of(connection, mine[1]) == ("pending", None)
    assert state_of(connection, theirs) == ("pending", "them.1")
    assert outbox_rows.live_lease_owners(connection, T, "") == ["them.1"]
    assert outbox_rows.live_lease_owners(connection, T, "me") == []
    assert outbox_rows.live_lease_owners(connection, T + LEASE + timedelta(seconds=1), "") == []


def test_a_lease_owner_prefix_is_matched_literally(connection: Connection) -> None:
    row_id = queued(connection, "k", purpose="notice")
    assert outbox_rows.lease(connection, T, T + LEASE, "host_1.boot%", 1, paced=None) == [row_id]
    assert outbox_rows.live_lease_owners(connection, T, "host_1.boot%") == ["host_1.boot%"]
    assert outbox_rows.live_lease_owners(connection, T, "host%") == []
    assert outbox_rows.live_lease_owners(connection, T, "hostX1") == []


def test_two_workers_leasing_at_once_never_share_a_row(committing_engine: Engine) -> None:
    """The first worker's lease is not committed yet when the second leases: the second
    waits, then takes only rows the first did not."""
    with committing_engine.begin() as connection:
        rows = [queued(connection, f"k{n}", purpose="notice") for n in range(4)]
    with committing_engine.connect() as first:
        with first.begin():
            taken = outbox_rows.lease(first, T, T + LEASE, "first", 2, paced=None)
            second = start_second(
                committing_engine,
                lambda connection: outbox_rows.lease(
                    connection, T, T + LEASE, "second", 4, paced=None
                ),
            )
        assert taken == rows[:2]
        assert second.outcome() == rows[2:]
        assert [row.id for row in outbox_rows.leased_rows(first, rows, "first")] == rows[:2]


# --- counts and lookups as of an instant ----------------------------------------------------------


def test_automatic_answers_are_counted_since_an_instant_per_recipient_or_in_all(
    connection: Connection,
) -> None:
    queued(connection, "a1", now="2025-03-03T13:59:59Z", recipient="citoyen@example.org")
    queued(connection, "a2", now="2025-03-03T14:00:00Z", recipient="Citoyen@Example.org")
    queued(connection, "a3", now="2025-03-03T14:30:00Z", recipient="autre@example.org")
    queued(connection, "n1", now="2025-03-03T14:30:00Z", purpose="notice")
    assert outbox_rows.automatic_answers_since(connection, T) == 2
    assert outbox_rows.automatic_answers_since(connection, T, "CITOYEN@example.org") == 1
    assert outbox_rows.automatic_answers_since(connection, at("2025-03-03T13:00:00Z")) == 3
    assert outbox_rows.automatic_answers_since(connection, T, "nobody@example.org") == 0


def test_paced_sends_are_counted_after_an_instant(connection: Connection) -> None:
    rows = [queued(connection, f"a{n}") for n in range(3)]
    queued(connection, "notice", purpose="notice")
    leased = outbox_rows.leased_rows(
        connection, outbox_rows.lease(connection, T, T + LEASE, "a", 10, paced=None), "a"
    )
    sent_at = ["2025-03-03T14:00:00Z", "2025-03-03T14:00:01Z", "2025-03-03T14:05:00Z"]
    for row, instant in zip(leased, [*sent_at, sent_at[-1]], strict=True):
        outbox_rows.record_attempt(connection, row, {"state": "sent", "sent_at": at(instant)})
    assert [row.id for row in leased[:3]] == rows
    assert outbox_rows.paced_sent_since(connection, T) == 2  # strictly after
    assert outbox_rows.paced_sent_since(connection, at("2025-03-03T14:05:00Z")) == 0
    assert outbox_rows.due_paced(connection, T) == 0


def test_the_queues_waiting_are_those_of_due_unsent_acknowledgements(
    connection: Connection,
) -> None:
    complaint = ticket(connection, "MRI-2025-00001", mailbox="plaintes")
    info = ticket(connection, "MRI-2025-00002", mailbox="renseignements")
    later = ticket(connection, "MRI-2025-00003", mailbox="zeta")
    queued(connection, "a1", ticket_id=info.id)
    queued(connection, "a2", ticket_id=complaint.id)
    queued(connection, "a3", ticket_id=info.id)
    queued(connection, "a4", ticket_id=later.id, now="2025-03-03T15:00:00Z")
    queued(connection, "n1", ticket_id=later.id, purpose="notice")
    assert outbox_rows.queues_waiting(connection, T) == ["plaintes", "renseignements"]
    assert outbox_rows.due_paced(connection, T) == 3


def test_a_row_is_found_by_its_message_id_with_or_without_angle_brackets(
    connection: Connection,
) -> None:
    row_id = queued(connection, "k", message_id="<abc@mri.gouv.qc.ca>", purpose="reply")
    found = outbox_rows.SentMessage(row_id, None, "citoyen@example.org", "reply")
    assert outbox_rows.row_by_message_id(connection, "<abc@mri.gouv.qc.ca>") == found
    assert outbox_rows.row_by_message_id(connection, " abc@mri.gouv.qc.ca ") == found
    assert outbox_rows.row_by_message_id(connection, "") is None
    assert outbox_rows.created_at(connection, row_id) == T
    assert outbox_rows.created_at(connection, row_id + 1000) is None


def test_a_confirmation_request_names_the_held_reply_it_asks_about(
    connection: Connection,
) -> None:
    queued(connection, "staff_confirm:41:agent@mri.gouv.qc.ca", purpose="staff_confirm")
    queued(
        connection,
        "staff_unmarked_command:42:agent@mri.gouv.qc.ca",
        purpose="staff_unmarked_command",
    )
    queued(connection, "notice:43:agent@mri.gouv.qc.ca", purpose="notice")
    asked = outbox_rows.held_replies_asked_about
    assert asked(connection, ["staff_confirm:41:agent@mri.gouv.qc.ca@mri.gouv.qc.ca"]) == {41}
    assert asked(
        connection,
        [
            "<staff_unmarked_command:42:agent@mri.gouv.qc.ca@mri.gouv.qc.ca>",
            "<staff_confirm:41:agent@mri.gouv.qc.ca@mri.gouv.qc.ca>",
            "<notice:43:agent@mri.gouv.qc.ca@mri.gouv.qc.ca>",
        ],
    ) == {41, 42}
    assert asked(connection, []) == set()


def test_failures_are_reported_once_and_only_for_the_purposes_asked(
    connection: Connection,
) -> None:
    row = ticket(connection, "MRI-2025-00001")
    failed = queued(connection, "r1", ticket_id=row.id, purpose="reply")
    held = queued(connection, "r2", ticket_id=row.id, purpose="reply")
    queued(connection, "r3", ticket_id=row.id, purpose="reply")  # still pending
    digest = queued(connection, "d1", purpose="digest")  # on no ticket
    other = queued(connection, "n1", ticket_id=row.id, purpose="notice")
    leased = outbox_rows.leased_rows(
        connection, outbox_rows.lease(connection, T, T + LEASE, "a", 10, paced=None), "a"
    )
    outcomes = {failed: "failed", held: "held", digest: "failed", other: "failed"}
    for leased_row in leased:
        if leased_row.id in outcomes:
            values = {"state": outcomes[leased_row.id], "last_error": "550 5.1.1 unknown"}
            outbox_rows.record_attempt(connection, leased_row, values)
    found = outbox_rows.unreported_failures(connection, ["reply", "digest"])
    assert found == [
        outbox_rows.Failure(failed, row.id, "reply", "failed", "550 5.1.1 unknown"),
        outbox_rows.Failure(held, row.id, "reply", "held", "550 5.1.1 unknown"),
    ]
    ticket_rows.add_event(connection, row.id, T, "failure_reported", outbox_id=failed)
    assert [f.outbox_id for f in outbox_rows.unreported_failures(connection, ["reply"])] == [held]


def test_each_recipients_last_digest_day_is_read_from_the_keys(connection: Connection) -> None:
    for key, to in [
        ("digest:chef@mri.gouv.qc.ca:2025-03-03", "chef@mri.gouv.qc.ca"),
        ("digest:chef@mri.gouv.qc.ca:2025-03-05", "chef@mri.gouv.qc.ca"),
        ("digest:chef@mri.gouv.qc.ca:2025-03-04", "chef@mri.gouv.qc.ca"),
        ("digest:autre@mri.gouv.qc.ca:2025-02-28", "autre@mri.gouv.qc.ca"),
        ("digest:broken@mri.gouv.qc.ca:not-a-day", "broken@mri.gouv.qc.ca"),
    ]:
        queued(connection, key, purpose="digest", recipient=to)
    days = outbox_rows.last_digest_days(
        connection, ["chef@mri.gouv.qc.ca", "broken@mri.gouv.qc.ca", "nobody@mri.gouv.qc.ca"]
    )
    assert days == {"chef@mri.gouv.qc.ca": day("2025-03-05")}
    assert outbox_rows.last_digest_days(connection, []) == {}
