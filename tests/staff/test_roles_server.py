"""Roles per ticket, replies sent as the queue, replies naming two tickets (real servers).

Run on SQLite, and on PostgreSQL with MAILBOT_TEST_POSTGRES_URL set.
"""

from __future__ import annotations

from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import AccessEntry, InboundMessage, Ticket, TicketEvent
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from tests.conftest import AppFactory
from tests.intake.test_spine import (
    COMPLAINTS,
    INFO,
    citizen_request,
    office,
    parsed,
    text_of,
)
from tests.staff.test_staff_handoff import notice_for
from tests.staff.test_staff_server import (
    AGENT,
    PASSING,
    citizen_replies,
    open_ticket,
    staff_reply,
)


def tickets(app: App) -> dict[str, Ticket]:
    with session_scope(app.engine) as session:
        return {t.ref: t for t in session.exec(select(Ticket)).all()}


def states(app: App) -> list[tuple[str, str]]:
    with session_scope(app.engine) as session:
        rows = session.exec(
            select(InboundMessage.kind, InboundMessage.state).order_by(col(InboundMessage.id))
        ).all()
    return [(kind, state) for kind, state in rows]


# --- Roles per ticket -------------------------------------------------------------------------


def test_a_staff_members_complaint_to_another_queue_is_acknowledged_with_a_reference(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    # The information agent writes to the complaints mailbox as a private person.
    complaint = (
        f"{PASSING}From: Agente Info <{AGENT}>\r\nTo: {COMPLAINTS}\r\n"
        "Subject: Plainte personnelle\r\nMessage-ID: <perso-1@mri.gouv.qc.ca>\r\n"
        "Date: Mon, 3 Nov 2025 19:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Je désire porter plainte à titre personnel au sujet de mon passeport.\r\n"
    ).encode()
    sandbox.deliver(COMPLAINTS, complaint, received_at=office("2025-11-03T19:00"))
    app = make_app("2025-11-03T19:01:00-05:00")

    run_pass(app)

    [ticket] = tickets(app).values()
    assert (ticket.category, ticket.requester, ticket.status) == ("complaint", AGENT, "open")
    assert ticket.due_date is not None and ticket.due_date.isoformat() == "2025-11-25"
    [ack] = [
        parsed(raw)
        for raw in sandbox.fetch_all(AGENT)
        if "MRI-2025-00001" in str(parsed(raw)["Subject"])
    ]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert "MRI-2025-00001" in text_of(ack)
    assert states(app) == [("new_request", "processed")]

    # Her follow-up on her own complaint's thread is a citizen's, not a staff reply.
    follow_up = (
        f"{PASSING}From: Agente Info <{AGENT}>\r\nTo: {COMPLAINTS}\r\n"
        f"Subject: RE: {ack['Subject']}\r\nMessage-ID: <perso-2@mri.gouv.qc.ca>\r\n"
        f"In-Reply-To: {ack['Message-ID']}\r\nReferences: {ack['Message-ID']}\r\n"
        "Date: Tue, 4 Nov 2025 19:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nVoici mon numéro de passeport.\r\n"
    ).encode()
    sandbox.deliver(COMPLAINTS, follow_up, received_at=office("2025-11-04T19:00"))
    later = make_app("2025-11-04T19:01:00-05:00")
    run_pass(later)
    assert states(later)[-1] == ("follow_up", "processed")
    forwarded = sandbox.fetch_all("agent.plaintes@mri.gouv.qc.ca")[-1]
    assert "Voici mon numéro de passeport." in text_of(parsed(forwarded))


def test_a_staff_message_without_a_ticket_on_their_own_queue_is_still_held(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    raw = citizen_request("<note-1@mri.gouv.qc.ca>", sender=AGENT).replace(
        b"From:", PASSING.encode() + b"From:"
    )
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    assert tickets(app) == {}
    assert states(app) == [("staff_reply", "held")]


# --- Replies sent as the queue (Outlook "Send As") ---------------------------------------------


def sent_as_queue(
    notice: bytes, body: str, sender_header: str | None, auth: str = PASSING
) -> bytes:
    """What Outlook sends when the agent replies from the shared mailbox."""
    reply = staff_reply(notice, body, sender=INFO, auth=auth).replace(
        f"From: Agente Info <{INFO}>".encode(), f"From: Renseignements - MRIF <{INFO}>".encode()
    )
    if sender_header is None:
        return reply
    return reply.replace(b"To: ", f"Sender: {sender_header}\r\nTo: ".encode(), 1)


def test_a_reply_sent_as_the_queue_is_relayed_as_its_sender_s(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    reply = sent_as_queue(
        notice, "La bourse est offerte jusqu'au 1er mars.", f"Agente Info <{AGENT}>"
    )
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    [answer] = citizen_replies(sandbox)
    assert "La bourse est offerte jusqu'au 1er mars." in text_of(parsed(answer))
    assert tickets(app)["MRI-2025-00001"].status == "answered"
    with session_scope(app.engine) as session:
        actors = session.exec(
            select(TicketEvent.actor).where(col(TicketEvent.kind) == "reply_queued")
        ).all()
    assert actors == [AGENT]  # judged as the person it names


def test_a_reply_sent_as_the_queue_without_a_sender_is_held_and_the_queue_told(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    reply = sent_as_queue(notice, "La bourse est offerte jusqu'au 1er mars.", None)
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    assert states(app)[-1] == ("staff_reply", "held")
    [held] = [
        parsed(raw) for raw in sandbox.fetch_all(AGENT) if "retenu" in str(parsed(raw)["Subject"])
    ]
    assert "sans en-tête Sender" in text_of(held) or "without a Sender header" in text_of(held)


def test_a_citizen_forging_sender_under_the_queue_address_is_held(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    # No verdict of the ministry's server for its domain: a forgery from outside.
    forged = sent_as_queue(notice, "Votre bourse est refusée.", f"<{AGENT}>", auth="")
    sandbox.deliver(INFO, forged, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    assert states(app)[-1] == ("staff_reply", "held")
    assert tickets(app)["MRI-2025-00001"].status == "open"


# --- A reply naming two tickets ---------------------------------------------------------------


def test_a_reply_naming_two_tickets_reaches_no_citizen_and_its_sender_is_asked(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    other = citizen_request("<req-2@example.org>", sender="marc.gagnon@example.net")
    sandbox.deliver(INFO, other, received_at=office("2025-11-03T10:05"))
    run_pass(make_app("2025-11-03T10:10:00-05:00"))
    # The two notices are sent in the same pass, so they arrive in either order.
    notice = notice_for(sandbox, "MRI-2025-00001")
    # In-Reply-To names MRI-2025-00001; the subject, edited, names MRI-2025-00002.
    reply = staff_reply(notice, "#fermer\r\n\r\nVotre demande est traitée.").replace(
        b"Subject: RE: ", b"Subject: RE: (voir MRI-2025-00002) ", 1
    )
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    assert [raw for raw in sandbox.fetch_all("marc.gagnon@example.net")][1:] == []
    assert {t.status for t in tickets(app).values()} == {"open"}
    [question] = [
        parsed(raw)
        for raw in sandbox.fetch_all(AGENT)
        if "plusieurs dossiers" in str(parsed(raw)["Subject"])
    ]
    text = text_of(question)
    assert "MRI-2025-00001, MRI-2025-00002" in text and "names several tickets" in text
    assert "mb.MRI" not in str(question["Message-ID"])  # an answer to it acts on no ticket
    with session_scope(app.engine) as session:
        trail = session.exec(
            select(AccessEntry.ref, AccessEntry.action, AccessEntry.detail).where(
                col(AccessEntry.action).startswith("refused")
            )
        ).all()
    assert sorted(trail) == [
        ("MRI-2025-00001", "refused_message", "several_tickets"),
        ("MRI-2025-00002", "refused_message", "several_tickets"),
    ]
    assert states(app)[-1] == ("staff_reply", "held")
