"""The spine against real servers: a citizen's email becomes one ticket and one acknowledgement."""

from __future__ import annotations

import email
import email.policy
import logging
import time
from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from mailbot.db.models import InboundMessage, OutboxMessage, Ticket
from mailbot.db.store import session_scope
from mailbot.errors import ImapError
from mailbot.ops.passes import run_pass
from mailbot.reporting.shapes import ticket_json
from mailbot.sandbox.servers import Sandbox, maildir_for
from mailbot.transport.imap import ImapMailbox
from tests.conftest import AppFactory

OFFICE = ZoneInfo("America/Toronto")
CITIZEN = "josee.tremblay@example.org"
INFO = "renseignements@mri.gouv.qc.ca"
COMPLAINTS = "plaintes@mri.gouv.qc.ca"


BODY = "Bonjour, je voudrais des renseignements sur les bourses."


def citizen_request(
    message_id: str = "<req-1@example.org>",
    sender: str = CITIZEN,
    subject: str = "Demande de renseignements",
    body: str = BODY,
) -> bytes:
    return (
        f"From: Josée Tremblay <{sender}>\r\n"
        f"To: {INFO}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


def office(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=OFFICE)


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def tickets(app_engine: object) -> list[Ticket]:
    with session_scope(app_engine) as session:  # type: ignore[arg-type]
        return list(session.exec(select(Ticket)).all())


def test_a_french_request_gets_one_threaded_acknowledgement(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    report = run_pass(app)

    assert report.ok, report.summary()
    [ticket] = tickets(app.engine)
    data = ticket_json(ticket.model_dump())
    assert data["ref"] == "MRI-2025-00001"
    assert data["mailbox"] == "renseignements"
    assert data["category"] == "information"
    assert data["status"] == "open"
    assert data["requester"] == CITIZEN
    assert data["language"] == "fr"
    assert data["received_at"] == "2025-11-03T15:00:00+00:00"
    assert data["receipt_date"] == "2025-11-03"
    assert data["due_date"] == "2025-11-17"
    assert data["acknowledged_at"] == "2025-11-03T15:01:00+00:00"
    [raw] = sandbox.fetch_all(CITIZEN)
    ack = parsed(raw)
    assert ack["In-Reply-To"] == "<req-1@example.org>"
    assert "<req-1@example.org>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    assert ack["From"].addresses[0].addr_spec == INFO
    assert [a.addr_spec for a in ack["To"].addresses] == [CITIZEN]
    assert ack["Cc"] is None
    assert "MRI-2025-00001" in ack["Subject"]
    text = text_of(ack)
    assert "MRI-2025-00001" in text
    assert "lundi 3 novembre 2025" in text
    assert "lundi 17 novembre 2025" in text
    assert "bourses" not in text  # never echoes the citizen's text
    assert ack.get_body(preferencelist=("html",)) is not None
    # The inbox is empty; the message sits in the processed folder.
    assert sandbox.fetch_all(INFO) == []
    assert len(sandbox.fetch_all(INFO, "Traites")) == 1


def test_a_complaint_gets_the_15_day_deadline_and_the_confidentiality_sentence(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    raw = citizen_request(subject="Plainte", body="Je désire porter plainte.").replace(
        f"To: {INFO}".encode(), f"To: {COMPLAINTS}".encode()
    )
    sandbox.deliver(COMPLAINTS, raw, received_at=office("2025-12-19T17:05"))
    app = make_app("2025-12-19T17:10:00-05:00")

    run_pass(app)

    [ticket] = tickets(app.engine)
    assert (ticket.category, ticket.mailbox) == ("complaint", "plaintes")
    assert ticket.receipt_date.isoformat() == "2025-12-22"
    assert ticket.due_date is not None and ticket.due_date.isoformat() == "2026-01-20"
    [raw_ack] = sandbox.fetch_all(CITIZEN)
    ack = parsed(raw_ack)
    assert ack["From"].addresses[0].addr_spec == COMPLAINTS
    assert "confidentielle" in text_of(ack)


def test_running_again_changes_nothing(sandbox: Sandbox, make_app: AppFactory) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))

    second = run_pass(make_app("2025-11-03T10:30:00-05:00"))
    app = make_app("2025-11-03T11:00:00-05:00")
    third = run_pass(app)

    assert second.fetched == third.fetched == 0
    assert len(tickets(app.engine)) == 1
    assert len(sandbox.fetch_all(CITIZEN)) == 1


def test_a_message_stored_but_not_moved_is_not_processed_twice(
    sandbox: Sandbox, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    def die(self: ImapMailbox, uids: object, folder: str) -> None:
        raise ImapError("connection lost before the move")

    monkeypatch.setattr(ImapMailbox, "move", die)
    first = run_pass(app)
    assert not first.ok
    assert len(sandbox.fetch_all(INFO)) == 1  # still in the inbox
    monkeypatch.undo()

    second = run_pass(make_app("2025-11-03T10:05:00-05:00"))

    assert second.fetched == 0 and second.moved == 1
    assert sandbox.fetch_all(INFO) == []
    assert len(tickets(app.engine)) == 1
    assert len(sandbox.fetch_all(CITIZEN)) == 1
    with session_scope(app.engine) as session:
        [row] = session.exec(select(InboundMessage)).all()
        assert row.moved_at is not None and row.folder == "Traites"


def test_with_smtp_down_the_ticket_is_created_and_the_ack_goes_out_later(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    sandbox.stop_smtp()
    app = make_app("2025-11-03T10:01:00-05:00")

    first = run_pass(app)

    assert first.outbox.unreachable and not first.ok
    [ticket] = tickets(app.engine)
    assert ticket.acknowledged_at is None
    with session_scope(app.engine) as session:
        [row] = session.exec(
            select(OutboxMessage).where(OutboxMessage.purpose == "acknowledgement")
        ).all()
        assert (row.state, row.attempts) == ("pending", 1)
        message_id = row.message_id

    sandbox.start_smtp()
    too_soon = run_pass(make_app("2025-11-03T10:01:30-05:00"))
    assert too_soon.outbox.sent == 0  # backing off
    later = make_app("2025-11-03T10:10:00-05:00")
    report = run_pass(later)

    assert report.ok and report.outbox.sent >= 1
    [raw] = sandbox.fetch_all(CITIZEN)
    assert parsed(raw)["Message-ID"] == message_id  # the retry reuses the Message-ID
    [ticket] = tickets(later.engine)
    assert ticket.acknowledged_at is not None
    assert ticket.acknowledged_at.isoformat() == "2025-11-03T15:10:00+00:00"


def test_references_are_sequential_per_year(sandbox: Sandbox, make_app: AppFactory) -> None:
    for n, when in enumerate(("2025-12-31T09:00", "2025-12-31T10:00", "2026-01-05T09:00")):
        sender = (
            "josee.tremblay@example.org",
            "john.smith@example.com",
            "marc.gagnon@example.net",
        )[n]
        sandbox.deliver(
            INFO, citizen_request(f"<r{n}@example.org>", sender=sender), received_at=office(when)
        )
    app = make_app("2026-01-05T10:00:00-05:00")

    run_pass(app)

    refs = sorted(t.ref for t in tickets(app.engine))
    assert refs == ["MRI-2025-00001", "MRI-2025-00002", "MRI-2026-00001"]


def test_without_move_the_message_is_copied_flagged_and_expunged_by_uid(
    sandbox: Sandbox, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    # A message someone else flagged \Deleted stays: only our own UIDs are expunged.
    sandbox.deliver(
        INFO, citizen_request("<other@example.org>"), received_at=office("2025-11-03T10:00")
    )
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=sandbox.imap_port, ssl=False) as client:
        client.login(INFO, "sandbox")
        client.select_folder("INBOX")
        [_ours, theirs] = sorted(client.search("ALL"))
        client.add_flags([theirs], [b"\\Deleted"])
    original_enter = ImapMailbox.__enter__

    def without_move(self: ImapMailbox) -> ImapMailbox:
        entered = original_enter(self)
        entered.has_move = False
        return entered

    monkeypatch.setattr(ImapMailbox, "__enter__", without_move)
    app = make_app("2025-11-03T10:01:00-05:00")

    report = run_pass(app)

    assert report.ok and report.fetched == 1 and report.moved == 1
    assert len(sandbox.fetch_all(INFO, "Traites")) == 1
    with IMAPClient("127.0.0.1", port=sandbox.imap_port, ssl=False) as client:
        client.login(INFO, "sandbox")
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == [theirs]  # still there, still flagged by its owner


def test_a_restored_mailbox_with_a_new_uidvalidity_opens_no_duplicate(
    sandbox: Sandbox, make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    raw = citizen_request()
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    # The mailbox is rebuilt from a backup: new UIDVALIDITY, the old message is back.
    sandbox.stop_imap()
    maildir = maildir_for(sandbox.root, INFO)
    for index in [*maildir.glob("dovecot*"), *maildir.glob(".*/dovecot*")]:
        index.unlink()
    time.sleep(1.1)  # Dovecot derives a new UIDVALIDITY from the clock
    sandbox.start_imap()
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-04T09:00:00-05:00")

    with caplog.at_level(logging.WARNING, logger="mailbot.ops.passes"):
        report = run_pass(app)

    assert "UIDVALIDITY changed" in caplog.text
    assert report.outcomes.get("duplicate") == 1
    assert len(tickets(app.engine)) == 1
    assert len(sandbox.fetch_all(CITIZEN)) == 1
