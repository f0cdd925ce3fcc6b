"""A referral sends what it announces (real servers: Dovecot, an SMTP relay with a SIZE).

Each referral carries whole what it names, or is not made and nobody outside is told; the
citizen hears of it only once the relay took it; a refusal for good undoes it; each command
is its own message, carrying what the citizen wrote since the one before.
Run on SQLite, and on PostgreSQL with MAILBOT_TEST_POSTGRES_URL set.
"""

from __future__ import annotations

import base64
import hashlib

from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import AccessEntry, OutboxMessage, Ticket, TicketDeadline
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from tests.conftest import AppFactory
from tests.intake.test_hostile import delivery_report
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of
from tests.staff.test_staff_server import AGENT, SUPERVISOR, citizen_replies, staff_reply

OTHER_BODY = "accueil@autre-organisme.example.org"
NOTE = "Les permis de travail relèvent du ministère de l'Immigration."
# 17 MB of a file that compresses to nothing useful: the bytes must arrive as they left.
BIG_FILE = hashlib.sha256(b"seed").digest() * (17_000_000 // 32)


def request_with(files: dict[str, bytes], body: str = "Je voudrais un permis de travail.") -> bytes:
    parts = [
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\nSubject: Permis de travail\r\n"
        "Message-ID: <req-permis@example.org>\r\nDate: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ]
    for name, payload in files.items():
        encoded = base64.encodebytes(payload).decode().replace("\n", "\r\n")
        parts.append(
            f'--b1\r\nContent-Type: application/pdf; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
        )
    parts.append("--b1--\r\n")
    return "".join(parts).encode()


def open_request(sandbox: Sandbox, make_app: AppFactory, raw: bytes) -> bytes:
    """The request, processed (its acknowledgement sent: the relay's SIZE is known); the
    notice the agent received."""
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    return notice


def refer(
    sandbox: Sandbox,
    make_app: AppFactory,
    notice: bytes,
    at: str,
    *,
    to: str = OTHER_BODY,
    number: int = 1,
) -> App:
    reply = staff_reply(
        notice, f"#référer : {to}\r\n\r\n{NOTE}", message_id=f"<refer-{number}@mri.gouv.qc.ca>"
    )
    sandbox.deliver(INFO, reply, received_at=office(at))
    app = make_app(f"{at}:30-05:00")
    run_pass(app)
    return app


def ticket_of(app: App) -> Ticket:
    with session_scope(app.engine) as session:
        [ticket] = session.exec(select(Ticket)).all()
        return ticket


def reply_met(app: App) -> object:
    with session_scope(app.engine) as session:
        return session.exec(
            select(TicketDeadline.met_at).where(TicketDeadline.commitment == "info_reply")
        ).one()


def agent_mail(sandbox: Sandbox, words: str) -> list[str]:
    return [
        text_of(parsed(raw)) for raw in sandbox.fetch_all(AGENT) if words in text_of(parsed(raw))
    ]


def test_a_request_with_17_mb_is_referred_with_its_file_whole(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.accept_mail_for(OTHER_BODY)
    notice = open_request(sandbox, make_app, request_with({"passeport.pdf": BIG_FILE}))

    app = refer(sandbox, make_app, notice, "2025-11-04T09:00")

    [referred] = sandbox.delivered_to(OTHER_BODY)
    message = parsed(referred)
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "passeport.pdf"
    assert attachment.get_content() == BIG_FILE  # whole, byte for byte
    text = text_of(message)
    assert "passeport.pdf (16,3 Mo)" in text and NOTE in text
    assert "Je voudrais un permis de travail." in text
    [told] = citizen_replies(sandbox)
    assert "passeport.pdf" in text_of(parsed(told)) and OTHER_BODY in text_of(parsed(told))
    ticket = ticket_of(app)
    assert (ticket.status, ticket.closed_reason) == ("closed", "referred")
    assert reply_met(app) is not None


def test_a_request_over_the_relays_size_is_not_referred_and_nobody_is_told_it_was(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.stop_smtp()
    sandbox.size_limit = 20 * 1024 * 1024  # the relay announces SIZE 20971520
    sandbox.start_smtp()
    sandbox.accept_mail_for(OTHER_BODY)
    notice = open_request(
        sandbox, make_app, request_with({"passeport.pdf": BIG_FILE, "photo.pdf": b"%PDF-1.4 x"})
    )

    app = refer(sandbox, make_app, notice, "2025-11-04T09:00")

    assert sandbox.delivered_to(OTHER_BODY) == []
    assert citizen_replies(sandbox) == []
    ticket = ticket_of(app)
    assert (ticket.status, ticket.closed_reason) == ("open", None)
    assert reply_met(app) is None
    [told] = agent_mail(sandbox, "rien n'a été transmis, ni à l'organisme ni au citoyen")
    assert "accepte au plus 20,0 Mo par message" in told
    assert "· passeport.pdf (16,3 Mo)" in told and "· photo.pdf (1 ko)" in told
    with session_scope(app.engine) as session:
        queued = session.exec(
            select(OutboxMessage.purpose).where(
                col(OutboxMessage.purpose).in_(["referral", "referral_notice"])
            )
        ).all()
        trail = session.exec(
            select(AccessEntry.action, AccessEntry.detail).where(
                col(AccessEntry.action).startswith("refused")
            )
        ).all()
    assert queued == []
    assert trail == [("refused_refer", "refer_too_large_smtp")]


def test_a_referral_the_relay_refuses_for_good_reopens_the_ticket_and_tells_only_its_author(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    notice = open_request(sandbox, make_app, citizen_request())

    # The relay refuses the address for good (550 5.1.1): the notice waiting for it goes
    # nowhere, the ticket is open again and its clock unmet; its author learns why.
    app = refer(sandbox, make_app, notice, "2025-11-04T09:00", to="inconnu@autre.example.org")
    run_pass(make_app("2025-11-04T09:10:00-05:00"))

    assert citizen_replies(sandbox) == []
    ticket = ticket_of(app)
    assert (ticket.status, ticket.closed_reason, ticket.answered_at) == ("open", None, None)
    assert reply_met(app) is None
    [report] = agent_mail(sandbox, "que vous avez référée à un autre organisme")
    assert "Le citoyen n'a pas été avisé du renvoi" in report
    assert "le dossier est rouvert" in report
    with session_scope(app.engine) as session:
        states = dict(
            session.exec(
                select(OutboxMessage.purpose, OutboxMessage.state).where(
                    col(OutboxMessage.purpose).in_(["referral", "referral_notice"])
                )
            ).all()
        )
    assert states == {"referral": "failed", "referral_notice": "withdrawn"}

    # Referred again, to the right address: this one goes, and the citizen is told of it.
    sandbox.accept_mail_for(OTHER_BODY)
    refer(sandbox, make_app, notice, "2025-11-05T09:00", number=2)
    assert len(sandbox.delivered_to(OTHER_BODY)) == 1
    [told] = citizen_replies(sandbox)
    assert OTHER_BODY in text_of(parsed(told))


def test_a_referral_the_relay_took_then_reported_undelivered_reopens_the_ticket(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    """The relay took the referral (250) and the citizen was told; then a delivery report
    says the other body's address does not exist: the referral did not happen. The ticket is
    open again, its clock unmet, and its author is told the citizen already heard of it."""
    sandbox.accept_mail_for(OTHER_BODY)
    notice = open_request(sandbox, make_app, citizen_request())
    app = refer(sandbox, make_app, notice, "2025-11-04T09:00")
    run_pass(make_app("2025-11-04T09:05:00-05:00"))
    assert len(citizen_replies(sandbox)) == 1
    with session_scope(app.engine) as session:
        [referral_id] = session.exec(
            select(OutboxMessage.message_id).where(OutboxMessage.purpose == "referral")
        ).all()
    sandbox.deliver(
        INFO, delivery_report(referral_id, OTHER_BODY), received_at=office("2025-11-04T11:00")
    )
    later = make_app("2025-11-04T11:05:00-05:00")

    run_pass(later)

    ticket = ticket_of(later)
    assert (ticket.status, ticket.closed_reason, ticket.answered_at) == ("open", None, None)
    assert reply_met(later) is None
    [report] = agent_mail(sandbox, "que vous avez référée à un autre organisme")
    assert "le citoyen a déjà été avisé du renvoi" in report
    assert "le dossier est rouvert" in report


def test_the_citizen_is_told_only_once_the_relay_took_the_referral(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.accept_mail_for(OTHER_BODY)
    notice = open_request(sandbox, make_app, citizen_request())
    sandbox.stop_smtp()  # the relay is down when the referral is made

    app = refer(sandbox, make_app, notice, "2025-11-04T09:00")

    with session_scope(app.engine) as session:
        states = dict(
            session.exec(
                select(OutboxMessage.purpose, OutboxMessage.state).where(
                    col(OutboxMessage.purpose).in_(["referral", "referral_notice"])
                )
            ).all()
        )
    assert states == {"referral": "pending", "referral_notice": "waiting"}
    assert reply_met(app) is None  # not before the relay took it
    sandbox.start_smtp()
    sandbox.accept_mail_for(OTHER_BODY)
    later = make_app("2025-11-04T10:00:00-05:00")
    run_pass(later)
    run_pass(make_app("2025-11-04T10:05:00-05:00"))

    assert len(sandbox.delivered_to(OTHER_BODY)) == 1
    assert len(citizen_replies(sandbox)) == 1
    met = reply_met(later)
    assert met is not None and met.isoformat() == "2025-11-04T14:00:30+00:00"  # type: ignore[attr-defined]

    # The next morning, the supervisors' digest lists it: who sent what outside, and where.
    # (Tuesday's digest, held back while the relay was down, may go out in the same pass as
    # Wednesday's: two messages sent in one pass arrive in either order.)
    run_pass(make_app("2025-11-05T08:35:00-05:00"))
    digests = [
        text_of(parsed(raw))
        for raw in sandbox.fetch_all(SUPERVISOR)
        if "Condensé du" in text_of(parsed(raw))
    ]
    assert sum("Condensé du mardi 4 novembre 2025" in text for text in digests) == 1
    [digest] = [text for text in digests if "Condensé du mercredi 5 novembre 2025" in text]
    assert (
        f"- MRI-2025-00001 : transmis à {OTHER_BODY} le mardi 4 novembre 2025 à 10 h 00, "
        f"par {AGENT}"
    ) in digest


def test_a_second_referral_after_a_follow_up_carries_the_follow_up(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.accept_mail_for(OTHER_BODY)
    notice = open_request(sandbox, make_app, citizen_request())
    refer(sandbox, make_app, notice, "2025-11-04T09:00")
    [_ack, told] = [parsed(raw) for raw in sandbox.fetch_all(CITIZEN)]
    follow_up = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\n"
        f"Subject: RE: {told['Subject']}\r\nMessage-ID: <follow-1@example.org>\r\n"
        f"In-Reply-To: {told['Message-ID']}\r\nReferences: {told['Message-ID']}\r\n"
        "Date: Wed, 5 Nov 2025 09:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "J'ai oublié : mon conjoint arrive le 2 décembre.\r\n"
    ).encode()
    sandbox.deliver(INFO, follow_up, received_at=office("2025-11-05T09:00"))
    run_pass(make_app("2025-11-05T09:01:00-05:00"))
    forward = sandbox.fetch_all(AGENT)[-1]  # the follow-up, forwarded to the agent

    app = refer(sandbox, make_app, forward, "2025-11-05T10:00", number=2)

    first, second = [parsed(raw) for raw in sandbox.delivered_to(OTHER_BODY)]
    assert "je voudrais des renseignements sur les bourses" in text_of(first)
    text = text_of(second)
    assert "mon conjoint arrive le 2 décembre" in text
    assert "je voudrais des renseignements sur les bourses" not in text  # sent already
    assert "Suite d'une demande transmise" in str(second["Subject"])
    assert len(citizen_replies(sandbox)) == 2
    ticket = ticket_of(app)
    assert (ticket.status, ticket.closed_reason) == ("closed", "referred")
    # A third referral, with nothing new and the ticket closed: refused, nothing sent.
    refer(sandbox, make_app, forward, "2025-11-06T10:00", number=3)
    assert len(sandbox.delivered_to(OTHER_BODY)) == 2
    assert agent_mail(sandbox, "ce dossier est déjà fermé : référé à un autre organisme")


def test_a_referral_of_a_ticket_under_legal_hold_is_refused(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.accept_mail_for(OTHER_BODY)
    notice = open_request(sandbox, make_app, citizen_request())
    held = staff_reply(notice, "#conservation légale : dossier judiciaire 2025-123")
    sandbox.deliver(INFO, held, received_at=office("2025-11-04T08:00"))
    run_pass(make_app("2025-11-04T08:05:00-05:00"))

    app = refer(sandbox, make_app, notice, "2025-11-04T09:00")

    assert sandbox.delivered_to(OTHER_BODY) == []
    assert citizen_replies(sandbox) == []
    assert ticket_of(app).status == "open"
    assert agent_mail(sandbox, "ce dossier est sous conservation légale")
