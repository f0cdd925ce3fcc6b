"""The notes address of a queue, against the real servers: staff write a note from the link of
a staff notice, through the SMTP server (which delivers renseignements+note@ into the
renseignements mailbox, as plus addressing does), and it is recorded on the ticket; it never
reaches a citizen, whatever its text, and never counts as an answer."""

from __future__ import annotations

import re
import smtplib
from datetime import date
from urllib.parse import parse_qs, unquote, urlsplit

from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import InboundMessage, OutboxMessage, TicketDeadline, TicketEvent
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from tests.conftest import AppFactory
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of
from tests.staff.test_staff_server import (
    AGENT,
    PASSING,
    citizen_replies,
    event_kinds,
    open_ticket,
    staff_reply,
    ticket_row,
)

NOTES = "renseignements+note@mri.gouv.qc.ca"
COMPLAINTS_AGENT = "agent.plaintes@mri.gouv.qc.ca"
# A note written exactly like an answer to the citizen.
LIKE_AN_ANSWER = (
    "Bonjour Madame Tremblay,\r\n\r\nLa bourse est offerte jusqu'au 1er mars.\r\n\r\n"
    "Sophie Lavoie, Renseignements"
)


def note_link(notice: bytes) -> tuple[str, str]:
    """The notes address and subject of the "note" link a staff notice offers."""
    found = re.search(r"mailto:(\S+)", text_of(parsed(notice)))
    assert found is not None, "the notice offers no note link"
    link = urlsplit(found.group(1))
    [subject] = parse_qs(link.query)["subject"]
    return unquote(link.path), subject


def note_from_link(
    notice: bytes,
    body: str,
    *,
    sender: str = AGENT,
    auth: str = PASSING,
    subject: str | None = None,
    message_id: str = "<note-1@mri.gouv.qc.ca>",
) -> tuple[str, bytes]:
    """What a mail client sends from the note link: a new message (no In-Reply-To) to the
    notes address, with the link's subject."""
    address, linked = note_link(notice)
    raw = (
        f"{auth}"
        f"From: Agente <{sender}>\r\n"
        f"To: {address}\r\n"
        f"Subject: {linked if subject is None else subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Date: Tue, 4 Nov 2025 09:00:00 -0500\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()
    return address, raw


def send(sandbox: Sandbox, sender: str, recipient: str, raw: bytes) -> None:
    """Through the sandbox's SMTP server, as the ministry's mail system would deliver it."""
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=15) as smtp:
        smtp.sendmail(sender, [recipient], raw)


def notes(app: App) -> list[TicketEvent]:
    with session_scope(app.engine) as session:
        return list(session.exec(select(TicketEvent).where(col(TicketEvent.kind) == "note")).all())


def info_reply(app: App) -> tuple[date, date, bool]:
    with session_scope(app.engine) as session:
        [row] = session.exec(
            select(TicketDeadline).where(col(TicketDeadline.commitment) == "info_reply")
        ).all()
        return row.clock_start, row.due_date, row.met_at is not None


def test_the_notice_offers_the_notes_address_beside_reply(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    address, subject = note_link(notice)
    assert address == NOTES
    assert subject.startswith("[MRI-2025-00001] Note interne : Demande de renseignements (mb.")
    assert NOTES in text_of(parsed(notice))


def test_a_note_written_like_an_answer_is_recorded_and_reaches_no_citizen(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    app, notice = open_ticket(sandbox, make_app)
    before = info_reply(app)
    address, raw = note_from_link(notice, LIKE_AN_ANSWER)
    send(sandbox, AGENT, address, raw)  # delivered to the renseignements mailbox
    later = make_app("2025-11-04T09:05:00-05:00")

    report = run_pass(later)

    assert report.ok, report.summary()
    assert citizen_replies(sandbox) == []
    [note] = notes(later)
    assert "La bourse est offerte jusqu'au 1er mars." in note.detail and note.actor == AGENT
    ticket = ticket_row(later)
    # Not an answer: the status, the answered instant and the clock are as they were.
    assert (ticket.status, ticket.answered_at, ticket.closed_at) == ("open", None, None)
    assert info_reply(later) == before == (date(2025, 11, 3), date(2025, 11, 17), False)
    with session_scope(later.engine) as session:
        [stored] = session.exec(
            select(InboundMessage).where(col(InboundMessage.kind) == "staff_reply")
        ).all()
        purposes = set(session.exec(select(OutboxMessage.purpose)).all())
    assert stored.state == "processed" and "note" in stored.flags.split(",")
    assert {"subject_token", "notes_address"} <= set(stored.rules.split(","))
    assert not purposes & {"reply", "hold_request", "incomplete_request"}


def test_a_note_is_never_a_command_nor_a_confirmation(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    # A reply held for confirmation (its first line looks like a command left unmarked)...
    held = staff_reply(notice, "Fermer\r\n\r\nMerci, votre dossier est complet.")
    sandbox.deliver(INFO, held, received_at=office("2025-11-04T09:00"))
    run_pass(make_app("2025-11-04T09:01:00-05:00"))
    # ... then, to the notes address, a confirmation and commands: all of it is a note.
    address, raw = note_from_link(notice, "confirmer\r\n#fermer\r\n#attente : motif")
    send(sandbox, AGENT, address, raw)
    later = make_app("2025-11-04T09:05:00-05:00")
    run_pass(later)

    assert citizen_replies(sandbox) == []
    assert ticket_row(later).status == "open"
    [note] = notes(later)
    assert note.detail.startswith("confirmer\n#fermer")
    kinds = event_kinds(later)
    assert "reply_confirmed" not in kinds
    assert not [kind for kind in kinds if kind.startswith("command_")]


def test_a_reply_to_the_notice_sent_to_the_notes_address_is_a_note(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    # "Reply", then the address changed to the notes address: the token is in In-Reply-To.
    reply = staff_reply(notice, LIKE_AN_ANSWER).replace(
        f"To: {INFO}\r\n".encode(), f"To: {NOTES}\r\n".encode(), 1
    )
    send(sandbox, AGENT, NOTES, reply)
    later = make_app("2025-11-04T09:05:00-05:00")
    run_pass(later)

    assert citizen_replies(sandbox) == []
    assert len(notes(later)) == 1 and ticket_row(later).answered_at is None


def test_a_note_from_someone_not_on_the_queue_is_refused_and_held(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    address, raw = note_from_link(notice, LIKE_AN_ANSWER, sender=COMPLAINTS_AGENT)
    send(sandbox, COMPLAINTS_AGENT, address, raw)
    later = make_app("2025-11-04T09:05:00-05:00")
    run_pass(later)

    assert citizen_replies(sandbox) == [] and notes(later) == []
    [refusal] = [parsed(raw) for raw in sandbox.fetch_all(COMPLAINTS_AGENT)]
    assert "n'a pas été traité" in text_of(refusal)
    with session_scope(later.engine) as session:
        states = session.exec(
            select(InboundMessage.state).where(col(InboundMessage.kind) == "staff_reply")
        ).all()
    assert states == ["held"]


def test_an_unauthenticated_note_is_held_and_not_recorded(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    # A forged To (the notes address) and the link's token, without the receiving server's
    # verdict: trusted no more than a reply would be.
    address, raw = note_from_link(notice, LIKE_AN_ANSWER, auth="")
    send(sandbox, AGENT, address, raw)
    later = make_app("2025-11-04T09:05:00-05:00")
    run_pass(later)

    assert citizen_replies(sandbox) == [] and notes(later) == []
    with session_scope(later.engine) as session:
        [stored] = session.exec(
            select(InboundMessage).where(col(InboundMessage.kind) == "staff_reply")
        ).all()
    assert stored.state == "held" and "authentication" in stored.reason


def test_a_note_without_its_link_is_held_for_a_person(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    address, raw = note_from_link(notice, LIKE_AN_ANSWER, subject="Note sur la demande de bourse")
    send(sandbox, AGENT, address, raw)
    later = make_app("2025-11-04T09:05:00-05:00")
    run_pass(later)

    assert citizen_replies(sandbox) == [] and notes(later) == []
    with session_scope(later.engine) as session:
        [stored] = session.exec(
            select(InboundMessage).where(
                col(InboundMessage.message_id) == "<note-1@mri.gouv.qc.ca>"
            )
        ).all()
    assert stored.state == "held" and "no signed link to a ticket" in stored.reason


def test_mail_to_the_notes_address_from_a_citizen_opens_nothing_and_is_held(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    request = citizen_request("<stray-1@example.org>").replace(
        f"To: {INFO}\r\n".encode(), f"To: {NOTES}\r\n".encode(), 1
    )
    send(sandbox, CITIZEN, NOTES, request)
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)

    assert sandbox.fetch_all(CITIZEN) == []  # no acknowledgement, no ticket
    with session_scope(app.engine) as session:
        [stored] = session.exec(select(InboundMessage)).all()
    assert stored.state == "held" and stored.ticket_id is None
    assert "notes address" in stored.reason
    [held_notice] = sandbox.fetch_all(AGENT)
    assert "retenu" in text_of(parsed(held_notice))
