"""The clocks count from the complete request (real servers): `incomplet` / `complet`.

The expected dates are checked against an independent count of Quebec public-service business
days: the `holidays` package's Quebec statutory days plus the public-service days it lacks
(Jan 2, Easter Monday, Dec 24, Dec 26, Dec 31), not mailbot's calendar.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any

import holidays
import pytest
from sqlmodel import col, select

from mailbot.app import App
from mailbot.cli.views import clock_lines
from mailbot.db.models import AccessEntry, TicketEvent, TicketHold
from mailbot.db.store import reading, session_scope
from mailbot.db.ticket_rows import ticket_history, ticket_record
from mailbot.ops.passes import run_pass
from mailbot.reporting.report import ReportRequest, build_report, render_report
from mailbot.reporting.shapes import ticket_detail_json
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import Settings
from tests.conftest import REPO, AppFactory
from tests.intake.test_spine import CITIZEN, INFO, citizen_request, office, parsed, text_of
from tests.staff.test_staff_commands import deadlines, with_programmes
from tests.staff.test_staff_server import (
    AGENT,
    citizen_replies,
    event_kinds,
    staff_reply,
    ticket_row,
)

MISSING = "il manque votre attestation d'études"
TEMPLATES = REPO / "templates"


def public_service_days_off(year: int) -> set[date]:
    """Quebec public-service holidays, computed apart from mailbot: the package's Quebec
    statutory days, plus the days the public service also closes (weekday cases only, which is
    all the years these tests use)."""
    days = set(holidays.country_holidays("CA", subdiv="QC", years=year))
    easter_monday = next(
        d
        for d, name in holidays.country_holidays("CA", subdiv="QC", years=year).items()
        if name == "Good Friday"
    ) + timedelta(days=3)
    days |= {date(year, 1, 2), easter_monday, date(year, 12, 24), date(year, 12, 26)}
    days |= {date(year, 12, 31)}
    return days


def independent_due(day_zero: date, business_days: int) -> date:
    """The `business_days`-th business day after `day_zero` (day 0 not counted)."""
    off = public_service_days_off(day_zero.year) | public_service_days_off(day_zero.year + 1)
    day, counted = day_zero, 0
    while counted < business_days:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in off:
            counted += 1
    return day


def independent_receipt_day(instant: datetime) -> date:
    """Day 0 of a message arriving at `instant` (office time): that day before 16:30 on a
    business day, else the next business day."""
    off = public_service_days_off(instant.year) | public_service_days_off(instant.year + 1)
    day = instant.date()
    if day.weekday() < 5 and day not in off and (instant.hour, instant.minute) < (16, 30):
        return day
    return independent_due(day, 1)


def test_the_independent_calendar_agrees_with_the_declaration_examples() -> None:
    """The independent count reproduces SERVICE-STANDARDS' worked examples, so it can judge."""
    assert independent_due(date(2025, 12, 22), 10) == date(2026, 1, 13)
    assert independent_due(date(2025, 12, 23), 2) == date(2025, 12, 30)
    assert independent_due(date(2025, 11, 3), 30) == date(2025, 12, 15)


def request_on(
    sandbox: Sandbox,
    make_app: AppFactory,
    at: str,
    settings: Settings | None = None,
    mailbox: str = INFO,
) -> tuple[App, bytes]:
    """A citizen's request arriving at `at` (office time), processed a minute later."""
    sandbox.deliver(mailbox, citizen_request(), received_at=office(at))
    app = make_app((office(at) + timedelta(minutes=1)).isoformat(), settings)
    run_pass(app)
    notices = [raw for raw in sandbox.fetch_all(AGENT) if "Nouvelle" in str(parsed(raw)["Subject"])]
    return app, notices[-1]


def staff_says(
    sandbox: Sandbox,
    make_app: AppFactory,
    notice: bytes,
    body: str,
    at: str,
    settings: Settings | None = None,
    mailbox: str = INFO,
    number: int = 1,
) -> App:
    """The agent answers the notice with `body`, arriving at `at` (office time)."""
    reply = staff_reply(notice, body, message_id=f"<staff-{number}@mri.gouv.qc.ca>")
    sandbox.deliver(mailbox, reply, received_at=office(at))
    app = make_app((office(at) + timedelta(minutes=2)).isoformat(), settings)
    run_pass(app)
    return app


def citizen_writes(
    sandbox: Sandbox,
    make_app: AppFactory,
    text: str,
    at: str,
    settings: Settings | None = None,
    mailbox: str = INFO,
    number: int = 2,
) -> App:
    """The citizen answers the last message mailbot sent them, arriving at `at`."""
    last = parsed(sandbox.fetch_all(CITIZEN)[-1])
    last_id = str(last["Message-ID"])
    message = (
        f"From: Josée Tremblay <{CITIZEN}>\r\nTo: {mailbox}\r\n"
        f"Subject: RE: {last['Subject']}\r\nMessage-ID: <req-{number}@example.org>\r\n"
        f"In-Reply-To: {last_id}\r\nReferences: <req-1@example.org> {last_id}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n"
    ).encode()
    sandbox.deliver(mailbox, message, received_at=office(at))
    app = make_app((office(at) + timedelta(minutes=2)).isoformat(), settings)
    run_pass(app)
    return app


def holds(app: App) -> list[TicketHold]:
    with session_scope(app.engine) as session:
        return list(session.exec(select(TicketHold).order_by(col(TicketHold.id))).all())


def trail(app: App) -> list[str]:
    with session_scope(app.engine) as session:
        return list(session.exec(select(AccessEntry.action).order_by(col(AccessEntry.id))).all())


def shown(app: App) -> tuple[dict[str, Any], str]:
    """What `mailbot show` gives for the ticket: its JSON, and the clocks part of its text."""
    with reading(app.engine) as connection:
        record = ticket_record(connection, "MRI-2025-00001")
        assert record is not None
        data = ticket_detail_json(record, ticket_history(connection, record["id"]))
    return data, "".join(f"{line}\n" for line in clock_lines(data, app.settings.organisation.zone))


def test_the_issue_example_is_due_on_6_january_2026(sandbox: Sandbox, make_app: AppFactory) -> None:
    """Received Mon 1 Dec 2025 10:00; incomplete on Thursday; completed Fri 12 Dec 17:05."""
    _app, notice = request_on(sandbox, make_app, "2025-12-01T10:00")
    app = staff_says(sandbox, make_app, notice, f"#incomplet : {MISSING}", "2025-12-04T09:00")

    assert ticket_row(app).status == "on_hold"
    [asked] = [parsed(raw) for raw in citizen_replies(sandbox)]
    asked_text = text_of(asked)
    assert MISSING in asked_text and "demande complète" in asked_text
    assert "staff_incomplete" in trail(app)

    app = citizen_writes(sandbox, make_app, "Voici mon attestation.", "2025-12-12T17:05")

    day_zero = independent_receipt_day(office("2025-12-12T17:05"))
    expected = independent_due(day_zero, 10)
    assert (day_zero, expected) == (date(2025, 12, 15), date(2026, 1, 6))
    start, due, met = deadlines(app)["info_reply"]
    assert (start, due, met) == (day_zero, expected, False)
    ticket = ticket_row(app)
    assert ticket.due_date == expected and ticket.status == "open"
    assert ticket.receipt_date == date(2025, 12, 1)  # the first receipt is kept
    # The acknowledgement of receipt counts from the first receipt: it does not restart.
    assert deadlines(app)["ack"][0] == date(2025, 12, 1)
    [spell] = holds(app)
    assert (spell.kind, spell.reason, spell.started_by) == ("incomplete", MISSING, AGENT)
    assert spell.ended_at == office("2025-12-12T17:05") and spell.ended_by == CITIZEN
    assert "request_completed" in event_kinds(app)
    forwarded = text_of(parsed(sandbox.fetch_all(AGENT)[-1]))
    assert "ce message la complète" in forwarded and "6 janvier 2026" in forwarded

    data, text = shown(app)
    assert data["receipt_date"] == "2025-12-01"  # the first receipt
    [wait] = data["holds"]
    assert (wait["kind"], wait["reason"], wait["ended_by"]) == ("incomplete", MISSING, CITIZEN)
    assert wait["ended_at"] == "2025-12-12T22:05:00+00:00"
    assert "info_reply           from 2025-12-15  due 2026-01-06" in text
    assert "ack                  from 2025-12-01" in text
    assert "incomplete since 2025-12-04 09:02 by agent.info@mri.gouv.qc.ca" in text
    assert f"(completed 2025-12-12 17:05 by {CITIZEN})" in text


def test_a_completion_on_a_holiday_counts_from_the_next_business_day(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = request_on(sandbox, make_app, "2025-12-01T10:00")
    staff_says(sandbox, make_app, notice, f"#incomplete: {MISSING}", "2025-12-02T09:00")
    app = citizen_writes(sandbox, make_app, "Ci-joint.", "2025-12-26T10:00")  # Boxing Day

    day_zero = independent_receipt_day(office("2025-12-26T10:00"))
    assert day_zero == date(2025, 12, 29)
    start, due, _met = deadlines(app)["info_reply"]
    assert (start, due) == (day_zero, independent_due(day_zero, 10))


def test_incomplete_twice_counts_from_the_reply_that_completes_it(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    staff_says(sandbox, make_app, notice, f"#incomplet : {MISSING}", "2025-11-04T09:00")
    app = citizen_writes(sandbox, make_app, "Je vous l'envoie bientôt.", "2025-11-06T11:00")
    assert deadlines(app)["info_reply"][0] == date(2025, 11, 6)  # taken as complete
    forward = [raw for raw in sandbox.fetch_all(AGENT)][-1]
    app = staff_says(
        sandbox,
        make_app,
        forward,
        "#incomplet : toujours l'attestation",
        "2025-11-07T09:00",
        number=2,
    )
    assert ticket_row(app).status == "on_hold"
    app = citizen_writes(sandbox, make_app, "Voici l'attestation.", "2025-11-20T16:45", number=3)

    day_zero = independent_receipt_day(office("2025-11-20T16:45"))  # after 16:30: Friday
    assert day_zero == date(2025, 11, 21)
    start, due, _met = deadlines(app)["info_reply"]
    assert (start, due) == (day_zero, independent_due(day_zero, 10))
    spells = holds(app)
    assert [h.kind for h in spells] == ["incomplete", "incomplete"]
    assert [h.ended_at for h in spells] == [office("2025-11-06T11:00"), office("2025-11-20T16:45")]
    assert len(citizen_replies(sandbox)) == 2  # each reason reached the citizen


def test_complete_from_staff_starts_the_clock_that_day(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    staff_says(sandbox, make_app, notice, f"#incomplet : {MISSING}", "2025-11-04T09:00")
    app = staff_says(
        sandbox,
        make_app,
        notice,
        "#complet\r\n#note\r\n\r\nReçue par la poste.",
        "2025-11-12T10:00",
        number=2,
    )

    start, due, _met = deadlines(app)["info_reply"]
    assert (start, due) == (date(2025, 11, 12), independent_due(date(2025, 11, 12), 10))
    assert ticket_row(app).status == "open"
    [spell] = holds(app)
    assert spell.ended_by == AGENT and spell.ended_at == office("2025-11-12T10:02")
    assert "staff_complete" in trail(app)
    assert len(citizen_replies(sandbox)) == 1  # the note stays internal


def test_complete_when_nothing_is_missing_is_refused(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    app = staff_says(sandbox, make_app, notice, "#complet", "2025-11-04T09:00")

    assert "command_rejected" in event_kinds(app)
    error = text_of(parsed(sandbox.fetch_all(AGENT)[-1]))
    assert "n'est pas déclaré incomplet" in error
    assert deadlines(app)["info_reply"][0] == date(2025, 11, 3)


def test_attente_still_pauses(sandbox: Sandbox, make_app: AppFactory) -> None:
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    staff_says(sandbox, make_app, notice, "#attente : votre numéro de dossier", "2025-11-05T09:00")
    app = citizen_writes(sandbox, make_app, "C'est le 1234.", "2025-11-10T09:00")

    # A pause: the clock still counts from the first receipt, its due date moved later by the
    # business days on hold (not restarted from the citizen's answer).
    start, due, _met = deadlines(app)["info_reply"]
    assert start == date(2025, 11, 3)
    assert independent_due(date(2025, 11, 3), 10) < due < independent_due(date(2025, 11, 10), 10)
    [hold] = holds(app)
    assert hold.kind == "wait"
    assert "request_completed" not in event_kinds(app)


@pytest.mark.parametrize(
    ("queue", "category", "ack", "result"),
    [
        ("stages", "internship", "internship_ack", "internship_result"),
        ("cooperation", "cooperation", "cooperation_ack", "cooperation_result"),
    ],
)
def test_programme_acknowledgement_of_the_complete_file(
    sandbox: Sandbox,
    make_app: AppFactory,
    queue: str,
    category: str,
    ack: str,
    result: str,
) -> None:
    settings = with_programmes(make_app("2025-11-03T09:00:00-05:00").settings)
    address = f"{queue}@mri.gouv.qc.ca"
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00", settings, address)
    app = make_app("2025-11-03T10:05:00-05:00", settings)
    assert deadlines(app)[ack][2]  # met by the acknowledgement of receipt
    staff_says(
        sandbox, make_app, notice, f"#incomplet : {MISSING}", "2025-11-04T09:00", settings, address
    )
    app = make_app("2025-11-04T09:10:00-05:00", settings)
    start, _due, met = deadlines(app)[ack]
    assert not met  # the file was not complete: its acknowledgement is still to come
    app = citizen_writes(
        sandbox, make_app, "Voici les documents.", "2025-11-13T17:00", settings, address
    )
    run_pass(make_app("2025-11-13T17:10:00-05:00", settings))

    day_zero = independent_receipt_day(office("2025-11-13T17:00"))
    start, due, met = deadlines(app)[ack]
    assert (start, due) == (day_zero, independent_due(day_zero, 2))
    complete_ack = parsed(sandbox.fetch_all(CITIZEN)[-1])
    assert "Dossier complet reçu" in str(complete_ack["Subject"])
    assert "14 novembre 2025" in text_of(complete_ack)
    assert deadlines(make_app("2025-11-13T17:20:00-05:00", settings))[ack][2]
    assert result not in deadlines(app)  # no interview or committee yet: no result date
    assert ticket_row(app).category == category


def test_the_report_counts_from_the_complete_request(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    """Answered on day 12 from the first receipt, day 8 from the complete request: met."""
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    staff_says(sandbox, make_app, notice, f"#incomplet : {MISSING}", "2025-11-05T09:00")
    citizen_writes(sandbox, make_app, "Voici.", "2025-11-07T10:00")  # Fri 7: day 0
    answer_day = independent_due(date(2025, 11, 7), 8)
    assert independent_due(date(2025, 11, 3), 12) == answer_day  # day 12 from first receipt
    forward = sandbox.fetch_all(AGENT)[-1]
    app = staff_says(
        sandbox,
        make_app,
        forward,
        "Bonjour, voici notre réponse.",
        f"{answer_day.isoformat()}T10:00",
        number=2,
    )
    run_pass(make_app(f"{answer_day.isoformat()}T10:10:00-05:00"))

    report = build_report(
        app.engine,
        app.settings,
        app.calendar,
        ReportRequest(since=date(2025, 11, 1), until=date(2025, 11, 30), details=True),
        as_of=office(f"{answer_day.isoformat()}T12:00"),
    )
    [info] = [c for c in report.commitments if c.commitment == "info_reply"]
    assert (info.total.figures.met, info.total.figures.late) == (1, 0)
    [case] = [c for c in report.cases if c.commitment == "info_reply"]
    assert (case.clock_start, case.delay_days, case.outcome) == (date(2025, 11, 7), 8, "met")
    assert case.first_receipt == date(2025, 11, 3)
    assert case.incomplete == ((office("2025-11-05T09:02"), office("2025-11-07T10:00")),)
    rows = list(csv.DictReader(io.StringIO(render_report(report, "csv", TEMPLATES))))
    [row] = [r for r in rows if r["commitment"] == "info_reply"]
    assert (row["first_receipt"], row["clock_start"], row["delay_days"]) == (
        "2025-11-03",
        "2025-11-07",
        "8",
    )
    assert row["incomplete"] == "2025-11-05 09:02 -0500 > 2025-11-07 10:00 -0500"
    assert "Première réception" in render_report(report, "html", TEMPLATES)
    with session_scope(app.engine) as session:
        kinds = session.exec(select(TicketEvent.kind)).all()
    assert "command_incomplete" in kinds and "request_completed" in kinds


def test_a_request_still_incomplete_is_pending_not_late(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    """Its clock has not started: past the first receipt's due date it is not late."""
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    app = staff_says(sandbox, make_app, notice, f"#incomplet : {MISSING}", "2025-11-04T09:00")

    report = build_report(
        app.engine,
        app.settings,
        app.calendar,
        ReportRequest(since=date(2025, 11, 1), until=date(2025, 12, 31), details=True),
        as_of=office("2025-12-01T12:00"),
    )
    outcomes = {c.commitment: c.outcome for c in report.cases}
    assert outcomes == {"ack": "met", "info_reply": "pending"}
    [case] = [c for c in report.cases if c.commitment == "info_reply"]
    assert case.incomplete == ((office("2025-11-04T09:02"), None),)


def test_the_reason_reaches_the_citizen_in_french_then_english_threaded(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    app = staff_says(
        sandbox,
        make_app,
        notice,
        "#anglais : correspondant hors Québec\r\n#incomplete: your transcript\r\n\r\nSophie Lavoie",
        "2025-11-04T09:00",
    )

    [asked] = [parsed(raw) for raw in citizen_replies(sandbox)]
    text = text_of(asked)
    french = text.index("il nous manque")
    english = text.index("we still need")
    assert french < text.index("your transcript") < english
    assert text.index("Sophie Lavoie") < english
    assert asked["In-Reply-To"] == "<req-1@example.org>"
    assert ticket_row(app).status == "on_hold"


def test_incomplete_during_an_attente_ends_the_pause_and_attente_after_completion_pauses(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    _app, notice = request_on(sandbox, make_app, "2025-11-03T10:00")
    staff_says(sandbox, make_app, notice, "#attente : une précision", "2025-11-04T09:00")
    staff_says(sandbox, make_app, notice, f"#incomplet : {MISSING}", "2025-11-05T09:00", number=2)
    citizen_writes(sandbox, make_app, "Voici.", "2025-11-07T10:00")
    app = staff_says(
        sandbox, make_app, notice, "#attente : votre choix de date", "2025-11-10T09:00", number=3
    )

    app = citizen_writes(sandbox, make_app, "Le 20.", "2025-11-14T10:00", number=3)

    wait, spell, later = holds(app)
    assert (wait.kind, wait.ended_at, wait.ended_by) == ("wait", office("2025-11-05T09:02"), AGENT)
    assert (spell.kind, spell.ended_at) == ("incomplete", office("2025-11-07T10:00"))
    assert (later.kind, later.ended_at) == ("wait", office("2025-11-14T10:00"))
    # Restarted from Fri 7 Nov (the answer to the later attente is no completion), and moved
    # later by the days that attente paused it.
    start, due, _met = deadlines(app)["info_reply"]
    assert start == date(2025, 11, 7)
    assert independent_due(date(2025, 11, 7), 10) < due < independent_due(date(2025, 11, 14), 10)
