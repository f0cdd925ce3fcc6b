"""The outbox and the scheduled jobs as a specification, without servers (in-memory relay,
real SQLite): what is sent, retried, given up, reported, paced, and queued exactly once."""

from __future__ import annotations

import sqlalchemy as sa

from mailbot.app import App
from mailbot.db.outbox_rows import OutboxRow
from mailbot.ops.passes import run_pass
from mailbot.sending.outbox import lanes_of
from mailbot.transport.base import SendResult
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import AGENT, CITIZEN, at, header, request


def outbox(app: App) -> list[tuple[object, ...]]:
    with app.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT purpose, recipient, state, attempts, lease_owner FROM outbox "
                    "ORDER BY id"
                )
            )
        ]


def deadline_met(app: App, commitment: str) -> object:
    with app.engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT met_at FROM ticket_deadline WHERE commitment = :c"), {"c": commitment}
        ).scalar()


def one_request(memory: MemoryMailboxes, n: int = 1, sender: str = CITIZEN) -> None:
    memory["renseignements"].deliver(
        request(f"<req-{n}@example.org>", sender=sender), at("2025-11-03T10:00")
    )


def test_the_relays_acceptance_meets_the_acknowledgement_commitment(
    make_app: AppFactory, memory: MemoryMailboxes
) -> None:
    one_request(memory)
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    assert [row[:3] for row in outbox(app)] == [
        ("acknowledgement", CITIZEN, "sent"),
        ("notice", AGENT, "sent"),
        ("digest", "superviseur@mri.gouv.qc.ca", "sent"),
    ]
    assert deadline_met(app, "ack") is not None


def test_a_backlog_leaves_over_several_sessions_each_message_once(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    for n in range(12):
        one_request(memory, n, sender=f"personne{n}@example.org")
    app = make_app("2025-11-03T10:01:00-05:00")

    report = run_pass(app)

    assert report.ok and relay.most_open == app.settings.smtp.connections == 3
    ids = [header(item.raw, "Message-ID") for item in relay.sent]
    assert len(ids) == len(set(ids)) == 12 * 2 + 1  # acknowledgements, notices, the digest
    assert {row[2] for row in outbox(app)} == {"sent"}


def test_a_relay_that_allows_fewer_sessions_still_gets_everything(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    relay.session_limit = 1
    for n in range(6):
        one_request(memory, n, sender=f"personne{n}@example.org")
    app = make_app("2025-11-03T10:01:00-05:00")

    report = run_pass(app)

    assert report.ok and relay.most_open == 1
    assert len(relay.sent) == 6 * 2 + 1
    assert {row[2] for row in outbox(app)} == {"sent"}


def test_each_session_has_at_most_one_accepted_message_not_yet_recorded(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    """A lane sends its next message only once the outcome before is committed: a crash can
    leave at most one accepted message per session unrecorded (sent again on restart)."""
    for n in range(12):
        one_request(memory, n, sender=f"personne{n}@example.org")
    app = make_app("2025-11-03T10:01:00-05:00")
    unrecorded: list[int] = []

    def answer(_recipient: str, _raw: bytes) -> SendResult:
        with app.engine.connect() as connection:
            recorded = connection.execute(
                sa.text("SELECT count(*) FROM outbox WHERE state = 'sent'")
            ).scalar_one()
        unrecorded.append(len(relay.sent) - recorded)
        return SendResult("sent")

    relay.answer = answer
    run_pass(app)

    sessions = app.settings.smtp.connections
    assert len(unrecorded) == 12 * 2 + 1
    assert max(unrecorded) <= sessions - 1  # the other lanes' last message, never this one's
    assert max(unrecorded) >= 1  # the lanes did interleave


def test_a_tickets_messages_stay_in_queue_order_in_one_lane() -> None:
    rows = [outbox_row(n, ticket) for n, ticket in enumerate([7, 8, 7, None, 9, 7, None])]

    lanes = lanes_of(rows, 3)

    assert sorted(row.id for lane in lanes for row in lane) == list(range(7))
    for lane in lanes:
        assert [row.id for row in lane] == sorted(row.id for row in lane)
    [of_seven] = [lane for lane in lanes if any(row.ticket_id == 7 for row in lane)]
    assert [row.id for row in of_seven if row.ticket_id == 7] == [0, 2, 5]
    assert len(lanes_of(rows, 1)) == 1


def outbox_row(n: int, ticket_id: int | None) -> OutboxRow:
    return OutboxRow(
        id=n,
        ticket_id=ticket_id,
        purpose="notice",
        message_id=f"<m{n}@example.org>",
        envelope_from="",
        recipient="agent.info@mri.gouv.qc.ca",
        raw=b"",
        attempts=0,
        created_at=at("2025-11-03T10:00"),
        lease_owner="worker",
    )


def test_a_temporary_failure_is_retried_later_with_the_same_message(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    relay.answer = lambda _to, _raw: SendResult("retry", "451 4.3.0 try later")
    one_request(memory)
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    assert {row[2] for row in outbox(app)} == {"pending"}
    assert deadline_met(app, "ack") is None

    relay.answer = lambda _to, _raw: SendResult("sent")
    run_pass(make_app("2025-11-03T10:03:00-05:00"))  # after the first backoff (1 minute)

    assert [row[2:4] for row in outbox(app)] == [("sent", 2), ("sent", 2), ("sent", 2)]
    assert len(relay.to(CITIZEN)) == 1


def test_a_permanent_refusal_fails_the_row_and_tells_the_staff(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    relay.answer = lambda to, _raw: (
        SendResult("failed", "550 5.1.1 no such user") if to == CITIZEN else SendResult("sent")
    )
    one_request(memory)
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    assert outbox(app)[0][:3] == ("acknowledgement", CITIZEN, "failed")
    assert ("failure_notice", AGENT, "sent") in [row[:3] for row in outbox(app)]


def test_an_unreachable_relay_leaves_every_row_pending_and_released(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    relay.reachable = False
    one_request(memory)
    app = make_app("2025-11-03T10:01:00-05:00")

    report = run_pass(app)

    assert not report.ok
    assert all(row[2] == "pending" and row[4] is None for row in outbox(app))


def test_after_a_long_relay_outage_mail_leaves_within_a_minute_of_its_return(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    relay.reachable = False
    one_request(memory)
    for minute in range(0, 180, 15):  # three hours of passes against a relay that is down
        run_pass(make_app(f"2025-11-03T{10 + minute // 60}:{minute % 60 + 1:02}:00-05:00"))
    app = make_app("2025-11-03T13:01:00-05:00")
    assert {row[2] for row in outbox(app)} == {"pending"}

    relay.reachable = True
    run_pass(make_app("2025-11-03T13:02:00-05:00"))  # the relay is back: one minute later

    assert {row[2] for row in outbox(app)} == {"sent"}
    assert len(relay.to(CITIZEN)) == 1


def test_the_brake_paces_acknowledgements_and_tells_staff_once_each_way(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    for n in range(5):
        one_request(memory, n, sender=f"citoyen{n}@example.org")
    base = make_app("2025-11-03T10:00:00-05:00").settings
    braked = base.model_copy(
        update={"classification": base.classification.model_copy(update={"burst_limit": 2})}
    )

    sent = []
    for now in ("10:01", "10:02", "10:12", "10:23", "10:34"):
        run_pass(make_app(f"2025-11-03T{now}:00-05:00", braked))
        sent.append(sum(1 for item in relay.sent if item.recipient.startswith("citoyen")))

    assert sent == [2, 2, 4, 5, 5]
    brake = [
        row for row in outbox(make_app("2025-11-03T10:35:00-05:00")) if row[0] == "brake_notice"
    ]
    assert len(brake) == 4  # start and end, to the queue's agent and supervisor


def test_reminders_and_digests_are_queued_once_whatever_the_number_of_passes(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    one_request(memory)  # info_reply due 2025-11-17
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    for now in ("2025-11-12T08:05", "2025-11-12T09:00", "2025-11-12T15:00"):  # J-3
        run_pass(make_app(f"{now}:00-05:00"))

    app = make_app("2025-11-12T15:01:00-05:00")
    purposes = [row[0] for row in outbox(app)]
    assert purposes.count("reminder") == 1
    assert purposes.count("digest") == 2  # Nov 3 and Nov 12
