"""Every message in its place, against the real servers: no loops, no lost mail, no floods."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import select

from mailbot.db.models import InboundMessage, OutboxMessage, Ticket
from mailbot.db.store import session_scope
from mailbot.ops.passes import run_pass
from mailbot.sandbox.servers import Sandbox
from tests.conftest import AppFactory
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of

CORPUS = Path(__file__).parents[1] / "corpus"
MINISTRY = "@mri.gouv.qc.ca"
SUPERVISOR = "superviseur@mri.gouv.qc.ca"


def outbox_recipients(engine: sa.Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage.purpose, OutboxMessage.recipient)).all()
        return [(purpose, recipient) for purpose, recipient in rows]


def test_own_mail_out_of_office_bounce_and_list_mail_send_nothing_outside(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(INFO, citizen_request(), received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [our_ack] = sandbox.fetch_all(CITIZEN)
    # Our own acknowledgement comes back (a forwarding rule, a misconfigured alias) ...
    sandbox.deliver(INFO, our_ack, received_at=office("2025-11-03T10:05"))
    # ... with an out-of-office, a bounce and a list message.
    for name in (
        "exchange_oof_en.eml",
        "bounce_postfix_dsn_5_1_1.eml",
        "list_mailman_post.eml",
        "gmail_vacation_fr.eml",
        "robot_noreply_notification.eml",
    ):
        sandbox.deliver(INFO, (CORPUS / name).read_bytes(), received_at=office("2025-11-03T10:06"))
    before = outbox_recipients(make_app("2025-11-03T10:06:00-05:00").engine)
    app = make_app("2025-11-03T10:10:00-05:00")

    report = run_pass(app)

    assert report.fetched == 6
    after = outbox_recipients(app.engine)
    new_rows = after[len(before) :]
    assert all(recipient.endswith(MINISTRY) for _purpose, recipient in new_rows), new_rows
    assert len(sandbox.fetch_all(CITIZEN)) == 1
    with session_scope(app.engine) as session:
        kinds = dict(session.exec(select(InboundMessage.uid, InboundMessage.kind)).all())
        states = dict(session.exec(select(InboundMessage.uid, InboundMessage.state)).all())
        assert sorted(kinds.values()) == sorted(
            [
                "new_request",
                "own_mail",
                "auto_reply",
                "bounce",
                "list_mail",
                "auto_reply",
                "robot",
            ]
        )
        assert all(state in ("processed", "set_aside", "held") for state in states.values())
        assert session.exec(select(sa.func.count()).select_from(Ticket)).one() == 1
    assert sandbox.fetch_all(INFO) == []


def test_a_misdirected_complaint_becomes_a_complaint_with_the_15_day_deadline(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    raw = (CORPUS / "fr_misdirected_complaint.eml").read_bytes()
    sandbox.deliver(INFO, raw, received_at=office("2025-11-03T10:00"))
    app = make_app("2025-11-03T10:01:00-05:00")

    run_pass(app)

    with session_scope(app.engine) as session:
        [ticket] = session.exec(select(Ticket)).all()
    assert (ticket.mailbox, ticket.category) == ("renseignements", "complaint")
    assert ticket.receipt_date.isoformat() == "2025-11-03"
    assert ticket.due_date is not None and ticket.due_date.isoformat() == "2025-11-24"
    # Complaints are confidential: the notice goes to the complaints staff only.
    notices = [r for p, r in outbox_recipients(app.engine) if p == "notice"]
    assert notices == ["agent.plaintes@mri.gouv.qc.ca"]


def test_fifty_requests_from_one_address_in_an_hour_get_at_most_the_daily_cap(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    start = office("2025-11-03T10:00")
    for n in range(50):
        sandbox.deliver(
            INFO,
            citizen_request(f"<flood-{n}@example.org>"),
            received_at=start + timedelta(seconds=70 * n),
        )
    app = make_app("2025-11-03T11:00:00-05:00")

    report = run_pass(app)

    assert report.fetched == 50
    acknowledgements = [parsed(raw) for raw in sandbox.fetch_all(CITIZEN)]
    assert len(acknowledgements) == app.settings.classification.per_address_daily_limit == 10
    with session_scope(app.engine) as session:
        assert session.exec(select(sa.func.count()).select_from(Ticket)).one() == 50
        withheld = session.execute(
            sa.text(
                "SELECT count(*) FROM ticket_event WHERE kind = 'acknowledgement_withheld' "
                "AND detail LIKE 'per-address limit%'"
            )
        ).one()[0]
        assert withheld == 40


def test_a_pass_over_malformed_mail_leaves_the_inbox_empty(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    names = sorted(p.name for p in CORPUS.glob("malformed_*.eml"))
    for name in names:
        sandbox.deliver(INFO, (CORPUS / name).read_bytes(), received_at=office("2025-11-03T10:00"))
    # A message no parser could survive: NUL bytes and a header line of 200 KB.
    sandbox.deliver(
        INFO,
        b"From: x\x00@example.org\r\nSubject: " + b"A" * 200_000 + b"\r\n\r\nx",
        received_at=office("2025-11-03T10:00"),
    )
    app = make_app("2025-11-03T10:05:00-05:00")

    report = run_pass(app)

    assert report.fetched == len(names) + 1
    assert sandbox.fetch_all(INFO) == []
    with session_scope(app.engine) as session:
        rows = session.exec(select(InboundMessage)).all()
        assert len(rows) == len(names) + 1
        for row in rows:
            assert row.state in ("processed", "set_aside", "quarantined", "held"), row
            assert row.reason, f"message #{row.id} has no reason"
    moved = len(sandbox.fetch_all(INFO, "Traites")) + len(sandbox.fetch_all(INFO, "Quarantaine"))
    assert moved == len(names) + 1


def test_english_follows_the_french_only_where_the_policy_allows(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    english = citizen_request(
        subject="Information request",
        body="Hello, I would like to know how to apply for the grant. "
        "Could you please send me the forms? Thank you.",
    )
    sandbox.deliver(INFO, english, received_at=office("2025-11-03T10:00"))
    base = make_app("2025-11-03T10:01:00-05:00").settings
    allowed = base.model_copy(
        update={"language": base.language.model_copy(update={"english_policy": "detected_english"})}
    )
    app = make_app("2025-11-03T10:01:00-05:00", allowed)

    run_pass(app)

    [raw] = sandbox.fetch_all(CITIZEN)
    text = text_of(parsed(raw))
    assert text.index("Nous avons bien reçu") < text.index("We received your request")
    with session_scope(app.engine) as session:
        [ticket] = session.exec(select(Ticket)).all()
    assert ticket.language == "en"


def test_without_a_policy_an_english_request_is_acknowledged_in_french_only(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    english = citizen_request(
        subject="Information request",
        body="Hello, I would like to know how to apply for the grant. "
        "Could you please send me the forms? Thank you.",
    )
    sandbox.deliver(INFO, english, received_at=office("2025-11-03T10:00"))
    run_pass(make_app("2025-11-03T10:01:00-05:00"))
    [raw] = sandbox.fetch_all(CITIZEN)
    text = text_of(parsed(raw))
    assert "Nous avons bien reçu" in text and "We received" not in text
