"""The commands of one staff reply apply in order, each seeing the ones before it (real servers).

Staff put several commands at the top of one reply; each is checked against the ticket as the
commands above it left it, all in one transaction: if any is refused, none applies and the
sender is told which line and why.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import TicketDeadline, TicketEvent, TicketHold
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from tests.conftest import AppFactory
from tests.intake.test_spine import INFO, citizen_request, office, parsed, text_of
from tests.staff.test_staff_server import (
    AGENT,
    citizen_replies,
    event_kinds,
    staff_reply,
    ticket_row,
)

COMPLAINTS_AGENT = "agent.plaintes@mri.gouv.qc.ca"
SUPERVISOR = "superviseur@mri.gouv.qc.ca"  # supervises both the information and complaint queues


def with_programmes(settings: Settings) -> Settings:
    """The example configuration plus the internship and cooperation queues."""
    info = settings.mailboxes[0]

    def queue(name: str, category: str, commitments: tuple[str, ...]) -> object:
        return info.model_copy(
            update={
                "name": name,
                "address": f"{name}@mri.gouv.qc.ca",
                "display_name": f"{name.title()} - MRIF",
                "login": f"{name}@mri.gouv.qc.ca",
                "password_env": f"MAILBOT_IMAP_PASSWORD_{name.upper()}",
                "category": category,
                "commitments": commitments,
                "staff": (AGENT,),
            }
        )

    return settings.model_copy(
        update={
            "mailboxes": (
                *settings.mailboxes,
                queue("stages", "internship", ("internship_ack", "internship_result")),
                queue("cooperation", "cooperation", ("cooperation_ack", "cooperation_result")),
            )
        }
    )


def reply_with(sandbox: Sandbox, make_app: AppFactory, body: str, sender: str = AGENT) -> App:
    """An information request from 2025-11-03, then `sender`'s reply `body` the next day."""
    settings = with_programmes(make_app("2025-11-03T10:00:00-05:00").settings)
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00", settings))
    [notice] = sandbox.fetch_all(AGENT)
    reply = staff_reply(notice, body, sender=sender)
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00", settings)
    run_pass(app)
    return app


def deadlines(app: App) -> dict[str, tuple[date, date, bool]]:
    """commitment -> (clock start, due date, met)."""
    with session_scope(app.engine) as session:
        rows = session.exec(select(TicketDeadline)).all()
        return {
            row.commitment: (row.clock_start, row.due_date, row.met_at is not None) for row in rows
        }


def commands_applied(app: App) -> list[str]:
    return [k for k in event_kinds(app) if k.startswith("command_") and k != "command_rejected"]


@pytest.mark.parametrize(
    ("body", "category", "commitment", "due"),
    [
        (
            "#catégorie stage\r\n#entrevue 2025-11-20",
            "internship",
            "internship_result",
            "2025-12-11",
        ),
        (
            "#category internship\r\n#interview 20/11/2025",
            "internship",
            "internship_result",
            "2025-12-11",
        ),
        (
            "#catégorie coopération\r\n#comité 2025-11-20",
            "cooperation",
            "cooperation_result",
            "2026-01-09",
        ),
    ],
    ids=["fr-interview", "en-interview", "committee"],
)
def test_category_then_a_result_date_starts_the_new_queues_result_clock(
    sandbox: Sandbox, make_app: AppFactory, body: str, category: str, commitment: str, due: str
) -> None:
    app = reply_with(sandbox, make_app, body)

    ticket = ticket_row(app)
    assert ticket.category == category
    start, due_date, met = deadlines(app)[commitment]
    assert (start.isoformat(), due_date.isoformat(), met) == ("2025-11-20", due, False)
    assert ticket.due_date is not None and ticket.due_date.isoformat() == due
    assert "info_reply" not in deadlines(app)  # the information clock no longer applies
    clock = "committee" if commitment == "cooperation_result" else "interview"
    assert commands_applied(app) == ["command_category", f"command_{clock}"]
    assert "command_rejected" not in event_kinds(app)
    assert citizen_replies(sandbox) == []


def test_category_complaint_then_assign_to_the_complaints_staff(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    # The sender works on both queues: after the hand-over, they may still act on it.
    body = f"#catégorie plainte\r\n#assigner {COMPLAINTS_AGENT}"
    app = reply_with(sandbox, make_app, body, sender=SUPERVISOR)

    ticket = ticket_row(app)
    assert (ticket.category, ticket.assignee) == ("complaint", COMPLAINTS_AGENT)
    start, due_date, _met = deadlines(app)["complaint_reply"]
    assert (start.isoformat(), due_date.isoformat()) == ("2025-11-03", "2025-11-24")
    assert commands_applied(app) == ["command_category", "command_assign"]


def test_hold_then_note_sends_the_reason_and_keeps_the_rest_internal(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    app = reply_with(
        sandbox,
        make_app,
        "#attente : il manque votre formulaire signé\r\n#note\r\n\r\n"
        "Appelée le 4 novembre, elle l'envoie cette semaine.",
    )

    ticket = ticket_row(app)
    assert ticket.status == "on_hold"
    with session_scope(app.engine) as session:
        [hold] = session.exec(select(TicketHold)).all()
        [note] = session.exec(select(TicketEvent).where(col(TicketEvent.kind) == "note")).all()
    assert hold.reason == "il manque votre formulaire signé" and hold.ended_at is None
    assert "elle l'envoie cette semaine" in note.detail
    [request_to_citizen] = [text_of(parsed(raw)) for raw in citizen_replies(sandbox)]
    assert "il manque votre formulaire signé" in request_to_citizen
    assert "Appelée" not in request_to_citizen


def test_close_with_text_for_the_citizen_after_other_commands(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    app = reply_with(
        sandbox,
        make_app,
        f"#assigner {SUPERVISOR}\r\n#anglais : correspondant hors Québec\r\n#fermer\r\n\r\n"
        "Bonjour Madame,\r\n\r\nLa bourse est offerte jusqu'au 1er mars.",
    )

    ticket = ticket_row(app)
    assert (ticket.status, ticket.assignee) == ("closed", SUPERVISOR)
    assert ticket.english_allowed and ticket.answered_at is not None
    assert commands_applied(app) == ["command_assign", "command_english", "command_close"]
    [answer] = [text_of(parsed(raw)) for raw in citizen_replies(sandbox)]
    assert "La bourse est offerte jusqu'au 1er mars." in answer
    assert _met(app, "info_reply")


def _met(app: App, commitment: str) -> bool:
    return deadlines(app)[commitment][2]


@pytest.mark.parametrize(
    ("body", "refused_line", "sender"),
    [
        (
            "#catégorie plainte\r\n#assigner agent.info@mri.gouv.qc.ca",
            "#assigner agent.info@mri.gouv.qc.ca",
            SUPERVISOR,
        ),
        (f"#assigner {SUPERVISOR}\r\n#entrevue 2025-11-20", "#entrevue 2025-11-20", AGENT),
        (
            "#fermer\r\n#assigner renseignements@mri.gouv.qc.ca\r\n\r\nBonjour.",
            "#assigner renseignements@mri.gouv.qc.ca",
            AGENT,
        ),
    ],
    ids=["complaint-outside-queue", "interview-without-result-clock", "close-then-bad-assign"],
)
def test_one_refused_command_undoes_the_whole_reply_and_tells_the_sender(
    sandbox: Sandbox, make_app: AppFactory, body: str, refused_line: str, sender: str
) -> None:
    app = reply_with(sandbox, make_app, body, sender=sender)

    ticket = ticket_row(app)
    assert (ticket.category, ticket.status, ticket.assignee) == ("information", "open", None)
    assert deadlines(app)["info_reply"][1].isoformat() == "2025-11-17"
    assert commands_applied(app) == []
    assert "command_rejected" in event_kinds(app)
    assert citizen_replies(sandbox) == []
    [error] = [
        message
        for message in (parsed(raw) for raw in sandbox.fetch_all(sender))
        if "Commande non comprise" in str(message["Subject"])
    ]
    assert f"- {refused_line} :" in text_of(error)
