"""A merge never lowers confidentiality or the clock (real servers).

After any merge of a complaint and an information request, the ticket kept is a complaint,
worked by the complaints queue only, on the complaint's clock from the earliest receipt; the
complaint's text reaches nobody outside that queue: not the information staff (notices,
forwarded follow-ups), not the other body of a later referral.
Run on SQLite, and on PostgreSQL with MAILBOT_TEST_POSTGRES_URL set.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import col, select

from mailbot.app import App
from mailbot.db.models import AccessEntry, Ticket, TicketDeadline
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
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
OTHER_BODY = "accueil@autre-organisme.example.org"
COMPLAINT_TEXT = "Je désire porter plainte : le préposé SECRET-PLAINTE a refusé mon dossier."
FOLLOW_UP_TEXT = "Précision sur ma plainte : SECRET-SUIVI, le 30 octobre vers 14 h."


def tickets(app: App) -> dict[str, Ticket]:
    with session_scope(app.engine) as session:
        return {t.ref: t for t in session.exec(select(Ticket)).all()}


def mail_of(sandbox: Sandbox, address: str) -> list[str]:
    """Every message in the mailbox, as its headers and text."""
    found = []
    for raw in sandbox.fetch_all(address):
        message = parsed(raw)
        found.append(f"{message['Subject']}\n{text_of(message)}")
    return found


def leaked(sandbox: Sandbox) -> list[str]:
    """What of the complaint reached the information staff."""
    return [
        text
        for text in mail_of(sandbox, AGENT)
        if "SECRET-PLAINTE" in text or "SECRET-SUIVI" in text
    ]


def information_then_complaint(sandbox: Sandbox, make_app: AppFactory) -> tuple[bytes, bytes]:
    """Monday an information request (MRI-2025-00001), Tuesday a complaint from the same
    person (MRI-2025-00002): the information agent's notice and the complaints agent's."""
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    complaint = citizen_request(
        "<plainte-1@example.org>", subject="Plainte", body=COMPLAINT_TEXT
    ).replace(f"To: {INFO}".encode(), f"To: {COMPLAINTS}".encode())
    sandbox.deliver(COMPLAINTS, complaint, received_at=office("2025-11-04T10:00"))
    run_pass(make_app("2025-11-04T10:01:00-05:00"))
    [info_notice] = sandbox.fetch_all(AGENT)
    [complaint_notice] = sandbox.fetch_all(COMPLAINTS_AGENT)
    return info_notice, complaint_notice


def citizen_follow_up(sandbox: Sandbox, ack_subject_ref: str, at: str) -> None:
    """The citizen answers the acknowledgement of `ack_subject_ref` (its signed token)."""
    [ack] = [
        parsed(raw)
        for raw in sandbox.fetch_all(CITIZEN)
        if ack_subject_ref in str(parsed(raw)["Subject"])
        and parsed(raw)["Auto-Submitted"] == "auto-replied"
    ]
    raw = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {ack['From']}\r\n"
        f"Subject: RE: {ack['Subject']}\r\nMessage-ID: <suivi-{at}@example.org>\r\n"
        f"In-Reply-To: {ack['Message-ID']}\r\nReferences: {ack['Message-ID']}\r\n"
        "Date: Thu, 6 Nov 2025 09:00:00 -0500\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{FOLLOW_UP_TEXT}\r\n"
    ).encode()
    sandbox.deliver(COMPLAINTS, raw, received_at=office(at))


@pytest.mark.parametrize("kept", ["MRI-2025-00001", "MRI-2025-00002"])
def test_after_a_merge_the_complaint_reaches_nobody_outside_the_complaints_queue(
    sandbox: Sandbox, make_app: AppFactory, kept: str
) -> None:
    info_notice, complaint_notice = information_then_complaint(sandbox, make_app)
    # A supervisor of both queues merges one into the other, from the duplicate's notice.
    duplicate_notice = complaint_notice if kept == "MRI-2025-00001" else info_notice
    merge = staff_reply(duplicate_notice, f"#fusionner {kept}", sender=SUPERVISOR)
    sandbox.deliver(INFO, merge, received_at=office("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")
    run_pass(app)

    found = tickets(app)
    ticket = found[kept]
    assert ticket.category == "complaint" and found[ticket.ref].merged_into is None
    assert ticket.receipt_date == date(2025, 11, 3)  # the earliest receipt keeps the clock
    with session_scope(app.engine) as session:
        clocks: dict[str, date] = dict(
            session.exec(
                select(TicketDeadline.commitment, col(TicketDeadline.due_date)).where(
                    TicketDeadline.ticket_id == ticket.id
                )
            ).all()
        )
    assert clocks == {"ack": date(2025, 11, 5), "complaint_reply": date(2025, 11, 24)}
    assert ticket.due_date == date(2025, 11, 24)  # 15 business days from Monday 3 November

    # The citizen writes again on the complaint's thread: only the complaints staff hear it.
    citizen_follow_up(sandbox, "MRI-2025-00002", "2025-11-06T09:00")
    run_pass(make_app("2025-11-06T09:05:00-05:00"))
    assert any("SECRET-SUIVI" in text for text in mail_of(sandbox, COMPLAINTS_AGENT))

    # The information agent, who worked the request before the merge, can no longer refer
    # it: held for the supervisors, nothing leaves.
    sandbox.accept_mail_for(OTHER_BODY)
    attempt = staff_reply(
        info_notice,
        f"#référer : {OTHER_BODY}\r\n\r\nCela relève d'eux.",
        message_id="<refer-info@mri.gouv.qc.ca>",
    )
    sandbox.deliver(INFO, attempt, received_at=office("2025-11-06T10:00"))
    run_pass(make_app("2025-11-06T10:05:00-05:00"))
    assert sandbox.delivered_to(OTHER_BODY) == []

    # The complaints agent refers it: the ticket's own request and follow-ups go, never the
    # request a merge brought from the other ticket.
    forward = sandbox.fetch_all(COMPLAINTS_AGENT)[-1]
    referral = staff_reply(
        forward,
        f"#référer : {OTHER_BODY}\r\n\r\nCela relève d'eux.",
        sender=COMPLAINTS_AGENT,
        message_id="<refer-plaintes@mri.gouv.qc.ca>",
    )
    sandbox.deliver(COMPLAINTS, referral, received_at=office("2025-11-06T11:00"))
    later = make_app("2025-11-06T11:05:00-05:00")
    run_pass(later)
    [referred] = sandbox.delivered_to(OTHER_BODY)
    text = text_of(parsed(referred))
    own_request = "les bourses" if kept == "MRI-2025-00001" else "SECRET-PLAINTE"
    merged_request = "SECRET-PLAINTE" if kept == "MRI-2025-00001" else "les bourses"
    assert own_request in text and "SECRET-SUIVI" in text
    assert merged_request not in text

    # A digest morning: the information staff still never saw the complaint.
    run_pass(make_app("2025-11-07T08:35:00-05:00"))
    assert leaked(sandbox) == []
    assert any("Condensé" in text for text in mail_of(sandbox, SUPERVISOR))
    with session_scope(later.engine) as session:
        refused = session.exec(
            select(AccessEntry.actor, AccessEntry.action, AccessEntry.detail).where(
                col(AccessEntry.action).startswith("refused")
            )
        ).all()
    assert refused == [(AGENT, "refused_message", "not_on_queue (plaintes)")]


def test_a_refused_merge_is_in_the_access_trail_with_its_reason(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _info_notice, complaint_notice = information_then_complaint(sandbox, make_app)
    # The complaints agent does not work the information queue: refused, and recorded.
    merge = staff_reply(complaint_notice, "#fusionner MRI-2025-00001", sender=COMPLAINTS_AGENT)
    sandbox.deliver(COMPLAINTS, merge, received_at=office("2025-11-05T09:00"))
    app = make_app("2025-11-05T09:05:00-05:00")
    run_pass(app)

    assert tickets(app)["MRI-2025-00002"].merged_into is None
    assert citizen_replies(sandbox) == []
    with session_scope(app.engine) as session:
        trail = session.exec(
            select(
                AccessEntry.actor, AccessEntry.action, AccessEntry.ref, AccessEntry.detail
            ).where(col(AccessEntry.action).startswith("refused"))
        ).all()
    assert trail == [
        (COMPLAINTS_AGENT, "refused_merge", "MRI-2025-00002", "merge_not_on_queue (MRI-2025-00001)")
    ]
