"""Who may act on a ticket by email, against the real servers: only the staff and supervisors
of the ticket's current queue; a ticket token and the ministry's domain are not enough."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from mailbot.app import App
from mailbot.ops.passes import run_pass
from mailbot.privacy.retention import set_legal_hold_by_ref
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from tests.conftest import AppFactory
from tests.intake.test_spine import (
    CITIZEN,
    COMPLAINTS,
    INFO,
    citizen_request,
    office,
    parsed,
    text_of,
)
from tests.staff.test_staff_server import AGENT, SUPERVISOR, citizen_replies, staff_reply

COMPLAINTS_AGENT = "agent.plaintes@mri.gouv.qc.ca"
OUTSIDER = "marc.gagnon@mri.gouv.qc.ca"  # the ministry's domain, authenticated, on no queue
COMPLAINT_TEXT = "Je porte plainte : mon NAS 046 454 286 a été divulgué par un employé."
MISDIRECTED_TEXT = "Bonjour, le commis du bureau de Québec m'a raccroché au nez deux fois."
FOLLOW_UP_TEXT = "Précision confidentielle : le nom de l'employé est Gaston Lachance."
CLI_HOLD = "demande d'accès 2025-041"

# Everything a person can do by email, each line in its own reply.
ATTEMPTS = (
    "Bonjour Madame, votre plainte est rejetée.",
    "#fermer",
    "#attente : Envoyez-nous une copie de votre carte.",
    "#assigner {sender}",
    "#catégorie renseignements",
    "#note\r\nNote interne de l'intrus.",
    "#conservation légale : dossier de l'intrus",
    "#fin conservation légale",
    "#anglais : correspondant hors Québec",
    "#comité 2025-12-01",
    "confirmer",
)


def mail_of(sandbox: Sandbox, address: str) -> list[bytes]:
    """What the SMTP server delivered to `address` (its Maildir)."""
    return sandbox.delivered_to(address)


def ticket_state(app: App) -> dict[str, object]:
    with app.engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT status, category, assignee, english_allowed, legal_hold_reason,"
                " answered_at, closed_at FROM ticket"
            )
        ).one()
        holds = connection.execute(sa.text("SELECT count(*) FROM ticket_hold")).scalar_one()
    return {**row._asdict(), "english_allowed": bool(row.english_allowed), "holds": holds}


def events(app: App) -> list[tuple[str, str, str]]:
    with app.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT kind, actor, detail FROM ticket_event ORDER BY id")
        ).all()
    return [(row.kind, row.actor, row.detail) for row in rows]


def open_complaint(sandbox: Sandbox, make_app: AppFactory) -> tuple[App, bytes]:
    raw = citizen_request(subject="Plainte", body=COMPLAINT_TEXT).replace(
        f"To: {INFO}".encode(), f"To: {COMPLAINTS}".encode()
    )
    sandbox.deliver(COMPLAINTS, raw, received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    [notice] = mail_of(sandbox, COMPLAINTS_AGENT)
    return app, notice


def follow_up(sandbox: Sandbox, at: str) -> None:
    [ack] = sandbox.fetch_all(CITIZEN)
    raw = citizen_request(
        "<req-2@example.org>", subject=f"RE: {parsed(ack)['Subject']}", body=FOLLOW_UP_TEXT
    ).replace(b"\r\n\r\n", f"\r\nIn-Reply-To: {parsed(ack)['Message-ID']}\r\n\r\n".encode(), 1)
    sandbox.deliver(COMPLAINTS, raw, received_at=office(at))


@pytest.mark.parametrize("sender", [AGENT, OUTSIDER], ids=["other_queue_staff", "no_queue"])
def test_a_reply_and_every_command_from_outside_the_complaint_queue_change_nothing(
    sandbox: Sandbox, make_app: AppFactory, sender: str
) -> None:
    sandbox.accept_mail_for(OUTSIDER)
    app, notice = open_complaint(sandbox, make_app)
    set_legal_hold_by_ref(app, "MRI-2025-00001", CLI_HOLD, "juriste")
    before = ticket_state(app)
    for number, body in enumerate(ATTEMPTS):
        reply = staff_reply(
            notice,
            body.format(sender=sender),
            sender=sender,
            message_id=f"<attempt-{number}@mri.gouv.qc.ca>",
        )
        sandbox.deliver(COMPLAINTS, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    report = run_pass(app)

    assert report.ok, report.summary()
    assert ticket_state(app) == before  # nothing changed: no close, hold, assignee, category
    assert citizen_replies(sandbox) == []  # nothing reached the citizen
    with app.engine.connect() as connection:
        states = connection.execute(
            sa.text("SELECT state FROM inbound_message WHERE kind = 'staff_reply' ORDER BY id")
        ).scalars()
        assert list(states) == ["held"] * len(ATTEMPTS)
    kinds = [kind for kind, _actor, _detail in events(app)]
    assert not [k for k in kinds if k.startswith("command_") or k in ("note", "reclassified")]
    assert kinds.count("message_held") == len(ATTEMPTS)
    # Each attempt is answered to its sender with the reason, and nothing of the complaint.
    answers = [parsed(raw) for raw in mail_of(sandbox, sender)]
    refusals = [m for m in answers if "refusé" in str(m["Subject"])]
    assert len(refusals) == len(ATTEMPTS)
    for refusal in refusals:
        assert "« plaintes »" in text_of(refusal)
        assert "NAS" not in text_of(refusal) and "046 454 286" not in text_of(refusal)
    assert len(answers) == len(refusals)
    # ... and held for the complaint queue's supervisors.
    held = [parsed(raw) for raw in mail_of(sandbox, SUPERVISOR)]
    assert sum("retenu" in str(m["Subject"]) for m in held) == len(ATTEMPTS)
    assert all(sender in text_of(m) for m in held if "retenu" in str(m["Subject"]))

    # The complainant writes again: it reaches the complaints agent only.
    follow_up(sandbox, "2025-11-05T09:00")
    later = make_app("2025-11-05T09:05:00-05:00")
    run_pass(later)
    assert any(FOLLOW_UP_TEXT in text_of(parsed(r)) for r in mail_of(sandbox, COMPLAINTS_AGENT))
    assert not any(b"Gaston Lachance" in raw for raw in mail_of(sandbox, sender))
    assert not any(b"046 454 286" in raw for raw in mail_of(sandbox, sender))


def test_information_staff_hand_a_misdirected_complaint_over_and_then_cannot_act_on_it(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    # Read as a request for information; the agent sees that it is a complaint.
    sandbox.deliver(
        INFO, citizen_request(body=MISDIRECTED_TEXT), received_at=office("2025-11-03T10:00")
    )
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = mail_of(sandbox, AGENT)
    sandbox.deliver(
        INFO, staff_reply(notice, "#catégorie plainte"), received_at=office("2025-11-04T09:00")
    )
    app = make_app("2025-11-04T09:05:00-05:00")
    run_pass(app)

    state = ticket_state(app)
    assert state["category"] == "complaint"
    assert ("reclassified", AGENT) in [(kind, actor) for kind, actor, _ in events(app)]
    # The complaints staff are told, with the request, and can answer it from that notice.
    [handover] = [parsed(r) for r in mail_of(sandbox, COMPLAINTS_AGENT)]
    assert "transmis" in str(handover["Subject"])
    assert AGENT in text_of(handover) and MISDIRECTED_TEXT in text_of(handover)
    assert citizen_replies(sandbox) == []

    # The information agent no longer acts on it: a reply is refused, answered and held.
    agent_mail_before = len(mail_of(sandbox, AGENT))
    sandbox.deliver(
        INFO,
        staff_reply(
            notice, "Bonjour, votre plainte est close.", message_id="<late@mri.gouv.qc.ca>"
        ),
        received_at=office("2025-11-04T10:00"),
    )
    follow_up(sandbox, "2025-11-04T10:30")
    app = make_app("2025-11-04T10:35:00-05:00")
    run_pass(app)
    assert citizen_replies(sandbox) == []
    assert ticket_state(app)["status"] == "open"
    new_for_agent = [parsed(r) for r in mail_of(sandbox, AGENT)[agent_mail_before:]]
    assert [("refusé" in str(m["Subject"])) for m in new_for_agent] == [True]
    assert not any(FOLLOW_UP_TEXT in text_of(m) for m in new_for_agent)  # no leaked follow-up
    assert any(FOLLOW_UP_TEXT in text_of(parsed(r)) for r in mail_of(sandbox, COMPLAINTS_AGENT))

    # The complaints agent answers from the hand-over notice: it reaches the citizen.
    raw_handover = mail_of(sandbox, COMPLAINTS_AGENT)[0]
    sandbox.deliver(
        COMPLAINTS,
        staff_reply(
            raw_handover,
            "Bonjour Madame, nous traitons votre plainte.",
            sender=COMPLAINTS_AGENT,
            message_id="<answer@mri.gouv.qc.ca>",
        ),
        received_at=office("2025-11-04T11:00"),
    )
    run_pass(make_app("2025-11-04T11:05:00-05:00"))
    [answer] = citizen_replies(sandbox)
    assert "nous traitons votre plainte" in text_of(parsed(answer))


COLLEAGUE = "sophie.lavoie@mri.gouv.qc.ca"  # a second agent of the information queue
TWO_LINES = "#conservation légale : {reason}\r\n#fin conservation légale"


def hold_record(app: App) -> tuple[object, object, object]:
    with app.engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT legal_hold_reason, legal_hold_by, legal_hold_via FROM ticket")
        ).one()
    return row.legal_hold_reason, row.legal_hold_by, row.legal_hold_via


def test_the_two_line_email_lifts_neither_a_command_line_hold_nor_another_placers_hold(
    sandbox: Sandbox, make_app: AppFactory, settings: Settings
) -> None:
    sandbox.accept_mail_for(COLLEAGUE)
    mailboxes = tuple(
        m.model_copy(update={"staff": (*m.staff, COLLEAGUE)}) if m.name == "renseignements" else m
        for m in settings.mailboxes
    )
    custom = settings.model_copy(update={"mailboxes": mailboxes})
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00", custom)
    run_pass(app)
    [notice] = mail_of(sandbox, AGENT)
    set_legal_hold_by_ref(app, "MRI-2025-00001", CLI_HOLD, "juriste")

    def send(sender: str, body: str, number: int, at: str) -> App:
        raw = staff_reply(notice, body, sender=sender, message_id=f"<h-{number}@mri.gouv.qc.ca>")
        sandbox.deliver(INFO, raw, received_at=office(at))
        later = make_app(f"{at}:00-05:00", custom)
        run_pass(later)
        return later

    # A command-line hold: neither its queue's agent nor a supervisor lifts it by email.
    app = send(AGENT, TWO_LINES.format(reason="dossier 1"), 1, "2025-11-04T09:00")
    assert hold_record(app) == (CLI_HOLD, "juriste", "cli")
    app = send(SUPERVISOR, TWO_LINES.format(reason="dossier 2"), 2, "2025-11-04T10:00")
    assert hold_record(app) == (CLI_HOLD, "juriste", "cli")
    assert any("ligne de commande" in text_of(parsed(r)) for r in mail_of(sandbox, SUPERVISOR))

    # A hold placed by email by the agent: a colleague's two lines leave it the agent's.
    set_legal_hold_by_ref(app, "MRI-2025-00001", None, "juriste")
    app = send(AGENT, "#conservation légale : poursuite 500-17-1", 3, "2025-11-05T09:00")
    assert hold_record(app) == ("poursuite 500-17-1", AGENT, "email")
    app = send(COLLEAGUE, TWO_LINES.format(reason="dossier 3"), 4, "2025-11-05T10:00")
    assert hold_record(app) == ("poursuite 500-17-1", AGENT, "email")
    assert any("seule la personne" in text_of(parsed(r)) for r in mail_of(sandbox, COLLEAGUE))

    # The queue's supervisor may lift it (the same two lines: the hold keeps its owner, then
    # the supervisor lifts it).
    app = send(SUPERVISOR, TWO_LINES.format(reason="dossier 4"), 5, "2025-11-05T11:00")
    assert hold_record(app) == (None, None, None)
