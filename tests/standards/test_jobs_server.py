"""Reminders, escalation and digests against real servers, walking through a month of passes.

A citizen writes on Mon 2025-12-15 at 10:00; the information reply is due 10 business days
later, Tue 2026-01-06, because Dec 24, 25, 26, Dec 31, Jan 1 and Jan 2 are public-service
holidays. With the default offsets (3, 1, 0) the staff are reminded on Mon Dec 29, Mon Jan 5
and Tue Jan 6; the supervisor is told on Wed Jan 7 that the deadline passed.
"""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col, select

from mailbot.app import build_app
from mailbot.clock import FixedClock
from mailbot.db.job_rows import month_compliance, open_deadlines
from mailbot.db.models import DEADLINE, OutboxMessage, TicketEvent, TicketHold
from mailbot.db.store import session_scope
from mailbot.db.ticket_rows import set_ticket_fields
from mailbot.mail import tokens
from mailbot.mail.render import PURPOSE_HEADER
from mailbot.ops.passes import PassReport, run_pass
from mailbot.sandbox.servers import Sandbox
from mailbot.settings import DatabaseSettings, Settings
from mailbot.standards.due_jobs import WATCHED_KINDS
from mailbot.tickets import clocks
from mailbot.tickets.facts import NewTicket
from tests.conftest import TEST_SIGNING_KEY, AppFactory
from tests.intake.test_spine import CITIZEN, INFO, OFFICE, citizen_request, office, parsed
from tests.intake.test_spine import text_of as wire_text

AGENT = "agent.info@mri.gouv.qc.ca"
SUPERVISOR = "superviseur@mri.gouv.qc.ca"
REF = "MRI-2025-00001"
# The citizen's own words, which must never reach a reminder or a digest.
SUBJECT = "Bourses d'études pour ma fille Léa"
BODY = "Bonjour, ma fille Léa Tremblay souhaite étudier à Lyon. Quelles bourses existent?"

HOLIDAYS = {date(2025, 12, d) for d in (24, 25, 26, 31)} | {date(2026, 1, 1), date(2026, 1, 2)}
FIRST_DAY, LAST_DAY = date(2025, 12, 15), date(2026, 1, 9)
# Mailbot is down from Wed Dec 17 to Fri Dec 19: no run at all on those three days.
DOWN = {date(2025, 12, 17), date(2025, 12, 18), date(2025, 12, 19)}
BUSINESS_RUNS = (time(7, 0), time(8, 45), time(13, 0), time(17, 0))
DAY_OFF_RUNS = (time(8, 45), time(13, 0))


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in HOLIDAYS


def received(sandbox: Sandbox, address: str, purpose: str) -> list[tuple[datetime, EmailMessage]]:
    """(office-time Date, message) of each message of `purpose` in `address`'s inbox."""
    found = []
    for raw in sandbox.fetch_all(address):
        message = parsed(raw)
        if message[PURPOSE_HEADER] == purpose:
            found.append((parsedate_to_datetime(message["Date"]).astimezone(OFFICE), message))
    return sorted(found, key=lambda item: item[0])


def text_of(message: EmailMessage) -> str:
    return wire_text(message).replace("\r\n", "\n")


def whole_text(message: EmailMessage) -> str:
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    return text_of(message) + str(html.get_content())


def run_at(make_app: AppFactory, instant: datetime) -> PassReport:
    report = run_pass(make_app(instant.isoformat()))
    assert report.ok, f"{instant}: {report.summary()}"
    return report


def test_a_month_of_reminders_one_escalation_and_a_digest_every_business_morning(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    day = FIRST_DAY
    while day <= LAST_DAY:
        if day not in DOWN:
            for moment in BUSINESS_RUNS if is_business_day(day) else DAY_OFF_RUNS:
                if day == FIRST_DAY and moment == time(13, 0):
                    raw = citizen_request(subject=SUBJECT, body=BODY)
                    sandbox.deliver(INFO, raw, received_at=office("2025-12-15T10:00"))
                run_at(make_app, datetime.combine(day, moment, tzinfo=OFFICE))
        day += timedelta(days=1)

    # Reminders reach the queue's staff on the right business days, once each, at the first
    # run after 08:00: 3 business days before (over Christmas), 1 (over New Year), the day.
    reminders = received(sandbox, AGENT, "reminder")
    assert [(when.isoformat(), m["Subject"]) for when, m in reminders] == [
        (
            "2025-12-29T08:45:00-05:00",
            f"Rappel [{REF}] : échéance dans 3 jours ouvrables (mardi 6 janvier 2026)",
        ),
        (
            "2026-01-05T08:45:00-05:00",
            f"Rappel [{REF}] : échéance dans 1 jour ouvrable (mardi 6 janvier 2026)",
        ),
        (
            "2026-01-06T08:45:00-05:00",
            f"Rappel [{REF}] : échéance aujourd'hui (mardi 6 janvier 2026)",
        ),
    ]
    _, first = reminders[0]
    assert first["Auto-Submitted"] == "auto-generated"
    assert first["X-Auto-Response-Suppress"] == "All"
    assert first["Return-Path"].strip("<>") == ""  # the null envelope sender
    assert first["From"].addresses[0].addr_spec == INFO
    assert first["Reply-To"].addresses[0].addr_spec == INFO
    key = TEST_SIGNING_KEY.encode()
    assert [t.ticket_ref for t in tokens.find_tokens(key, [first["Message-ID"]])] == [REF]
    assert "part en retard" not in text_of(first)

    # The supervisor hears once that the deadline passed, the first business day after it.
    [(when, escalation)] = received(sandbox, SUPERVISOR, "escalation")
    assert when.isoformat() == "2026-01-07T08:45:00-05:00"
    assert escalation["Subject"] == (
        f"Échéance dépassée [{REF}] : 1 jour ouvrable de retard (échéance mardi 6 janvier 2026)"
    )
    assert escalation["Reply-To"].addresses[0].addr_spec == INFO
    assert [t.ticket_ref for t in tokens.find_tokens(key, [escalation["Message-ID"]])] == [REF]

    # One digest every business morning at the first run after 08:30, none on weekends or
    # holidays, and after the three days without a run, one catch-up digest, not three.
    digests = received(sandbox, SUPERVISOR, "digest")
    expected_days = [
        "2025-12-15",
        "2025-12-16",
        "2025-12-22",
        "2025-12-23",
        "2025-12-29",
        "2025-12-30",
        "2026-01-05",
        "2026-01-06",
        "2026-01-07",
        "2026-01-08",
        "2026-01-09",
    ]
    assert [when.date().isoformat() for when, _ in digests] == expected_days
    assert {when.time() for when, _ in digests} == {time(8, 45)}
    by_day = {when.date().isoformat(): message for when, message in digests}
    for day_text, message in by_day.items():
        assert re.fullmatch(
            rf"<mb-digest\.{day_text}\.[0-9a-f]{{12}}@mri\.gouv\.qc\.ca>", message["Message-ID"]
        )
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Reply-To"].addresses[0].addr_spec == INFO
    catch_up = by_day["2025-12-22"]
    assert "(rattrapage)" in catch_up["Subject"]
    assert (
        "les condensés du mercredi 17 décembre 2025, du jeudi 18 décembre 2025 et du "
        "vendredi 19 décembre 2025 n'ont pas été envoyés" in text_of(catch_up)
    )
    assert sum("(rattrapage)" in m["Subject"] for _, m in digests) == 1

    # What the digests say, day by day.
    assert "Échéance d'ici 5 jours ouvrables, jusqu'au mardi 23 décembre 2025 (0)" in text_of(
        by_day["2025-12-16"]
    )
    assert "- Accusé de réception : 1 sur 1 dans le délai (100 %)" in text_of(by_day["2025-12-16"])
    soon = text_of(by_day["2025-12-30"])
    assert (
        f"- {REF} : Réponse à une demande de renseignements\n"
        "  échéance mardi 6 janvier 2026, dans 2 jours ouvrables\n"
        "  ouvert, non assigné" in soon
    )
    assert f"Échéance aujourd'hui (1)\n- {REF}" in text_of(by_day["2026-01-06"])
    late = text_of(by_day["2026-01-09"])
    assert (
        f"En retard (1)\n- {REF} : Réponse à une demande de renseignements\n"
        "  échéance mardi 6 janvier 2026, 3 jours ouvrables de retard" in late
    )
    assert (
        "- Réponse à une demande de renseignements : 0 sur 1 dans le délai (0 %), cible 90 % : "
        "non atteinte" in late
    )

    # Confidentiality: no subject, no body, no requester in anything sent to staff.
    staff_mail = [m for _, m in (*reminders, *digests)] + [escalation]
    for message in staff_mail:
        content = whole_text(message) + str(message["Subject"])
        for secret in ("Léa", "Bourses", "bourses", "Lyon", CITIZEN, "Tremblay"):
            assert secret not in content, (message["Subject"], secret)

    # The citizen got the acknowledgement only.
    assert len(sandbox.fetch_all(CITIZEN)) == 1


def test_a_reminder_missed_while_down_goes_out_once_late_even_with_two_instances(
    sandbox: Sandbox, make_app: AppFactory
) -> None:
    sandbox.deliver(
        INFO, citizen_request(subject=SUBJECT, body=BODY), received_at=office("2025-12-15T10:00")
    )
    run_at(make_app, office("2025-12-15T10:05"))
    # Down from Dec 15 to Tue Dec 30 at 10:00: the 3-day reminder (Mon Dec 29, 08:00) was missed.
    # Two instances start at once.
    apps = [make_app("2025-12-30T10:00:00-05:00") for _ in range(2)]
    reports: list[PassReport] = []
    start = threading.Barrier(2)

    def one(index: int) -> None:
        start.wait()
        reports.append(run_pass(apps[index]))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(reports) == 2 and all(r.ok for r in reports), [r.summary() for r in reports]
    # And again after a restart, later the same day.
    run_at(make_app, office("2025-12-30T11:00"))

    [(when, reminder)] = received(sandbox, AGENT, "reminder")
    assert when.isoformat() == "2025-12-30T10:00:00-05:00"
    assert reminder["Subject"] == (
        f"Rappel [{REF}] : échéance dans 2 jours ouvrables (mardi 6 janvier 2026) (en retard)"
    )
    assert (
        "Ce rappel part en retard : il était prévu le lundi 29 décembre 2025 à 8 h 00"
        in text_of(reminder)
    )
    digests = received(sandbox, SUPERVISOR, "digest")
    assert [when.date().isoformat() for when, _ in digests] == ["2025-12-15", "2025-12-30"]
    catch_up = text_of(digests[1][1])
    assert (
        "les condensés de 7 jours ouvrables, du mardi 16 décembre 2025 au lundi 29 décembre "
        "2025, n'ont pas été envoyés" in catch_up
    )
    assert "Ce condensé part en retard : il était prévu à 8 h 30." in catch_up
    with session_scope(apps[0].engine) as session:
        rows = session.exec(
            select(OutboxMessage.dedupe_key).where(
                col(OutboxMessage.purpose).in_(("reminder", "escalation", "digest"))
            )
        ).all()
        events = session.exec(
            select(TicketEvent.kind).where(col(TicketEvent.kind).startswith("reminder"))
        ).all()
    assert sorted(rows) == [
        f"digest:{SUPERVISOR}:2025-12-15",
        f"digest:{SUPERVISOR}:2025-12-30",
        f"reminder:{REF}:info_reply:2026-01-06:3:{AGENT}",
    ]
    assert sorted(events) == ["reminder_queued", "reminder_sent"]


def test_the_database_facts_open_deadlines_and_the_months_compliance(
    base_settings: Settings, tmp_path: Path
) -> None:
    now = office("2025-12-22T12:00")
    settings = base_settings.model_copy(
        update={"database": DatabaseSettings(url=f"sqlite:///{tmp_path / 'mailbot.db'}")}
    )
    app = build_app(settings, FixedClock(now), {"MAILBOT_SIGNING_KEY": TEST_SIGNING_KEY})
    engine = app.engine
    tickets = {}
    with engine.begin() as connection:
        for name, received_at, category in [
            ("met", "2025-11-24T10:00", "information"),  # info_reply due Mon Dec 8
            ("late", "2025-11-25T10:00", "information"),  # due Dec 9
            ("open_late", "2025-11-26T10:00", "information"),  # due Dec 10
            ("held", "2025-11-27T10:00", "information"),  # due Dec 11, on hold since Dec 1
            ("next_month", "2025-12-15T10:00", "information"),  # due Jan 6; its ack Dec 17
            ("complaint", "2025-11-24T10:00", "complaint"),  # arrived at renseignements
        ]:
            new = NewTicket(
                mailbox="renseignements",
                category=category,
                requester=CITIZEN,
                requester_name="",
                language="fr",
                subject="",
                received_at=office(received_at),
            )
            tickets[name] = clocks.open_ticket(connection, app, new, now)

        def meet(name: str, commitment: str, at: str) -> None:
            connection.execute(
                sa.update(DEADLINE)
                .where(DEADLINE.c.ticket_id == tickets[name].id)
                .where(DEADLINE.c.commitment == commitment)
                .values(met_at=office(at))
            )

        for name in ("met", "late", "open_late", "held", "complaint"):
            meet(name, "ack", "2025-11-27T09:00")
        meet("met", "info_reply", "2025-12-05T15:00")
        meet("late", "info_reply", "2025-12-10T09:00")
        meet("next_month", "info_reply", "2025-12-23T09:00")  # after `now`: not known yet
        meet("next_month", "ack", "2025-12-23T09:00")
        set_ticket_fields(connection, tickets["held"].id, now, status="on_hold")
        connection.execute(
            sa.insert(TicketHold.__table__).values(  # type: ignore[attr-defined]
                ticket_id=tickets["held"].id,
                started_at=office("2025-12-01T11:00"),
                reason="",
                started_by="agent.info@mri.gouv.qc.ca",
                ended_by="",
            )
        )

    with engine.connect() as connection:
        watched = [c.id for c in base_settings.commitments if c.kind in WATCHED_KINDS]
        deadlines = open_deadlines(connection, watched, now)
        info = base_settings.mailbox("renseignements")
        complaints = base_settings.mailbox("plaintes")
        december = month_compliance(connection, base_settings, info, date(2025, 12, 1), now)
        of_complaints = month_compliance(
            connection, base_settings, complaints, date(2025, 12, 1), now
        )
    engine.dispose()

    assert [(d.ref, d.commitment, d.due_date.isoformat(), d.status) for d in deadlines] == [
        (tickets["open_late"].ref, "info_reply", "2025-12-10", "open"),
        (tickets["held"].ref, "info_reply", "2025-12-11", "on_hold"),
        (tickets["complaint"].ref, "complaint_reply", "2025-12-15", "open"),
        (tickets["next_month"].ref, "info_reply", "2026-01-06", "open"),
    ]
    assert deadlines[1].held_since == office("2025-12-01T11:00")
    assert deadlines[0].opened_at == now
    # December's deadlines of the information queue, as of Dec 22 at noon.
    assert december == {
        "info_reply": {"met": 1, "late": 1, "open_late": 1, "pending": 1},
        # "held"'s ack was due Mon Dec 1 (met); "next_month"'s was due Dec 17, sent Dec 23.
        "ack": {"met": 1, "late": 0, "open_late": 1, "pending": 0},
    }
    # The complaint that arrived at renseignements is the complaints queue's.
    assert of_complaints == {"complaint_reply": {"met": 0, "late": 0, "open_late": 1, "pending": 0}}
