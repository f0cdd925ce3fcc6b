"""Staff work from their mail client, against the real servers, and only staff can."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import OutboxMessage, Ticket, TicketDeadline, TicketEvent, TicketHold
from mailbot.db.store import session_scope
from mailbot.mail.render import INTERNAL_MARKER
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from tests.conftest import AppFactory
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of

AGENT = "agent.info@mri.gouv.qc.ca"
SUPERVISOR = "superviseur@mri.gouv.qc.ca"
PASSING = (
    "Authentication-Results: mx.mri.gouv.qc.ca; dkim=pass header.d=mri.gouv.qc.ca; "
    "spf=pass smtp.mailfrom=mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca\r\n"
)


def open_ticket(sandbox: Sandbox, make_app: AppFactory) -> tuple[App, bytes]:
    """A citizen's request, processed: returns the app and the notice the agent received."""
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    [notice] = sandbox.fetch_all(AGENT)
    return app, notice


def staff_reply(
    notice: bytes,
    body: str,
    *,
    sender: str = AGENT,
    auth: str = PASSING,
    message_id: str = "<reply-1@mri.gouv.qc.ca>",
    in_reply_to: str | None = None,
) -> bytes:
    """What Outlook sends when the agent presses Reply on the notice and writes `body`."""
    original = parsed(notice)
    quoted = text_of(original)
    reply_to = in_reply_to or str(original["Message-ID"])
    return (
        f"{auth}"
        f"From: Agente Info <{sender}>\r\n"
        f"To: {INFO}\r\n"
        f"Subject: RE: {original['Subject']}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"In-Reply-To: {reply_to}\r\n"
        f"References: {reply_to}\r\n"
        "Date: Tue, 4 Nov 2025 09:00:00 -0500\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
        "\r\n"
        "-----Message d'origine-----\r\n"
        f"De : Renseignements - MRIF <{INFO}>\r\n"
        "Envoyé : 3 novembre 2025 10:01\r\n"
        f"À : {sender}\r\n"
        f"Objet : {original['Subject']}\r\n"
        "\r\n"
        f"{quoted}\r\n"
    ).encode()


def ticket_row(app: App) -> Ticket:
    with session_scope(app.engine) as session:
        [ticket] = session.exec(select(Ticket)).all()
        return ticket


def event_kinds(app: App) -> list[str]:
    with session_scope(app.engine) as session:
        return list(session.exec(select(TicketEvent.kind).order_by(col(TicketEvent.id))).all())


def citizen_replies(sandbox: Sandbox) -> list[bytes]:
    """Messages in the citizen's mailbox other than the acknowledgement."""
    return [
        raw for raw in sandbox.fetch_all(CITIZEN) if parsed(raw)["Auto-Submitted"] != "auto-replied"
    ]


def test_the_notice_gives_staff_the_request_without_the_citizens_address_in_headers(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, raw = open_ticket(sandbox, make_app)
    notice = parsed(raw)
    headers = "\n".join(f"{k}: {v}" for k, v in notice.items())
    assert CITIZEN not in headers  # "Reply all" cannot reach the citizen
    assert notice["Reply-To"] == INFO
    assert "MRI-2025-00001" in notice["Subject"]
    assert re.search(r"<mb\.MRI-2025-00001\.", notice["Message-ID"])
    text = text_of(notice)
    assert "je voudrais des renseignements sur les bourses" in text
    assert "2025-11-17" in notice["Subject"]
    assert INTERNAL_MARKER in text


def test_an_authenticated_reply_reaches_the_citizen_once_without_the_quoted_text(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    reply = staff_reply(
        notice,
        "Bonjour Madame,\r\n\r\nLa bourse est offerte jusqu'au 1er mars.\r\n\r\nSophie Lavoie",
    )
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    # The same reply arrives a second time, through another path (new bytes, same Message-ID).
    sandbox.deliver(INFO, b"X-Resent: yes\r\n" + reply, received_at=office("2025-11-04T09:01"))
    app = make_app("2025-11-04T09:05:00-05:00")

    report = run_pass(app)

    assert report.ok, report.summary()
    [raw] = citizen_replies(sandbox)
    answer = parsed(raw)
    assert answer["From"].addresses[0].addr_spec == INFO
    assert [a.addr_spec for a in answer["To"].addresses] == [CITIZEN]
    assert answer["In-Reply-To"] == "<req-1@example.org>"
    assert "MRI-2025-00001" in answer["Subject"]
    assert answer["Auto-Submitted"] is None
    text = text_of(answer)
    assert "La bourse est offerte jusqu'au 1er mars." in text
    assert "Message d'origine" not in text
    assert INTERNAL_MARKER not in text
    assert AGENT not in text
    ticket = ticket_row(app)
    assert ticket.status == "answered"
    assert ticket.answered_at is not None
    assert ticket.answered_at.isoformat() == "2025-11-04T14:05:00+00:00"
    with session_scope(app.engine) as session:
        met = session.exec(select(TicketDeadline.commitment, TicketDeadline.met_at)).all()
    assert dict(met)["info_reply"] == ticket.answered_at
    with session_scope(app.engine) as session:
        kinds = session.execute(sa.text("SELECT kind FROM inbound_message ORDER BY id")).all()
    assert [k[0] for k in kinds] == ["new_request", "staff_reply", "duplicate"]


@pytest.mark.parametrize(
    "case",
    [
        "no_verdict",
        "failing_dmarc",
        "foreign_server",
        "forged_token",
        "stranger",
        "spoofed_display_name",
    ],
)
def test_a_reply_that_fails_a_check_reaches_no_citizen_and_is_held(
    sandbox: Sandbox, make_app: AppFactory, case: str
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    body = "La réponse officielle."
    token = str(parsed(notice)["Message-ID"])
    raw = {
        "no_verdict": lambda: staff_reply(notice, body, auth=""),
        "failing_dmarc": lambda: staff_reply(
            notice,
            body,
            auth=PASSING.replace("dmarc=pass", "dmarc=fail").replace("dkim=pass", "dkim=fail"),
        ),
        "foreign_server": lambda: staff_reply(
            notice, body, auth=PASSING.replace("mx.mri.gouv.qc.ca;", "mx.attacker.example;")
        ),
        "forged_token": lambda: staff_reply(
            notice, body, in_reply_to=token[:-25] + "a" * 5 + token[-20:]
        ),
        "stranger": lambda: staff_reply(
            notice,
            body,
            sender="marc.gagnon@example.net",
            auth=PASSING.replace("mri.gouv.qc.ca", "example.net"),
        ),
        "spoofed_display_name": lambda: staff_reply(
            notice, body, sender="agent.info@mri.gouv.qc.ca.example.net"
        ),
    }[case]()
    sandbox.deliver(INFO, raw, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    ticket = ticket_row(app)
    assert ticket.answered_at is None and ticket.status == "open"
    with session_scope(app.engine) as session:
        states = session.execute(sa.text("SELECT state FROM inbound_message ORDER BY id")).all()
        assert [s[0] for s in states] == ["processed", "held"]
        held_notices = session.exec(
            select(OutboxMessage.recipient).where(col(OutboxMessage.purpose) == "held_notice")
        ).all()
        assert held_notices == [AGENT]


def run_command(
    sandbox: Sandbox, make_app: AppFactory, body: str, now: str = "2025-11-04T09:05:00-05:00"
) -> App:
    _app, notice = open_ticket(sandbox, make_app)
    sandbox.deliver(INFO, staff_reply(notice, body), received_at=office("2025-11-04T09:00"))
    app = make_app(now)
    run_pass(app)
    return app


def test_close_closes_the_ticket_and_relays_nothing_when_nothing_is_written(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    app = run_command(sandbox, make_app, "#fermer")
    ticket = ticket_row(app)
    assert ticket.status == "closed" and ticket.closed_at is not None
    assert citizen_replies(sandbox) == []
    assert "command_close" in event_kinds(app)


def test_hold_pauses_the_clock_and_sends_the_reason_to_the_citizen(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    app = run_command(sandbox, make_app, "#attente : Il nous manque votre numéro de dossier.")
    ticket = ticket_row(app)
    assert ticket.status == "on_hold"
    with session_scope(app.engine) as session:
        [hold] = session.exec(select(TicketHold)).all()
        assert hold.started_by == AGENT and hold.ended_at is None
    [raw] = citizen_replies(sandbox)
    assert "Il nous manque votre numéro de dossier." in text_of(parsed(raw))
    assert ticket_row(app).answered_at is None  # asking for information is not the answer
    # The citizen answers on Monday 2025-11-10: the clock restarts, moved by the days on hold.
    follow_up = citizen_request(
        "<req-2@example.org>",
        subject="RE: Votre demande MRI-2025-00001",
        body="Voici mon numéro : 12345.",
    )
    sandbox.deliver(INFO, follow_up, received_at=office("2025-11-10T09:00"))
    later = make_app("2025-11-10T09:05:00-05:00")
    run_pass(later)
    ticket = ticket_row(later)
    assert ticket.status == "open"
    # Held from Tue 11-04 to Mon 11-10: Wed, Thu, Fri, Mon paused; 2025-11-17 becomes 11-21.
    assert ticket.due_date is not None and ticket.due_date.isoformat() == "2025-11-21"
    forwarded = [parsed(r) for r in sandbox.fetch_all(AGENT)][-1]
    assert "Voici mon numéro" in text_of(forwarded)


def test_a_note_is_recorded_and_never_relayed(sandbox: Sandbox, make_app: AppFactory) -> None:
    app = run_command(sandbox, make_app, "#note\r\nAppel fait au demandeur, rappeler jeudi.")
    assert citizen_replies(sandbox) == []
    with session_scope(app.engine) as session:
        [note] = session.exec(select(TicketEvent).where(col(TicketEvent.kind) == "note")).all()
    assert "rappeler jeudi" in note.detail and note.actor == AGENT


def test_assign_category_and_english(sandbox: Sandbox, make_app: AppFactory) -> None:
    app = run_command(
        sandbox,
        make_app,
        f"#assigner {AGENT}\r\n#anglais : correspondant hors Québec\r\n#categorie plainte",
    )
    ticket = ticket_row(app)
    # A complaint is confidential: the agent outside the complaints queue is unassigned.
    assert ticket.assignee is None
    assert ticket.category == "complaint"
    assert ticket.due_date is not None and ticket.due_date.isoformat() == "2025-11-24"
    assert ticket.english_allowed and ticket.english_basis == "correspondant hors Québec"
    with session_scope(app.engine) as session:
        commitments = set(session.exec(select(TicketDeadline.commitment)).all())
    assert commitments == {"ack", "complaint_reply"}
    kinds = event_kinds(app)
    assert {"command_assign", "command_category", "command_english", "unassigned"} <= set(kinds)


def test_an_unknown_command_is_answered_to_its_sender_and_changes_nothing(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    app = run_command(sandbox, make_app, "#fermerr\r\nMerci de votre patience.")
    ticket = ticket_row(app)
    assert ticket.status == "open"
    assert citizen_replies(sandbox) == []
    error = [parsed(r) for r in sandbox.fetch_all(AGENT)][-1]
    assert "Commande" in error["Subject"] or "commande" in text_of(error).lower()
    assert "command_rejected" in event_kinds(app)


def test_a_follow_up_is_forwarded_to_the_staff_threaded(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, _notice = open_ticket(sandbox, make_app)
    [ack] = sandbox.fetch_all(CITIZEN)
    ack_id = str(parsed(ack)["Message-ID"])
    follow_up = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\n"
        "Subject: RE: Accusé de réception\r\nMessage-ID: <req-2@example.org>\r\n"
        f"In-Reply-To: {ack_id}\r\nReferences: <req-1@example.org> {ack_id}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nJ'ajoute une précision.\r\n"
    ).encode()
    sandbox.deliver(INFO, follow_up, received_at=office("2025-11-04T10:00"))
    app = make_app("2025-11-04T10:05:00-05:00")

    run_pass(app)

    forwarded = parsed(sandbox.fetch_all(AGENT)[-1])
    assert "MRI-2025-00001" in forwarded["Subject"]
    assert "J'ajoute une précision." in text_of(forwarded)
    assert CITIZEN not in "\n".join(f"{k}: {v}" for k, v in forwarded.items())
    assert len(sandbox.fetch_all(CITIZEN)) == 1  # no second acknowledgement
    assert "follow_up_forwarded" in event_kinds(app)


def test_times_are_the_clocks(sandbox: Sandbox, make_app: AppFactory) -> None:
    app = run_command(sandbox, make_app, "Votre réponse.", now="2025-11-05T11:00:00-05:00")
    assert ticket_row(app).answered_at == datetime.fromisoformat("2025-11-05T16:00:00+00:00")


def test_staff_attachments_are_relayed_to_the_citizen(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    text_reply = staff_reply(notice, "Voici le formulaire demandé.")
    headers, _, body = text_reply.partition(b"\r\n\r\n")
    headers = headers.replace(
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit",
        b'Content-Type: multipart/mixed; boundary="b1"',
    )
    with_attachment = (
        headers + b"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\n--b1\r\n"
        b"Content-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="formulaire.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--b1--\r\n"
    )
    sandbox.deliver(INFO, with_attachment, received_at=office("2025-11-04T09:00"))
    run_pass(make_app("2025-11-04T09:05:00-05:00"))

    [raw] = citizen_replies(sandbox)
    answer = parsed(raw)
    assert "Voici le formulaire demandé." in text_of(answer)
    [attachment] = list(answer.iter_attachments())
    assert attachment.get_filename() == "formulaire.pdf"
    assert attachment.get_content().startswith(b"%PDF-1.4")


def test_an_interview_date_starts_the_internship_result_clock(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    base = make_app("2025-11-03T10:00:00-05:00").settings
    stages = base.mailboxes[0].model_copy(
        update={
            "name": "stages",
            "address": "stages@mri.gouv.qc.ca",
            "display_name": "Stages - MRIF",
            "login": "stages@mri.gouv.qc.ca",
            "password_env": "MAILBOT_IMAP_PASSWORD_STAGES",
            "category": "internship",
            "commitments": ("internship_ack", "internship_result"),
            "staff": (AGENT,),
        }
    )
    with_stages = base.model_copy(update={"mailboxes": (*base.mailboxes, stages)})
    application = citizen_request(subject="Candidature de stage").replace(
        f"To: {INFO}".encode(), b"To: stages@mri.gouv.qc.ca"
    )
    sandbox.deliver("stages@mri.gouv.qc.ca", application, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00", with_stages))
    [notice] = sandbox.fetch_all(AGENT)
    reply = staff_reply(notice, "#entrevue 2025-11-20").replace(
        f"To: {INFO}".encode(), b"To: stages@mri.gouv.qc.ca"
    )
    sandbox.deliver("stages@mri.gouv.qc.ca", reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00", with_stages)

    run_pass(app)

    with session_scope(app.engine) as session:
        deadlines: dict[str, date] = dict(
            session.exec(select(col(TicketDeadline.commitment), col(TicketDeadline.due_date))).all()
        )
    assert {k: v.isoformat() for k, v in deadlines.items()} == {
        "internship_ack": "2025-11-05",
        "internship_result": "2025-12-11",
    }
    assert citizen_replies(sandbox) == []
    assert "command_interview" in event_kinds(app)


def test_the_citizens_attachments_reach_the_staff_with_the_notice(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    request = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\nSubject: Demande avec pièce\r\n"
        "Message-ID: <req-att@example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b2"\r\n\r\n'
        "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoir la pièce jointe.\r\n"
        "--b2\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="passeport.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfsj6IK\r\n--b2--\r\n"
    ).encode()
    sandbox.deliver(INFO, request, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))

    [notice] = [parsed(raw) for raw in sandbox.fetch_all(AGENT)]
    [attachment] = list(notice.iter_attachments())
    assert attachment.get_filename() == "passeport.pdf"
    assert "passeport.pdf" in text_of(notice)


def test_a_ticket_cannot_be_assigned_outside_the_staff(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    app = run_command(sandbox, make_app, "#assigner quelquun@example.com")
    assert ticket_row(app).assignee is None
    assert "command_rejected" in event_kinds(app)
    error = [parsed(r) for r in sandbox.fetch_all(AGENT)][-1]
    assert "personnel" in text_of(error)
