"""Merge, canned answers, referral, and no command to a citizen by mistake (real servers).

Run on SQLite, and on PostgreSQL with MAILBOT_TEST_POSTGRES_URL set.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.job_rows import month_compliance
from mailbot.db.models import AccessEntry, InboundMessage, Ticket, TicketDeadline, TicketEvent
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.reporting.report import ReportRequest, build_report
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import AnswersSettings, Settings
from tests.conftest import AppFactory
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of
from tests.staff.test_staff_server import AGENT, citizen_replies, staff_reply

OTHER_BODY = "accueil@autre-organisme.example.org"
SECOND_BODY = "Bonjour, je vous écris de nouveau au sujet des bourses, sans réponse encore."


def tickets(app: App) -> dict[str, Ticket]:
    with session_scope(app.engine) as session:
        return {t.ref: t for t in session.exec(select(Ticket)).all()}


def notice_for(sandbox: Sandbox, ref: str) -> bytes:
    """The new-ticket notice the agent received for `ref` (the first mail naming it)."""
    return next(raw for raw in sandbox.fetch_all(AGENT) if ref in str(parsed(raw)["Subject"]))


def staff_answers(sandbox: Sandbox) -> list[str]:
    """The text of every command error the agent received."""
    return [
        text_of(parsed(raw))
        for raw in sandbox.fetch_all(AGENT)
        if "Commande non comprise" in str(parsed(raw)["Subject"])
    ]


def report_of(app: App, as_of: str) -> dict[str, tuple[int, int]]:
    """(cases, met) per commitment, every queue together, for November 2025."""
    report = build_report(
        app.engine,
        app.settings,
        app.calendar,
        ReportRequest(since=date(2025, 11, 1), until=date(2025, 11, 30)),
        as_of=datetime.fromisoformat(as_of),
    )
    return {c.commitment: (c.total.figures.cases, c.total.figures.met) for c in report.commitments}


def two_requests(sandbox: Sandbox, make_app: AppFactory) -> App:
    """The same citizen writes on Monday, then again on Tuesday: two tickets."""
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    second = citizen_request(message_id="<req-2@example.org>", body=SECOND_BODY)
    sandbox.deliver(INFO, second, received_at=office("2025-11-04T10:00"))
    app = make_app("2025-11-04T10:01:00-05:00")
    run_pass(app)
    assert sorted(tickets(app)) == ["MRI-2025-00001", "MRI-2025-00002"]
    return app


def test_a_duplicate_merged_joins_the_ticket_kept_and_mail_on_its_reference_follows(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    two_requests(sandbox, make_app)
    acks = {
        str(parsed(raw)["Message-ID"]): raw
        for raw in sandbox.fetch_all(CITIZEN)
        if "MRI-2025-00002" in str(parsed(raw)["Subject"])
    }
    [second_ack_id] = acks
    reply = staff_reply(notice_for(sandbox, "MRI-2025-00002"), "#fusionner MRI-2025-00001")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")

    run_pass(app)
    run_pass(make_app("2025-11-05T09:10:00-05:00"))  # a second pass sends nothing again

    found = tickets(app)
    duplicate, kept = found["MRI-2025-00002"], found["MRI-2025-00001"]
    assert (duplicate.status, duplicate.closed_reason) == ("closed", "merged")
    assert duplicate.merged_into == "MRI-2025-00001"
    assert kept.status == "open" and kept.receipt_date == date(2025, 11, 3)
    with session_scope(app.engine) as session:
        messages = session.exec(
            select(InboundMessage.message_id, InboundMessage.ticket_id).where(
                col(InboundMessage.message_id).in_(["<req-1@example.org>", "<req-2@example.org>"])
            )
        ).all()
        kinds = session.exec(select(TicketEvent.kind).where(TicketEvent.ticket_id == kept.id)).all()
    assert {ticket_id for _, ticket_id in messages} == {kept.id}  # the history joined
    assert "merged_from" in kinds and kinds.count("opened") == 2
    # The citizen is told once which reference to use.
    [notice] = [r for r in citizen_replies(sandbox) if "MRI-2025-00001" in text_of(parsed(r))]
    assert "MRI-2025-00001" in str(parsed(notice)["Subject"])
    assert "utilisez désormais le numéro MRI-2025-00001" in str(parsed(notice)["Subject"])
    assert parsed(notice)["From"].addresses[0].addr_spec == INFO

    # A follow-up answering the duplicate's acknowledgement (its signed token), and one that
    # quotes the old reference in its subject only, both land on the ticket kept.
    follow_up = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\n"
        "Subject: RE: Demande de renseignements [MRI-2025-00002]\r\n"
        "Message-ID: <follow-1@example.org>\r\n"
        f"In-Reply-To: {second_ack_id}\r\nReferences: {second_ack_id}\r\n"
        "Date: Thu, 6 Nov 2025 09:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nVoici mon formulaire.\r\n"
    ).encode()
    by_subject = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {INFO}\r\n"
        "Subject: Mon dossier MRI-2025-00002\r\nMessage-ID: <follow-2@example.org>\r\n"
        "Date: Thu, 6 Nov 2025 09:30:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nUne autre question.\r\n"
    ).encode()
    sandbox.deliver(INFO, follow_up, received_at=office("2025-11-06T09:00"))
    sandbox.deliver(INFO, by_subject, received_at=office("2025-11-06T09:30"))
    later = make_app("2025-11-06T09:35:00-05:00")
    run_pass(later)

    with session_scope(later.engine) as session:
        landed = session.exec(
            select(InboundMessage.message_id, InboundMessage.ticket_id, InboundMessage.kind).where(
                col(InboundMessage.message_id).in_(
                    ["<follow-1@example.org>", "<follow-2@example.org>"]
                )
            )
        ).all()
    assert {(m, t, k) for m, t, k in landed} == {
        ("<follow-1@example.org>", kept.id, "follow_up"),
        ("<follow-2@example.org>", kept.id, "follow_up"),
    }
    assert sorted(tickets(later)) == ["MRI-2025-00001", "MRI-2025-00002"]  # no new ticket
    # The report counts one request: the duplicate's cases are left out.
    figures = report_of(later, "2025-11-06T10:00:00-05:00")
    assert (figures["ack"], figures["info_reply"]) == ((1, 1), (1, 0))
    with later.engine.connect() as connection:  # and so does the supervisors' digest
        month = month_compliance(
            connection,
            later.settings,
            later.settings.mailbox("renseignements"),
            date(2025, 11, 1),
            datetime.fromisoformat("2025-11-06T10:00:00-05:00"),
        )
    assert month["ack"] == {"met": 1, "late": 0, "open_late": 0, "pending": 0}


def test_the_earliest_receipt_keeps_the_clock_when_the_first_ticket_is_merged(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    two_requests(sandbox, make_app)
    reply = staff_reply(notice_for(sandbox, "MRI-2025-00001"), "#merge MRI-2025-00002")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")

    run_pass(app)

    found = tickets(app)
    kept = found["MRI-2025-00002"]
    assert found["MRI-2025-00001"].closed_reason == "merged"
    assert kept.receipt_date == date(2025, 11, 3)  # the first request's receipt
    with session_scope(app.engine) as session:
        clocks: dict[str, date] = dict(
            session.exec(
                select(TicketDeadline.commitment, col(TicketDeadline.clock_start)).where(
                    TicketDeadline.ticket_id == kept.id
                )
            ).all()
        )
    assert clocks == {"ack": date(2025, 11, 3), "info_reply": date(2025, 11, 3)}
    assert kept.due_date == date(2025, 11, 17)


def test_a_duplicate_already_answered_answers_the_ticket_kept(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    two_requests(sandbox, make_app)
    notice = notice_for(sandbox, "MRI-2025-00002")
    answer = staff_reply(notice, "La bourse est offerte jusqu'au 1er mars.")
    sandbox.deliver(INFO, answer, received_at=office("2025-11-04T11:00"))
    run_pass(make_app("2025-11-04T11:05:00-05:00"))
    merge = staff_reply(notice, "#fusionner MRI-2025-00001", message_id="<reply-2@mri.gouv.qc.ca>")
    sandbox.deliver(INFO, merge, received_at=office("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")

    run_pass(app)

    kept = tickets(app)["MRI-2025-00001"]
    assert kept.status == "answered"
    assert kept.answered_at is not None
    assert kept.answered_at.isoformat() == "2025-11-04T16:05:00+00:00"
    with session_scope(app.engine) as session:
        met = dict(
            session.exec(
                select(TicketDeadline.commitment, TicketDeadline.met_at).where(
                    TicketDeadline.ticket_id == kept.id
                )
            ).all()
        )
    assert met["info_reply"] == kept.answered_at


def test_a_merge_into_a_ticket_of_another_queue_needs_the_sender_on_both(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    two_requests(sandbox, make_app)
    with make_app("2025-11-04T10:02:00-05:00").engine.begin() as connection:
        connection.execute(
            sa.update(Ticket)
            .where(col(Ticket.ref) == "MRI-2025-00001")
            .values(category="complaint", mailbox="plaintes")
        )
    reply = staff_reply(notice_for(sandbox, "MRI-2025-00002"), "#fusionner MRI-2025-00001")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")

    run_pass(app)

    assert tickets(app)["MRI-2025-00002"].closed_reason is None
    [error] = staff_answers(sandbox)
    assert "#fusionner MRI-2025-00001" in error
    assert "vous ne travaillez pas sur la file de « MRI-2025-00001 »" in error
    assert [
        r for r in citizen_replies(sandbox) if "MRI-2025-00002" in str(parsed(r)["Subject"])
    ] == []


def with_answers(settings: Settings, folder: Path) -> Settings:
    folder.mkdir(exist_ok=True)
    (folder / "bourses.fr.txt").write_text(
        "Madame, Monsieur {{ name }},\n\n"
        "Votre demande {{ ref }} du {{ receipt_date }} porte sur les bourses : "
        "le programme est décrit sur notre site.\n"
    )
    (folder / "bourses.en.txt").write_text("Your request {{ ref }} is about scholarships.\n")
    (folder / "stages.fr.txt").write_text("Les stages ouvrent en janvier ({{ ref }}).\n")
    return settings.model_copy(update={"answers": AnswersSettings(dir=folder)})


def test_a_canned_answer_reaches_the_citizen_rendered_with_the_staff_text_around_it(
    sandbox: Sandbox, make_app: AppFactory, tmp_path: Path
) -> None:
    settings = with_answers(make_app("2025-11-03T10:00:00-05:00").settings, tmp_path / "answers")
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00", settings))
    [notice] = sandbox.fetch_all(AGENT)
    assert "Réponses types : bourses, stages." in text_of(parsed(notice))  # the staff help
    reply = staff_reply(
        notice, "Bonjour,\r\n\r\n#réponse type : bourses\r\n\r\nSophie Lavoie\r\nRenseignements"
    )
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00", settings)

    run_pass(app)

    [answer] = citizen_replies(sandbox)
    text = text_of(parsed(answer))
    assert text.index("Bonjour,") < text.index("Madame, Monsieur Josée Tremblay,")
    assert "Votre demande MRI-2025-00001 du lundi 3 novembre 2025 porte sur les bourses" in text
    assert text.index("porte sur les bourses") < text.index("Sophie Lavoie")
    assert "réponse type" not in text
    assert "scholarships" not in text  # a French ticket without an English basis
    ticket = tickets(app)["MRI-2025-00001"]
    assert ticket.status == "answered" and ticket.answered_at is not None


def test_a_canned_answer_adds_its_english_version_once_english_is_allowed(
    sandbox: Sandbox, make_app: AppFactory, tmp_path: Path
) -> None:
    settings = with_answers(make_app("2025-11-03T10:00:00-05:00").settings, tmp_path / "answers")
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00", settings))
    [notice] = sandbox.fetch_all(AGENT)
    body = "#anglais : le citoyen a demandé une réponse en anglais\r\n#réponse type : bourses"
    sandbox.deliver(INFO, staff_reply(notice, body), received_at=office("2025-11-04T09:00"))

    run_pass(make_app("2025-11-04T09:05:00-05:00", settings))

    [answer] = citizen_replies(sandbox)
    text = text_of(parsed(answer))
    assert text.index("porte sur les bourses") < text.index("English version follows.")
    assert "Your request MRI-2025-00001 is about scholarships." in text


def test_an_unknown_canned_answer_reaches_no_citizen_and_the_sender_gets_the_names(
    sandbox: Sandbox, make_app: AppFactory, tmp_path: Path
) -> None:
    settings = with_answers(make_app("2025-11-03T10:00:00-05:00").settings, tmp_path / "answers")
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00", settings))
    [notice] = sandbox.fetch_all(AGENT)
    reply = staff_reply(notice, "Bonjour,\r\n\r\n#réponse type : visas\r\n\r\nSophie")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00", settings)

    run_pass(app)

    assert citizen_replies(sandbox) == []
    [error] = staff_answers(sandbox)
    assert "#réponse type : visas : aucune réponse type « visas »" in error
    assert "Réponses types : bourses, stages." in error
    assert tickets(app)["MRI-2025-00001"].status == "open"


def request_with_attachment() -> bytes:
    return (
        f"From: Josée Tremblay <{CITIZEN}>\r\n"
        f"To: {INFO}\r\n"
        "Subject: Permis de travail\r\n"
        "Message-ID: <req-permis@example.org>\r\n"
        "Date: Mon, 3 Nov 2025 09:58:00 -0500\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Bonjour, je voudrais un permis de travail pour mon conjoint.\r\n"
        "--b1\r\n"
        'Content-Type: application/pdf; name="passeport.pdf"\r\n'
        'Content-Disposition: attachment; filename="passeport.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n"
        "--b1--\r\n"
    ).encode()


def test_a_referral_sends_the_request_once_tells_the_citizen_and_counts_as_the_answer(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.accept_mail_for(OTHER_BODY)
    sandbox.deliver(INFO, request_with_attachment(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    note = "Les permis de travail relèvent du ministère de l'Immigration."
    reply = staff_reply(notice, f"#référer : {OTHER_BODY}\r\n\r\n{note}")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    # The same reply again, by another path: nothing goes twice.
    sandbox.deliver(INFO, b"X-Resent: yes\r\n" + reply, received_at=office("2025-11-04T09:01"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)
    run_pass(make_app("2025-11-04T09:10:00-05:00"))

    [referred] = sandbox.delivered_to(OTHER_BODY)
    message = parsed(referred)
    assert message["From"].addresses[0].addr_spec == INFO
    text = text_of(message)
    assert note in text
    assert "je voudrais un permis de travail pour mon conjoint" in text
    assert CITIZEN in text  # so that the body can answer the citizen
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "passeport.pdf"
    assert attachment.get_content().startswith(b"%PDF-1.4")
    [told] = citizen_replies(sandbox)
    told_text = text_of(parsed(told))
    assert OTHER_BODY in told_text and note in told_text
    ticket = tickets(app)["MRI-2025-00001"]
    assert (ticket.status, ticket.closed_reason) == ("closed", "referred")
    with session_scope(app.engine) as session:
        met = dict(session.exec(select(TicketDeadline.commitment, TicketDeadline.met_at)).all())
        trail = session.exec(
            select(AccessEntry.action, AccessEntry.detail).where(
                AccessEntry.action == "referred_out"
            )
        ).all()
    assert met["info_reply"] is not None
    assert met["info_reply"].isoformat() == "2025-11-04T14:05:00+00:00"  # the referral's instant
    assert [detail for _, detail in trail] == [
        "request, 0 follow-up(s), requester's name and address, and 1 attachment(s) sent to "
        "@autre-organisme.example.org"
    ]
    assert report_of(app, "2025-11-20T10:00:00-05:00")["info_reply"] == (1, 1)  # met in time

    # The other body answers the referral: held on the ticket for a person, never relayed.
    answer = (
        f"From: Accueil <{OTHER_BODY}>\r\nTo: {INFO}\r\n"
        f"Subject: RE: {message['Subject']}\r\nMessage-ID: <body-1@autre-organisme.example.org>\r\n"
        f"In-Reply-To: {message['Message-ID']}\r\nReferences: {message['Message-ID']}\r\n"
        "Date: Wed, 5 Nov 2025 09:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nBien reçu, nous prenons le relais.\r\n"
    ).encode()
    sandbox.deliver(INFO, answer, received_at=office("2025-11-05T09:00"))
    later = make_app("2025-11-05T09:05:00-05:00")
    run_pass(later)
    with session_scope(later.engine) as session:
        [(state, ticket_id)] = session.exec(
            select(InboundMessage.state, InboundMessage.ticket_id).where(
                InboundMessage.message_id == "<body-1@autre-organisme.example.org>"
            )
        ).all()
    assert (state, ticket_id) == ("held", ticket.id)
    assert len(citizen_replies(sandbox)) == 1


def test_a_referral_inside_the_ministry_is_refused(sandbox: Sandbox, make_app: AppFactory) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    reply = staff_reply(notice, "#référer : collegue@mri.gouv.qc.ca\r\n\r\nPour votre équipe.")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    [error] = staff_answers(sandbox)
    assert "« collegue@mri.gouv.qc.ca » est une adresse du ministère" in error
    assert tickets(app)["MRI-2025-00001"].status == "open"


def test_a_mistyped_command_reaches_no_citizen_until_confirmed_and_texte_is_removed(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    typo = staff_reply(notice, "fermé\r\n\r\nMerci, votre dossier est complet.")
    sandbox.deliver(INFO, typo, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    [held] = [
        parsed(raw)
        for raw in sandbox.fetch_all(AGENT)
        if "commande sans « # »" in str(parsed(raw)["Subject"])
    ]
    assert "    fermé\r\n        -> commande voulue ? #fermer" in text_of(held)
    assert tickets(app)["MRI-2025-00001"].status == "open"

    confirm = staff_reply(held.as_bytes(), "confirmer", message_id="<confirm-1@mri.gouv.qc.ca>")
    sandbox.deliver(INFO, confirm, received_at=office("2025-11-04T09:30"))
    run_pass(make_app("2025-11-04T09:35:00-05:00"))
    [answer] = citizen_replies(sandbox)
    assert text_of(parsed(answer)).startswith("fermé\r\n\r\nMerci, votre dossier est complet.")
    assert tickets(app)["MRI-2025-00001"].status == "answered"  # sent as written, not closed

    meant = staff_reply(
        notice,
        "texte : Objet : votre demande de bourse\r\n\r\nLa bourse est offerte.",
        message_id="<reply-2@mri.gouv.qc.ca>",
    )
    sandbox.deliver(INFO, meant, received_at=office("2025-11-04T10:00"))
    run_pass(make_app("2025-11-04T10:05:00-05:00"))

    [_first, answer] = citizen_replies(sandbox)
    text = text_of(parsed(answer))
    assert text.startswith("Objet : votre demande de bourse")
    assert "texte :" not in text


def test_a_held_reply_sent_again_corrected_is_never_sent_by_a_late_confirmation(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    """A tired staff member: "Fermer" is held, the reply is sent again with "#fermer", then
    the first notice is answered "confirmer" out of habit. The corrected reply superseded
    the held one: nothing reaches the citizen, and the sender is told why."""
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    typo = staff_reply(notice, "Fermer\r\n\r\nMerci de votre patience.")
    sandbox.deliver(INFO, typo, received_at=office("2025-11-04T09:00"))
    run_pass(make_app("2025-11-04T09:05:00-05:00"))
    [held] = [
        parsed(raw)
        for raw in sandbox.fetch_all(AGENT)
        if "commande sans « # »" in str(parsed(raw)["Subject"])
    ]
    corrected = staff_reply(notice, "#fermer", message_id="<reply-2@mri.gouv.qc.ca>")
    sandbox.deliver(INFO, corrected, received_at=office("2025-11-04T09:10"))
    run_pass(make_app("2025-11-04T09:15:00-05:00"))
    confirm = staff_reply(held.as_bytes(), "confirmer", message_id="<confirm-1@mri.gouv.qc.ca>")
    sandbox.deliver(INFO, confirm, received_at=office("2025-11-04T09:30"))
    app = make_app("2025-11-04T09:35:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    assert tickets(app)["MRI-2025-00001"].status == "closed"
    [told] = [
        text_of(parsed(raw))
        for raw in sandbox.fetch_all(AGENT)
        if "Rien à confirmer" in str(parsed(raw)["Subject"])
    ]
    assert "remplacée par votre message suivant" in told


def test_a_referral_the_other_body_refuses_is_reported_to_its_author(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    reply = staff_reply(
        notice, "#référer : inconnu@autre-organisme.example.org\r\n\r\nRelève d'eux."
    )
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))

    run_pass(make_app("2025-11-04T09:05:00-05:00"))
    run_pass(make_app("2025-11-04T09:10:00-05:00"))

    reports = [
        text_of(parsed(raw))
        for raw in sandbox.fetch_all(AGENT)
        if "que vous avez référée à un autre organisme" in text_of(parsed(raw))
    ]
    assert len(reports) == 1
