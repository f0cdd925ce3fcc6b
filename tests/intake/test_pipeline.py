"""The pipeline as a specification, without servers: mail in (an in-memory mailbox), tickets
and outgoing mail out (an in-memory relay), on a real SQLite database."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from mailbot.app import App
from mailbot.intake import pipeline
from mailbot.mail.parse import parse_message
from mailbot.ops.passes import run_pass
from mailbot.states import MessageState, TicketStatus
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender

OFFICE = ZoneInfo("America/Toronto")
INFO, COMPLAINTS = "renseignements@mri.gouv.qc.ca", "plaintes@mri.gouv.qc.ca"
CITIZEN = "josee.tremblay@example.org"
AGENT, COMPLAINTS_AGENT = "agent.info@mri.gouv.qc.ca", "agent.plaintes@mri.gouv.qc.ca"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=OFFICE)


def request(
    message_id: str = "<req-1@example.org>",
    *,
    sender: str = CITIZEN,
    to: str = INFO,
    subject: str = "Demande de renseignements",
    body: str = "Bonjour, je voudrais des renseignements sur les bourses.",
    headers: str = "",
) -> bytes:
    return (
        f"From: Josée Tremblay <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n{headers}Date: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode()


def header(raw: bytes, name: str) -> str:
    return str(email.message_from_bytes(raw, policy=email.policy.default)[name])


def rows(app: App, query: str) -> list[tuple[object, ...]]:
    with app.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(query))]


def test_a_request_becomes_a_ticket_an_acknowledgement_and_a_staff_notice(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    memory["renseignements"].deliver(request(), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    report = run_pass(app)

    assert report.ok and report.fetched == 1
    assert rows(app, "SELECT ref, status, due_date FROM ticket") == [
        ("MRI-2025-00001", TicketStatus.OPEN, "2025-11-17")
    ]
    [ack] = relay.to(CITIZEN)
    assert header(ack, "In-Reply-To") == "<req-1@example.org>"
    assert "MRI-2025-00001" in header(ack, "Subject")
    assert len(relay.to(AGENT)) == 1
    assert memory["renseignements"].inbox() == []
    assert len(memory["renseignements"].folder("Traites")) == 1


def test_a_second_pass_changes_nothing(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    memory["renseignements"].deliver(request(), at("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    sent = len(relay.sent)

    again = run_pass(make_app("2025-11-03T10:02:00-05:00"))

    assert again.fetched == 0 and len(relay.sent) == sent


def test_a_message_stored_but_not_moved_is_moved_never_processed_again(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    box = memory["renseignements"]
    uid = box.deliver(request(), at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    # The process died after the commit and before the move: put the message back.
    box.folders["INBOX"][uid] = box.folders["Traites"].pop(uid)

    report = run_pass(make_app("2025-11-03T10:05:00-05:00"))

    assert report.fetched == 0 and report.moved == 1
    assert rows(app, "SELECT count(*) FROM ticket") == [(1,)]
    assert len(relay.to(CITIZEN)) == 1


def test_a_poison_message_is_quarantined_alone(
    make_app: AppFactory,
    memory: MemoryMailboxes,
    relay: RecordingSender,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = memory["renseignements"]
    box.deliver(request("<poison@example.org>", subject="Poison"), at("2025-11-03T10:00"))
    box.deliver(request("<fine@example.org>"), at("2025-11-03T10:00"))

    def parse_with_a_bug(raw: bytes) -> object:
        if b"Poison" in raw:
            raise RuntimeError("a parser bug")
        return parse_message(raw)

    monkeypatch.setattr(pipeline, "parse_message", parse_with_a_bug)
    app = make_app("2025-11-03T10:01:00-05:00")

    report = run_pass(app)

    assert (report.outcomes["quarantined"], report.outcomes["new_request"]) == (1, 1)
    assert rows(app, "SELECT state, reason FROM inbound_message ORDER BY id") == [
        (MessageState.QUARANTINED, "RuntimeError: a parser bug"),
        (MessageState.PROCESSED, "new request (information)"),
    ]
    assert len(box.folder("Quarantaine")) == 1 and len(box.folder("Traites")) == 1
    assert len(relay.to(CITIZEN)) == 1


def test_automatic_mail_gets_no_answer(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    away = request(headers="Auto-Submitted: auto-replied\r\n", subject="Absence du bureau")
    memory["renseignements"].deliver(away, at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    assert [m for m in relay.sent if not m.recipient.endswith("@mri.gouv.qc.ca")] == []
    assert relay.to(AGENT) == []
    assert rows(app, "SELECT kind, state FROM inbound_message") == [
        ("auto_reply", MessageState.SET_ASIDE)
    ]


def test_one_message_in_both_mailboxes_is_one_complaint(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    raw = request(headers=f"Cc: {COMPLAINTS}\r\n", body="Je suis insatisfaite du service.")
    memory["renseignements"].deliver(raw, at("2025-11-03T10:00"))
    memory["plaintes"].deliver(raw, at("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    assert rows(app, "SELECT category, due_date FROM ticket") == [("complaint", "2025-11-24")]
    assert len(relay.to(CITIZEN)) == 1
    assert relay.to(AGENT) == [] and len(relay.to(COMPLAINTS_AGENT)) == 1


def test_an_oversized_message_opens_a_ticket_and_waits_in_quarantine(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    box = memory["renseignements"]
    box.deliver(request(body="x" * 20_000), at("2025-11-03T10:00"))
    base = make_app("2025-11-03T10:00:00-05:00").settings
    small = base.model_copy(
        update={"daemon": base.daemon.model_copy(update={"max_message_bytes": 4096})}
    )

    run_pass(make_app("2025-11-03T10:01:00-05:00", small))

    assert len(relay.to(CITIZEN)) == 1
    assert "trop volumineux" in header(relay.to(AGENT)[0], "Subject")
    assert len(box.folder("Quarantaine")) == 1 and box.folder("Traites") == []
