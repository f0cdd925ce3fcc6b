"""Hostile and broken mail against the real servers: nothing dropped, nothing silenced,
nothing ambiguous trusted.

Each section is one way an outside sender (or a broken mail system) could lose a citizen's
request or act where it should not, with several variants of it.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import AddressState, InboundMessage, OutboxMessage, Ticket
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox, _SmtpHandler
from mailbot.sending import to_citizens
from mailbot.settings import Settings
from tests.cli.test_commands import mailbot
from tests.conftest import AppFactory, subprocess_environ, write_sandbox_config
from tests.intake.test_spine import BODY, CITIZEN, COMPLAINTS, INFO, citizen_request, office, parsed
from tests.intake.test_spine import text_of as body_of
from tests.staff.test_staff_server import (
    AGENT,
    PASSING,
    citizen_replies,
    event_kinds,
    open_ticket,
    staff_reply,
    ticket_row,
)

COMPLAINTS_AGENT = "agent.plaintes@mri.gouv.qc.ca"
JOHN = "john.smith@example.com"
MARC = "marc.gagnon@example.net"


def request(
    from_header: str | None,
    message_id: str = "<req-1@example.org>",
    *,
    to: str = INFO,
    cc: str = "",
    subject: str = "Demande de renseignements",
    body: str = BODY,
) -> bytes:
    """A citizen's plain request with exactly the From header given (None: no From at all)."""
    headers = [f"From: {from_header}"] if from_header is not None else []
    headers += [f"To: {to}", *([f"Cc: {cc}"] if cc else []), f"Subject: {subject}"]
    headers += [f"Message-ID: {message_id}"] if message_id else []
    headers += [
        "Date: Mon, 3 Nov 2025 09:58:00 -0500",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + f"\r\n\r\n{body}\r\n").encode()


def tickets(app: App) -> list[Ticket]:
    with session_scope(app.engine) as session:
        return list(session.exec(select(Ticket).order_by(col(Ticket.id))).all())


def outbox(app: App, purpose: str | None = None) -> list[OutboxMessage]:
    with session_scope(app.engine) as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if purpose is not None:
            query = query.where(col(OutboxMessage.purpose) == purpose)
        return list(session.exec(query).all())


def inbound(app: App) -> list[InboundMessage]:
    with session_scope(app.engine) as session:
        return list(session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all())


def subjects(sandbox: Sandbox, address: str) -> list[str]:
    return [str(parsed(raw)["Subject"]) for raw in sandbox.fetch_all(address)]


def with_rules(settings: Settings, **rules: Any) -> Settings:
    return settings.model_copy(
        update={"classification": settings.classification.model_copy(update=rules)}
    )


# --- 1. A real citizen is never set aside because of how an address is written ------------


@pytest.mark.parametrize(
    ("from_header", "address"),
    [
        ("J. Smith <john.smith@example.com>", JOHN),
        ("Roy, Marie <marc.gagnon@example.net>", MARC),
        ("<josee.tremblay@example.org>,", CITIZEN),
        ("Josée Tremblay <josee.tremblay@example.org.>", CITIZEN),
        ("josee.tremblay@example.org; ", CITIZEN),
        ("Tremblay, Josée (bureau) <Josee.Tremblay@Example.ORG>", CITIZEN),
        ("josee.tremblay@example.org (Josée T.)", CITIZEN),
    ],
    ids=["dot", "comma", "stray-separator", "trailing-dot", "semicolon", "case", "comment"],
)
def test_a_loosely_written_from_still_opens_a_ticket_and_is_acknowledged(
    sandbox: Sandbox, make_app: AppFactory, from_header: str, address: str
) -> None:
    sandbox.deliver(INFO, request(from_header), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    [ticket] = tickets(app)
    assert ticket.requester == address
    [ack] = [parsed(raw) for raw in sandbox.fetch_all(address)]
    assert ticket.ref in str(ack["Subject"])
    assert len(sandbox.fetch_all(AGENT)) == 1  # the staff notice
    assert sandbox.fetch_all(INFO) == []


def test_an_internationalised_address_is_answered_over_smtputf8(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    address = "josée@exemple.québec"
    sandbox.accept_mail_for(address)
    raw = request("Josée Bédard <josée@exemple.québec>")
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    [ticket] = tickets(app)
    assert ticket.requester == address
    [ack] = sandbox.delivered_to(address)
    # UTF-8 headers (RFC 6532), as SMTPUTF8 carries them.
    to = next(line for line in ack.split(b"\r\n") if line.startswith(b"To:"))
    assert f"<{address}>".encode() in to
    assert ticket.acknowledged_at is not None


def test_an_international_domain_needs_no_smtputf8(sandbox: Sandbox, make_app: AppFactory) -> None:
    sandbox.stop_smtp()
    sandbox.smtputf8 = False
    sandbox.start_smtp()
    ascii_form = "jean@exemple.xn--qubec-csa"
    sandbox.accept_mail_for(ascii_form)
    sandbox.deliver(INFO, request("Jean <jean@exemple.québec>"), office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    [ticket] = tickets(app)
    assert ticket.requester == ascii_form
    assert len(sandbox.delivered_to(ascii_form)) == 1


def test_without_smtputf8_an_internationalised_address_is_held_for_staff(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.stop_smtp()
    sandbox.smtputf8 = False
    sandbox.start_smtp()
    address = "josée@exemple.québec"
    sandbox.accept_mail_for(address)
    sandbox.deliver(INFO, request(f"Josée <{address}>"), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    [ticket] = tickets(app)
    [ack] = outbox(app, "acknowledgement")
    assert ack.state == "held"
    assert sandbox.delivered_to(address) == []
    assert "acknowledgement_held" in event_kinds(app)
    assert any("Accusé de réception non remis" in s for s in subjects(sandbox, AGENT))
    assert ticket.acknowledged_at is None


@pytest.mark.parametrize(
    "from_header",
    [
        "victim@example.org <attacker@example.net>",
        None,
        "undisclosed-recipients:;",
        "Josée Tremblay",
        "josee.tremblay@example.org, john.smith@example.com",
    ],
    ids=["two-addresses", "missing", "empty-group", "name-only", "list"],
)
def test_a_request_without_a_usable_reply_address_is_held_for_staff(
    sandbox: Sandbox, make_app: AppFactory, from_header: str | None
) -> None:
    sandbox.deliver(INFO, request(from_header), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    assert tickets(app) == []
    [message] = inbound(app)
    assert message.state == "held"
    assert "usable reply address" in message.reason
    [notice] = outbox(app, "held_notice")
    assert notice.recipient == AGENT
    assert all(not sandbox.fetch_all(a) for a in (CITIZEN, JOHN))
    assert len(sandbox.fetch_all(INFO, "Traites")) == 1


# --- 2. A bounce counts only when it answers mail we really sent ---------------------------


def delivery_report(original_message_id: str, final_recipient: str, status: str = "5.1.1") -> bytes:
    """A standard delivery status notification (RFC 3464) about one message."""
    headers = f"Message-ID: {original_message_id}\r\n" if original_message_id else ""
    return (
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@relay.example.net>\r\n"
        f"To: {INFO}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Message-ID: <dsn-1@relay.example.net>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {final_recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        "\r\n--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{headers}From: {INFO}\r\nTo: {final_recipient}\r\n"
        "\r\n--b--\r\n"
    ).encode()


def failure_notice(returned_message_id: str, failed: str, status: str = "5.1.1") -> bytes:
    """A qmail failure notice (not RFC 3464) returning a copy of one message."""
    copy = f"Message-ID: {returned_message_id}\r\n" if returned_message_id else ""
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@relay.example.net\r\n"
        f"To: {INFO}\r\n"
        "Subject: failure notice\r\n"
        "Message-ID: <qmail-1@relay.example.net>\r\n\r\n"
        "Hi. This is the qmail-send program at relay.example.net.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        f"<{failed}>:\r\nSorry, no mailbox here by that name. (#{status})\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"Return-Path: <>\r\n{copy}From: {INFO}\r\nTo: {failed}\r\n\r\nBonjour.\r\n"
    ).encode()


def acknowledged(sandbox: Sandbox, make_app: AppFactory) -> tuple[App, str]:
    """A request from CITIZEN, acknowledged: the app and the acknowledgement's Message-ID."""
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(app)
    [ack] = outbox(app, "acknowledgement")
    return app, ack.message_id


def undeliverable(app: App) -> set[str]:
    with session_scope(app.engine) as session:
        rows = session.exec(select(AddressState)).all()
        return {row.address for row in rows if row.undeliverable}


@pytest.mark.parametrize(
    ("report", "victim"),
    [
        (lambda ack: delivery_report("<forged-1@evil.example>", CITIZEN), CITIZEN),
        (lambda ack: delivery_report("", CITIZEN), CITIZEN),
        (lambda ack: delivery_report(ack, JOHN), JOHN),
        (lambda ack: delivery_report(ack.replace("mb.", "mb.x"), CITIZEN), CITIZEN),
        (lambda ack: failure_notice("<forged-1@evil.example>", CITIZEN), CITIZEN),
        (lambda ack: failure_notice("", CITIZEN), CITIZEN),
        (lambda ack: failure_notice(ack, JOHN), JOHN),
    ],
    ids=[
        "unknown-message",
        "no-message-id",
        "our-message-to-someone-else",
        "altered-id",
        "notice-unknown-message",
        "notice-no-copy",
        "notice-our-message-to-someone-else",
    ],
)
def test_a_forged_bounce_silences_no_one(
    sandbox: Sandbox, make_app: AppFactory, report: Any, victim: str
) -> None:
    _app, ack_id = acknowledged(sandbox, make_app)
    sandbox.deliver(INFO, report(ack_id), received_at=office("2025-11-03T11:00"))
    sandbox.deliver(
        INFO,
        citizen_request("<req-2@example.org>", sender=victim, subject="Autre question"),
        received_at=office("2025-11-03T11:05"),
    )
    app = make_app("2025-11-03T11:10:00-05:00")

    run_pass(app)

    assert undeliverable(app) == set()
    reasons = [m.reason for m in inbound(app) if m.kind == "bounce"]
    assert reasons and "matches no message we sent" in reasons[0]
    new_ticket = tickets(app)[-1]
    assert new_ticket.requester == victim and new_ticket.acknowledged_at is not None


@pytest.mark.parametrize("report", [delivery_report, failure_notice], ids=["dsn", "qmail"])
def test_a_bounce_of_our_own_message_marks_the_address_until_the_person_writes_again(
    sandbox: Sandbox, make_app: AppFactory, report: Any
) -> None:
    _app, ack_id = acknowledged(sandbox, make_app)
    # The relay reports the failure with the address in another case: still the same person.
    sandbox.deliver(
        INFO, report(ack_id, "Josee.Tremblay@Example.ORG"), received_at=office("2025-11-03T11:00")
    )
    app = make_app("2025-11-03T11:01:00-05:00")
    run_pass(app)
    assert undeliverable(app) == {CITIZEN}
    assert "address_undeliverable" in event_kinds(app)

    sandbox.deliver(
        INFO, citizen_request("<req-2@example.org>"), received_at=office("2025-11-03T14:00")
    )
    later = make_app("2025-11-03T14:01:00-05:00")
    run_pass(later)

    assert undeliverable(later) == set()
    assert len(sandbox.fetch_all(CITIZEN)) == 2  # both requests acknowledged


def test_a_bounce_of_a_message_the_relay_accepted_is_told_to_staff_once(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    """The relay said 250, then a delivery report said the acknowledgement never arrived:
    the people who work the ticket learn it, as they would of a refusal at the relay, once
    however often the report comes."""
    _app, ack_id = acknowledged(sandbox, make_app)
    for n in range(2):
        report = delivery_report(ack_id, CITIZEN).replace(
            b"Message-ID: <", f"Message-ID: <copy{n}-".encode(), 1
        )
        sandbox.deliver(INFO, report, received_at=office("2025-11-03T11:00"))
    app = make_app("2025-11-03T11:01:00-05:00")

    run_pass(app)
    run_pass(make_app("2025-11-03T11:02:00-05:00"))

    told = [s for s in subjects(sandbox, AGENT) if "MRI-2025-00001" in s and "non remis" in s]
    assert len(told) == 1, subjects(sandbox, AGENT)
    assert "failure_reported" in event_kinds(app)


def test_a_notice_returning_two_of_our_messages_silences_no_one(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    sandbox.deliver(
        INFO,
        citizen_request("<req-2@example.org>", sender=JOHN, subject="Autre question"),
        received_at=office("2025-11-03T10:00"),
    )
    first_app = make_app("2025-11-03T10:01:00-05:00")
    run_pass(first_app)
    first, second = (ack.message_id for ack in outbox(first_app, "acknowledgement"))
    # Both recipients failing, and two returned copies: no MTA returns two messages at once.
    notice = failure_notice(first, CITIZEN)
    both = notice.replace(
        b"--- Below", f"<{JOHN}>:\r\nNo mailbox here. (#5.1.1)\r\n\r\n--- Below".encode()
    ).replace(b"Bonjour.\r\n", f"> Message-ID: {second}\r\n".encode())
    sandbox.deliver(INFO, both, received_at=office("2025-11-03T11:00"))
    app = make_app("2025-11-03T11:01:00-05:00")

    run_pass(app)

    assert undeliverable(app) == set()
    [bounce] = [m for m in inbound(app) if m.kind == "bounce"]
    assert "matches no message we sent" in bounce.reason


@pytest.mark.parametrize("report", [delivery_report, failure_notice], ids=["dsn", "qmail"])
def test_a_transient_failure_of_our_own_message_changes_nothing(
    sandbox: Sandbox, make_app: AppFactory, report: Any
) -> None:
    _app, ack_id = acknowledged(sandbox, make_app)
    sandbox.deliver(INFO, report(ack_id, CITIZEN, "4.2.2"), received_at=office("2025-11-03T11:00"))
    app = make_app("2025-11-03T11:01:00-05:00")

    run_pass(app)

    assert undeliverable(app) == set()
    [bounce] = [m for m in inbound(app) if m.kind == "bounce"]
    assert bounce.state == "processed" and "ignored" not in bounce.reason
    assert "address_undeliverable" not in event_kinds(app)


# --- 3. The brake paces; it never drops -----------------------------------------------------


def citizens(sandbox: Sandbox, count: int, prefix: str = "citoyen") -> list[str]:
    addresses = [f"{prefix}{n}@example.org" for n in range(count)]
    sandbox.accept_mail_for(*addresses)
    return addresses


def test_a_wave_of_genuine_requests_is_paced_never_dropped(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    people = citizens(sandbox, 10)
    for n, address in enumerate(people):
        sandbox.deliver(
            INFO,
            citizen_request(f"<wave-{n}@example.org>", sender=address),
            received_at=office("2025-11-03T10:00"),
        )
    settings = with_rules(make_app("2025-11-03T10:00:00-05:00").settings, burst_limit=4)
    start = datetime.fromisoformat("2025-11-03T10:01:00-05:00")

    sent_after = []
    for minutes in (0, 1, 11, 22, 33):
        app = make_app((start + timedelta(minutes=minutes)).isoformat(), settings)
        run_pass(app)
        sent_after.append(sum(len(sandbox.delivered_to(a)) for a in people))

    assert sent_after == [4, 4, 8, 10, 10]
    assert all(len(sandbox.delivered_to(a)) == 1 for a in people)
    assert len(tickets(app)) == 10
    assert all(t.acknowledged_at is not None for t in tickets(app))
    # Staff heard once that pacing started and once that it ended.
    brake = [s for s in subjects(sandbox, AGENT) if "accusés de réception" in s.lower()]
    assert len(brake) == 2 and "ralentis" in brake[0] and "Fin" in brake[1]
    assert all("acknowledgement_withheld" not in event_kinds(app) for _ in [0])


def test_junk_from_a_few_addresses_cannot_silence_the_people_after_it(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    junk = citizens(sandbox, 5, prefix="jetable")
    people = citizens(sandbox, 3)
    for n in range(20):
        sandbox.deliver(
            INFO,
            citizen_request(f"<junk-{n}@example.org>", sender=junk[n % 5]),
            received_at=office("2025-11-03T10:00"),
        )
    for n, address in enumerate(people):
        sandbox.deliver(
            INFO,
            citizen_request(f"<real-{n}@example.org>", sender=address),
            received_at=office("2025-11-03T10:01"),
        )
    settings = with_rules(
        make_app("2025-11-03T10:00:00-05:00").settings, burst_limit=5, per_address_daily_limit=2
    )
    start = datetime.fromisoformat("2025-11-03T10:02:00-05:00")
    for minutes in range(0, 60, 11):
        run_pass(make_app((start + timedelta(minutes=minutes)).isoformat(), settings))

    # Loops stay stopped by the per-address cap; every real person is answered.
    assert [len(sandbox.delivered_to(a)) for a in junk] == [2, 2, 2, 2, 2]
    assert [len(sandbox.delivered_to(a)) for a in people] == [1, 1, 1]


# --- 4. Addresses compare without regard to case ------------------------------------------


def test_letter_case_does_not_bypass_the_per_address_cap(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    spellings = ("Josee.Tremblay@example.org", "JOSEE.TREMBLAY@EXAMPLE.ORG", CITIZEN)
    for n in range(14):
        sandbox.deliver(
            INFO,
            request(f"Josée <{spellings[n % 3]}>", f"<case-{n}@example.org>"),
            received_at=office("2025-11-03T10:00"),
        )
    app = make_app("2025-11-03T10:30:00-05:00")

    run_pass(app)

    assert len(tickets(app)) == 14
    assert {t.requester for t in tickets(app)} == {CITIZEN}
    assert len(sandbox.fetch_all(CITIZEN)) == 10


def test_letter_case_does_not_make_the_requester_a_stranger(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    follow_up = request(
        "Josée <JOSEE.Tremblay@Example.org>",
        "<req-2@example.org>",
        subject="RE: MRI-2025-00001 Demande de renseignements",
        body="J'ajoute une précision à ma demande.",
    )
    sandbox.deliver(INFO, follow_up, received_at=office("2025-11-04T10:00"))
    app = make_app("2025-11-04T10:01:00-05:00")

    run_pass(app)

    assert len(tickets(app)) == 1
    assert [m.kind for m in inbound(app)] == ["new_request", "follow_up"]
    assert inbound(app)[1].state == "processed"
    assert "follow_up_forwarded" in event_kinds(app)


# --- 5. A citizen's text never breaks a header we write --------------------------------------


def encoded(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


@pytest.mark.parametrize(
    "subject",
    [
        "Demande\x0bspéciale",
        "Demande\x0c urgente",
        "Demande \x1b[31mrouge",
        "Demande\x85suite",
        "Demande\u2028deuxième ligne",
        "Demande\x7f\x00fin",
        "Demande\r\nBcc: victime@example.org",
    ],
    ids=["vt", "ff", "escape", "nel", "line-separator", "del-nul", "crlf-injection"],
)
def test_a_control_character_in_the_subject_leaves_the_ticket_answerable(
    sandbox: Sandbox, make_app: AppFactory, subject: str
) -> None:
    sandbox.deliver(
        INFO, request(f"Josée <{CITIZEN}>", subject=encoded(subject)), office("2025-11-03T10:00")
    )
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(AGENT)
    sandbox.deliver(
        INFO, staff_reply(notice, "Bonjour, voici la réponse."), office("2025-11-04T09:00")
    )
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    [answer] = [parsed(raw) for raw in citizen_replies(sandbox)]
    header = str(answer["Subject"])
    assert not any(ord(char) < 32 or 0x7F <= ord(char) <= 0x9F for char in header)
    assert "\u2028" not in header and "MRI-2025-00001" in header
    assert answer["Bcc"] is None
    assert ticket_row(app).status == "answered"
    assert all(m.state != "quarantined" for m in inbound(app))


def test_a_reply_the_relay_refuses_is_reported_to_its_author(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    # The citizen's address does not exist: the relay refuses everything sent to it (550).
    stranger = "personne.inconnue@example.com"
    sandbox.deliver(INFO, citizen_request(sender=stranger), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    notice = next(
        r for r in sandbox.fetch_all(AGENT) if "Nouvelle demande" in str(parsed(r)["Subject"])
    )
    sandbox.deliver(
        INFO, staff_reply(notice, "Bonjour, voici la réponse."), office("2025-11-04T09:00")
    )
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    [reply] = outbox(app, "reply")
    assert reply.state == "failed"
    reports = [s for s in subjects(sandbox, AGENT) if "non remis" in s or "pas été remise" in s]
    assert len(reports) == 2  # the acknowledgement (to the queue) and the reply (to its author)
    assert event_kinds(app).count("failure_reported") == 2


def test_a_reply_that_cannot_be_built_changes_nothing_and_tells_its_author(
    sandbox: Sandbox, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    sandbox.deliver(
        INFO, staff_reply(notice, "#fermer\r\n\r\nBonjour, voici."), office("2025-11-04T09:00")
    )

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a header value that cannot be written")

    monkeypatch.setattr(to_citizens, "relay", broken)
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert ticket_row(app).status == "open"  # "fermer" was undone with the relay
    assert citizen_replies(sandbox) == []
    [*_, last] = [parsed(raw) for raw in sandbox.fetch_all(AGENT)]
    assert "n'a pas pu être transmise" in str(last["Subject"])
    assert inbound(app)[-1].state == "held"


# --- 6. Ambiguous or failing verdicts are never trusted ----------------------------------------

OURS = "mx.mri.gouv.qc.ca"
PASS = f"{OURS}; dkim=pass header.d=mri.gouv.qc.ca; dmarc=pass header.from=mri.gouv.qc.ca"
FAIL = f"{OURS}; dkim=fail header.d=mri.gouv.qc.ca; dmarc=fail header.from=mri.gouv.qc.ca"


@pytest.mark.parametrize(
    "verdicts",
    [
        (PASS, FAIL),
        (FAIL, PASS),
        (PASS, PASS),
        (f"{OURS}; dkim=pass header.d=mri.gouv.qc.ca; dmarc=fail header.from=mri.gouv.qc.ca",),
        (f"{OURS}; dmarc=pass header.from=mri.gouv.qc.ca; spf=permerror",),
        (f"{OURS}; dkim=pass header.d=mri.gouv.qc.ca; dkim=fail header.d=mri.gouv.qc.ca",),
        (f"{OURS}; dmarc=temperror header.from=mri.gouv.qc.ca; dkim=pass header.d=mri.gouv.qc.ca",),
        (f"{OURS.upper()}; dmarc=pass header.from=mri.gouv.qc.ca", f"{OURS}; dmarc=pass"),
    ],
    ids=[
        "pass-above-fail",
        "fail-above-pass",
        "two-passes",
        "dkim-pass-dmarc-fail",
        "spf-permerror",
        "one-signature-fails",
        "dmarc-temperror",
        "same-id-other-case",
    ],
)
def test_an_ambiguous_or_failing_verdict_holds_the_staff_reply(
    sandbox: Sandbox, make_app: AppFactory, verdicts: tuple[str, ...]
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    auth = "".join(f"Authentication-Results: {value}\r\n" for value in verdicts)
    reply = staff_reply(notice, "Bonjour, voici la réponse.", auth=auth)
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert citizen_replies(sandbox) == []
    assert inbound(app)[-1].state == "held"
    assert [n.recipient for n in outbox(app, "held_notice")] == [AGENT]
    assert ticket_row(app).status == "open"


def test_a_single_passing_verdict_still_relays(sandbox: Sandbox, make_app: AppFactory) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    other = "Authentication-Results: relay.partenaire.example; dmarc=fail\r\n"
    reply = staff_reply(notice, "Bonjour, voici la réponse.", auth=other + PASSING)
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert len(citizen_replies(sandbox)) == 1


# --- 7. One request, one ticket ----------------------------------------------------------


def test_an_mta_redelivery_is_the_same_request(sandbox: Sandbox, make_app: AppFactory) -> None:
    original = citizen_request()
    sandbox.deliver(INFO, original, received_at=office("2025-11-03T10:00"))
    resent = (
        b"Received: from mx2.example.org by mx.mri.gouv.qc.ca; Mon, 3 Nov 2025 10:20:00 -0500\r\n"
        b"X-Resent: yes\r\n" + original
    )
    sandbox.deliver(INFO, resent, received_at=office("2025-11-03T10:20"))
    app = make_app("2025-11-03T10:30:00-05:00")

    run_pass(app)

    assert len(tickets(app)) == 1
    assert len(sandbox.fetch_all(CITIZEN)) == 1
    assert [m.kind for m in inbound(app)] == ["new_request", "duplicate"]


def test_a_redelivery_without_message_id_is_the_same_request(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    original = request(f"Josée <{CITIZEN}>", message_id="")
    sandbox.deliver(INFO, original, received_at=office("2025-11-03T10:00"))
    resent = b"Received: from relay by mx; Mon, 3 Nov 2025 10:20:00 -0500\r\n" + original
    sandbox.deliver(INFO, resent, received_at=office("2025-11-03T10:20"))
    # A different message from the same person is a new request.
    other = request(f"Josée <{CITIZEN}>", message_id="", body="Une tout autre question.")
    sandbox.deliver(INFO, other, received_at=office("2025-11-03T10:25"))
    app = make_app("2025-11-03T10:30:00-05:00")

    run_pass(app)

    assert len(tickets(app)) == 2
    assert [m.kind for m in inbound(app)] == ["new_request", "duplicate", "new_request"]


def test_one_message_to_both_mailboxes_is_one_complaint(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    raw = request(
        f"Josée <{CITIZEN}>",
        cc=COMPLAINTS,
        subject="Mécontentement",
        body="Je n'ai jamais reçu de réponse à ma demande de visa.",
    )
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    sandbox.deliver(COMPLAINTS, raw, received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    [ticket] = tickets(app)
    assert ticket.category == "complaint"
    assert ticket.due_date is not None and ticket.due_date.isoformat() == "2025-11-24"
    assert len(sandbox.fetch_all(CITIZEN)) == 1
    assert sandbox.fetch_all(AGENT) == []  # complaint text reaches the complaints staff only
    assert len(sandbox.fetch_all(COMPLAINTS_AGENT)) == 1
    assert sorted(m.kind for m in inbound(app)) == ["duplicate", "new_request"]


def test_a_blind_copy_to_the_complaints_mailbox_makes_the_ticket_a_complaint(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    raw = citizen_request(subject="Demande")  # plaintes@ in Bcc: not visible in the headers
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    sandbox.deliver(COMPLAINTS, raw, received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    [ticket] = tickets(app)
    assert ticket.category == "complaint"
    assert len(sandbox.fetch_all(CITIZEN)) == 1
    assert "reclassified" in event_kinds(app)
    [notice] = [parsed(raw) for raw in sandbox.fetch_all(COMPLAINTS_AGENT)]
    assert "copie reçue aux plaintes" in str(notice["Subject"])


# --- 8. Assignment never leaks ---------------------------------------------------------------


@pytest.mark.parametrize("mailbox", [INFO, COMPLAINTS, "Renseignements@MRI.gouv.qc.ca"])
def test_a_ticket_cannot_be_assigned_to_a_mailbot_mailbox(
    sandbox: Sandbox, make_app: AppFactory, mailbox: str
) -> None:
    _app, notice = open_ticket(sandbox, make_app)
    reply = staff_reply(notice, f"#assigner {mailbox}")
    sandbox.deliver(INFO, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert ticket_row(app).assignee is None
    error = [parsed(r) for r in sandbox.fetch_all(AGENT)][-1]
    assert "boîte de mailbot" in body_of(error)


def complaint_ticket(sandbox: Sandbox, make_app: AppFactory) -> bytes:
    """A complaint, opened: the notice the complaints agent received."""
    raw = citizen_request(subject="Plainte", body="Je désire porter plainte.").replace(
        f"To: {INFO}".encode(), f"To: {COMPLAINTS}".encode()
    )
    sandbox.deliver(COMPLAINTS, raw, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [notice] = sandbox.fetch_all(COMPLAINTS_AGENT)
    return notice


@pytest.mark.parametrize("assignee", [AGENT, "autre.personne@mri.gouv.qc.ca"])
def test_a_complaint_cannot_be_assigned_outside_the_complaints_queue(
    sandbox: Sandbox, make_app: AppFactory, assignee: str
) -> None:
    notice = complaint_ticket(sandbox, make_app)
    reply = staff_reply(notice, f"#assigner {assignee}", sender=COMPLAINTS_AGENT).replace(
        f"To: {INFO}".encode(), f"To: {COMPLAINTS}".encode()
    )
    sandbox.deliver(COMPLAINTS, reply, received_at=office("2025-11-04T09:00"))
    app = make_app("2025-11-04T09:05:00-05:00")

    run_pass(app)

    assert ticket_row(app).assignee is None
    assert "command_rejected" in event_kinds(app)
    error = [parsed(r) for r in sandbox.fetch_all(COMPLAINTS_AGENT)][-1]
    assert "personnel des plaintes" in body_of(error)
    assert sandbox.fetch_all(AGENT) == []


# --- 9. Replayed time never writes into a live database -------------------------------------


def counts(database: Path) -> tuple[int, int, int]:
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        found = tuple(
            int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("ticket", "outbox", "ticket_event")
        )
    engine.dispose()
    return found  # type: ignore[return-value]


def test_a_replayed_pass_cannot_write_into_a_live_database(
    sandbox: Sandbox, tmp_path: Path, settings: Settings
) -> None:
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    environ = subprocess_environ(settings)
    environ.pop("MAILBOT_DATABASE_URL", None)
    sandbox.deliver(INFO, citizen_request())
    live = mailbot(config, environ, "run", "--once")
    assert live.returncode == 0, live.stderr
    database = tmp_path / "data" / "mailbot.db"
    before = counts(database)
    ahead = (datetime.now().astimezone() + timedelta(days=14)).isoformat(timespec="minutes")

    replay = mailbot(config, environ, "--now", ahead, "run", "--once")

    assert replay.returncode == 2
    assert "live" in replay.stderr and "Traceback" not in replay.stderr
    assert counts(database) == before
    # Reading as of another instant is harmless and allowed.
    assert mailbot(config, environ, "--now", ahead, "tickets").returncode == 0


def test_the_real_clock_cannot_write_into_a_replay_database(
    sandbox: Sandbox, tmp_path: Path, settings: Settings
) -> None:
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    environ = subprocess_environ(settings)
    environ.pop("MAILBOT_DATABASE_URL", None)
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    replay = mailbot(config, environ, "--now", "2025-11-03T10:01:00-05:00", "run", "--once")
    assert replay.returncode == 0, replay.stderr

    live = mailbot(config, environ, "run", "--once")

    assert live.returncode == 2
    assert "replayed time" in live.stderr and "Traceback" not in live.stderr


# --- 10. A relay that dies mid-send ----------------------------------------------------------


class CrashingRelay(_SmtpHandler):
    """Accepts one message, then dies: the connection drops and nothing listens any more."""

    sandbox: Sandbox | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delivered:
            assert self.sandbox is not None and self.sandbox._smtp is not None
            self.sandbox._smtp.server.close()
            server.transport.abort()
            return "421 4.3.0 going down"
        return await super().handle_DATA(server, session, envelope)


def test_a_relay_crash_mid_send_ends_the_pass_cleanly_and_releases_every_row(
    sandbox: Sandbox, tmp_path: Path, settings: Settings
) -> None:
    sandbox.stop_smtp()
    crashing = CrashingRelay(sandbox.root, frozenset(u.lower() for u in sandbox.users))
    crashing.sandbox = sandbox
    sandbox.handler = crashing
    sandbox.start_smtp()
    for n in range(3):
        sandbox.deliver(
            INFO, citizen_request(f"<crash-{n}@example.org>"), office("2025-11-03T10:00")
        )
    config = write_sandbox_config(tmp_path / "mailbot.toml", sandbox, tmp_path / "data")
    environ = subprocess_environ(settings)
    environ.pop("MAILBOT_DATABASE_URL", None)

    result = mailbot(config, environ, "--now", "2025-11-03T10:01:00-05:00", "run", "--once")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'mailbot.db'}")
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT state, lease_owner FROM outbox")).all()
    engine.dispose()
    assert len(rows) == 7  # three acknowledgements, three notices and the morning digest
    assert sum(state == "sent" for state, _owner in rows) == 1
    assert all(owner is None for _state, owner in rows)  # nothing left leased
    assert all(state in ("sent", "pending") for state, _owner in rows)


# --- 12. An oversized message: a ticket, and the whole message kept in quarantine ------------


def test_an_oversized_message_opens_a_ticket_and_waits_whole_in_the_quarantine_folder(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    big = citizen_request(body="Voir le dossier joint. " + "x" * 40_000)
    sandbox.deliver(INFO, big, received_at=office("2025-11-03T10:00"))
    base = make_app("2025-11-03T10:00:00-05:00").settings
    small = base.model_copy(
        update={"daemon": base.daemon.model_copy(update={"max_message_bytes": 8192})}
    )
    app = make_app("2025-11-03T10:01:00-05:00", small)

    run_pass(app)

    [ticket] = tickets(app)
    assert ticket.acknowledged_at is not None
    [notice] = [parsed(raw) for raw in sandbox.fetch_all(AGENT)]
    assert "trop volumineux" in str(notice["Subject"])
    assert "Quarantaine" in body_of(notice)
    assert sandbox.fetch_all(INFO) == []
    assert sandbox.fetch_all(INFO, "Traites") == []
    [kept] = sandbox.fetch_all(INFO, "Quarantaine")
    assert len(kept) > 40_000  # whole, on the server
    [message] = inbound(app)
    assert "oversized" in message.flags and message.folder == "Quarantaine"
