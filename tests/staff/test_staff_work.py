"""Staff work as a specification, without servers: replies relayed, commands applied in
order, anything doubtful held (in-memory mailboxes and relay, real SQLite)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from mailbot.app import App
from mailbot.mail.render import PURPOSE_HEADER
from mailbot.ops.passes import run_pass
from mailbot.privacy.retention import set_legal_hold_by_ref
from mailbot.settings import Settings
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import AGENT, CITIZEN, INFO, at, request

PASSING = (
    "Authentication-Results: mx.mri.gouv.qc.ca; dkim=pass header.d=mri.gouv.qc.ca; "
    "dmarc=pass header.from=mri.gouv.qc.ca\r\n"
)


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(raw: bytes) -> str:
    body = parsed(raw).get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def opened(make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender) -> bytes:
    """A request on 2025-11-03, processed: the notice the agent received."""
    memory["renseignements"].deliver(request(), at("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = relay.to(AGENT)
    return notice


def reply(notice: bytes, body: str, *, auth: str = PASSING) -> bytes:
    """What Outlook sends when the agent presses Reply on the notice and writes `body`."""
    original = parsed(notice)
    return (
        f"{auth}From: Agente Info <{AGENT}>\r\nTo: {INFO}\r\n"
        f"Subject: RE: {original['Subject']}\r\nMessage-ID: <reply-1@mri.gouv.qc.ca>\r\n"
        f"In-Reply-To: {original['Message-ID']}\r\nReferences: {original['Message-ID']}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n\r\n-----Message d'origine-----\r\nDe : Renseignements <{INFO}>\r\n"
        f"Envoyé : 3 novembre 2025 10:01\r\nÀ : {AGENT}\r\nObjet : x\r\n\r\n{text_of(notice)}\r\n"
    ).encode()


def staff_pass(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender, body: str, **kw: str
) -> App:
    notice = opened(make_app, memory, relay)
    memory["renseignements"].deliver(reply(notice, body, **kw), at("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")
    run_pass(app)
    return app


def ticket(app: App) -> dict[str, object]:
    with app.engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT * FROM ticket")).mappings().one())


def events(app: App) -> list[str]:
    with app.engine.connect() as connection:
        return list(
            connection.execute(sa.text("SELECT kind FROM ticket_event ORDER BY id")).scalars()
        )


COLLEAGUE = "sophie.lavoie@mri.gouv.qc.ca"  # on the information queue's staff (see below)
OUTSIDER = "marc.gagnon@mri.gouv.qc.ca"  # of the ministry's domain, on no queue
SUPERVISOR = "superviseur@mri.gouv.qc.ca"


@pytest.fixture
def fast_settings(fast_settings: Settings) -> Settings:
    """The example configuration with a second agent on the information queue."""
    mailboxes = tuple(
        m.model_copy(update={"staff": (*m.staff, COLLEAGUE)}) if m.name == "renseignements" else m
        for m in fast_settings.mailboxes
    )
    return fast_settings.model_copy(update={"mailboxes": mailboxes})


def _by(raw: bytes, sender: str, message_id: str) -> bytes:
    """The same reply, written by `sender` (authenticated like any staff member)."""
    return raw.replace(
        f"From: Agente Info <{AGENT}>".encode(), f"From: <{sender}>".encode()
    ).replace(b"<reply-1@mri.gouv.qc.ca>", f"<{message_id}>".encode())


def test_an_authenticated_reply_reaches_the_citizen_without_the_quoted_history(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    app = staff_pass(make_app, memory, relay, "La bourse est offerte jusqu'au 1er mars.")

    [_ack, answer] = relay.to(CITIZEN)
    assert "La bourse est offerte jusqu'au 1er mars." in text_of(answer)
    assert "Message d'origine" not in text_of(answer)
    assert parsed(answer)["From"].addresses[0].addr_spec == INFO
    assert ticket(app)["status"] == "answered"


def test_a_reply_without_our_servers_verdict_is_held_and_the_queue_told(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    app = staff_pass(make_app, memory, relay, "Voici la réponse.", auth="")

    assert len(relay.to(CITIZEN)) == 1  # the acknowledgement only
    assert "message_held" in events(app)
    assert "retenu" in str(parsed(relay.to(AGENT)[-1])["Subject"])


def test_commands_apply_in_order_each_seeing_the_ones_before(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    # The supervisor works on both queues: after the hand-over, they may still assign it.
    notice = opened(make_app, memory, relay)
    body = "#catégorie plainte\r\n#assigner agent.plaintes@mri.gouv.qc.ca"
    raw = _by(reply(notice, body), SUPERVISOR, "by-supervisor@mri.gouv.qc.ca")
    memory["renseignements"].deliver(raw, at("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")
    run_pass(app)

    row = ticket(app)
    assert (row["category"], row["assignee"]) == ("complaint", "agent.plaintes@mri.gouv.qc.ca")
    assert [e for e in events(app) if e.startswith("command_")] == [
        "command_category",
        "command_assign",
    ]


def test_after_handing_a_ticket_to_another_queue_the_next_command_is_refused_and_held(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    app = staff_pass(
        make_app,
        memory,
        relay,
        "#catégorie plainte\r\n#assigner agent.plaintes@mri.gouv.qc.ca",
    )

    row = ticket(app)
    assert (row["category"], row["assignee"]) == ("information", None)  # nothing applied
    assert "message_held" in events(app)
    [refused] = [raw for raw in relay.to(AGENT) if "refusé" in str(parsed(raw)["Subject"])]
    assert "#assigner agent.plaintes@mri.gouv.qc.ca : vous ne faites pas partie" in text_of(refused)
    assert "« plaintes »" in text_of(refused)
    # The supervisors' digest goes in the same pass, in either order: the notice is picked by
    # its purpose.
    [held] = [raw for raw in relay.to(SUPERVISOR) if parsed(raw)[PURPOSE_HEADER] == "held_notice"]
    assert "retenu" in str(parsed(held)["Subject"])
    assert relay.to("agent.plaintes@mri.gouv.qc.ca") == []


def test_one_refused_command_undoes_the_reply_and_tells_its_author(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    app = staff_pass(
        make_app,
        memory,
        relay,
        "#fermer\r\n#assigner renseignements@mri.gouv.qc.ca\r\n\r\nBonjour.",
    )

    assert ticket(app)["status"] == "open"
    assert len(relay.to(CITIZEN)) == 1
    error = relay.to(AGENT)[-1]
    assert "#assigner renseignements@mri.gouv.qc.ca : " in text_of(error)
    assert "boîte de mailbot" in text_of(error)


def _legal_hold(app: App) -> object:
    with app.engine.connect() as connection:
        return connection.execute(sa.text("SELECT legal_hold_at FROM ticket")).scalar_one()


def test_a_legal_hold_is_lifted_by_email_only_by_who_placed_it_or_a_supervisor(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    notice = opened(make_app, memory, relay)
    release = reply(notice, "#fin conservation légale")
    hold = reply(notice, "#conservation légale : dossier judiciaire 500-17-000001-255")
    inbox = memory["renseignements"]
    inbox.deliver(hold, at("2025-11-04T09:00"))
    run_pass(make_app("2025-11-04T09:05:00-05:00"))
    assert _legal_hold(make_app("2025-11-04T09:05:00-05:00")) is not None

    inbox.deliver(_by(release, COLLEAGUE, "r-2@mri.gouv.qc.ca"), at("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")
    run_pass(app)
    assert _legal_hold(app) is not None  # a colleague cannot
    assert any("seule la personne qui a demandé" in text_of(raw) for raw in relay.to(COLLEAGUE))

    inbox.deliver(_by(release, SUPERVISOR, "r-3@mri.gouv.qc.ca"), at("2025-11-06T09:00"))
    app = make_app("2025-11-06T09:05:00-05:00")
    run_pass(app)
    assert _legal_hold(app) is None  # the queue's supervisor can


def test_a_legal_hold_placed_from_the_command_line_is_not_lifted_by_email(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    notice = opened(make_app, memory, relay)
    app = make_app("2025-11-04T08:00:00-05:00")
    set_legal_hold_by_ref(app, ticket(app)["ref"], "demande d'accès 2025-041", "juriste")  # type: ignore[arg-type]

    memory["renseignements"].deliver(
        _by(reply(notice, "#fin conservation légale"), SUPERVISOR, "r-4@mri.gouv.qc.ca"),
        at("2025-11-04T09:00"),
    )
    app = make_app("2025-11-04T09:05:00-05:00")
    run_pass(app)

    assert _legal_hold(app) is not None
    assert any("ligne de commande" in text_of(raw) for raw in relay.to(SUPERVISOR))
