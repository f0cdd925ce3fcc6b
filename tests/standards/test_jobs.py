"""What is due when: reminders, escalations and digests as tables of literal cases (pure).

Dates are office time (America/Toronto). The 2025-26 holidays that matter here: Wed Dec 24,
Thu Dec 25, Fri Dec 26, Wed Dec 31, Thu Jan 1, Fri Jan 2.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbot.mail.render import Renderer
from mailbot.settings import Settings, load_settings
from mailbot.standards.business_calendar import BusinessCalendar, build_calendar
from mailbot.standards.digest import (
    build_digest,
    compliance_lines,
    render_digest,
    render_escalation,
    render_reminder,
)
from mailbot.standards.due_jobs import (
    DigestDue,
    OpenDeadline,
    business_day_before,
    digests_due,
    escalations_due,
    reminders_due,
)

REPO = Path(__file__).resolve().parents[2]
OFFICE = ZoneInfo("America/Toronto")
AGENT = "agent.info@mri.gouv.qc.ca"
SUPERVISOR = "superviseur@mri.gouv.qc.ca"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "config" / "mailbot.toml", environ={})


@pytest.fixture(scope="module")
def calendar(settings: Settings) -> BusinessCalendar:
    return build_calendar(settings.calendar, settings.organisation.timezone)


def at(text: str) -> datetime:
    """An office-time instant, e.g. "2025-12-29 08:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=OFFICE)


def deadline(
    calendar: BusinessCalendar,
    due: str,
    *,
    start: str = "2025-12-15",
    commitment: str = "info_reply",
    category: str = "information",
    mailbox: str = "renseignements",
    status: str = "open",
    assignee: str | None = None,
    opened: str | None = None,
    ref: str = "MRI-2025-00001",
    held: str | None = None,
) -> OpenDeadline:
    """An open deadline; a ticket on hold was put on hold on its clock's first day unless
    `held` (office time) says when."""
    due_date = date.fromisoformat(due)
    if status == "on_hold" and held is None:
        held = f"{start} 11:00"
    return OpenDeadline(
        ticket_id=1,
        ref=ref,
        mailbox=mailbox,
        category=category,
        status=status,
        assignee=assignee,
        commitment=commitment,
        clock_start=date.fromisoformat(start),
        due_date=due_date,
        due_at=calendar.end_of_day(due_date),
        opened_at=at(opened or f"{start} 10:05"),
        held_since=at(held) if held else None,
    )


# --- counting back from the due date ----------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "n", "expected"),
    [
        ("2026-01-06", 0, "2026-01-06"),  # the day itself
        ("2026-01-06", 1, "2026-01-05"),  # Monday
        ("2026-01-06", 2, "2025-12-30"),  # over the weekend and Dec 31, Jan 1, Jan 2
        ("2026-01-06", 3, "2025-12-29"),
        ("2025-12-29", 1, "2025-12-23"),  # over the weekend and Dec 24, 25, 26
        ("2025-11-17", 1, "2025-11-14"),  # a Monday: the Friday before
        ("2025-11-19", 3, "2025-11-14"),  # a Wednesday: the Friday before
        ("2025-12-25", 0, "2025-12-23"),  # not a business day: the last one before it
    ],
)
def test_business_day_before(calendar: BusinessCalendar, due: str, n: int, expected: str) -> None:
    assert business_day_before(calendar, date.fromisoformat(due), n) == date.fromisoformat(expected)


# --- reminders --------------------------------------------------------------------------------

# A reply due Tue 2026-01-06 (received Mon 2025-12-15): reminders on Mon Dec 29 (3 business
# days before), Mon Jan 5 (1) and Tue Jan 6 (0), from 08:00. Only the latest threshold that has
# passed is due, until the end of the due day; more than an hour after its time it is late.
REMINDER_CASES = [
    ("2025-12-26 09:00", None),  # a holiday, and nothing yet
    ("2025-12-29 07:59", None),
    ("2025-12-29 08:00", (3, "2025-12-29", False)),
    ("2025-12-29 08:45", (3, "2025-12-29", False)),
    ("2025-12-29 13:00", (3, "2025-12-29", True)),  # due since 08:00: only a missed run gets it
    ("2025-12-31 10:00", (3, "2025-12-29", True)),  # holidays: still the 3-day one, late
    ("2026-01-05 07:00", (3, "2025-12-29", True)),
    ("2026-01-05 08:00", (1, "2026-01-05", False)),  # supersedes the 3-day one if it was missed
    ("2026-01-06 08:59", (0, "2026-01-06", False)),
    ("2026-01-06 23:59", (0, "2026-01-06", True)),
    ("2026-01-07 00:00", None),  # the deadline has passed: the escalation's turn
    ("2026-01-12 09:00", None),
]


@pytest.mark.parametrize(("now", "expected"), REMINDER_CASES)
def test_which_reminder_is_due(
    settings: Settings,
    calendar: BusinessCalendar,
    now: str,
    expected: tuple[int, str, bool] | None,
) -> None:
    due = reminders_due([deadline(calendar, "2026-01-06")], at(now), calendar, settings)

    if expected is None:
        assert due == []
        return
    [reminder] = due
    offset, day, is_late = expected
    assert (reminder.offset, reminder.day.isoformat(), reminder.is_late) == (offset, day, is_late)
    assert reminder.recipient == AGENT  # no assignee: the queue's staff
    assert reminder.queue == "renseignements"
    assert reminder.dedupe_key == f"reminder:MRI-2025-00001:info_reply:2026-01-06:{offset}:{AGENT}"


@pytest.mark.parametrize(
    ("due", "reminder_days"),
    [
        # Due on a Monday: 1 day before is the Friday, 3 days before the Wednesday.
        ("2025-11-17", {3: "2025-11-12", 1: "2025-11-14", 0: "2025-11-17"}),
        # Due right after Christmas: Dec 24, 25, 26 and the weekend are skipped.
        ("2025-12-29", {3: "2025-12-19", 1: "2025-12-23", 0: "2025-12-29"}),
        # Due after New Year: Dec 31, Jan 1, Jan 2 and the weekend are skipped.
        ("2026-01-06", {3: "2025-12-29", 1: "2026-01-05", 0: "2026-01-06"}),
    ],
)
def test_each_threshold_falls_on_a_business_day_at_the_reminder_time(
    settings: Settings, calendar: BusinessCalendar, due: str, reminder_days: dict[int, str]
) -> None:
    item = deadline(calendar, due, start="2025-11-03")
    for offset, day in reminder_days.items():
        [reminder] = reminders_due([item], at(f"{day} 08:00"), calendar, settings)
        assert (reminder.offset, reminder.day.isoformat(), reminder.is_late) == (offset, day, False)
        assert reminder.planned_at == at(f"{day} 08:00").astimezone(UTC)
        earlier = reminders_due([item], at(f"{day} 07:59"), calendar, settings)
        assert all(r.offset != offset for r in earlier)


@pytest.mark.parametrize(
    ("day", "utc"),
    [
        ("2026-03-05", "2026-03-05T13:00:00+00:00"),  # 08:00 EST, before the change
        ("2026-03-09", "2026-03-09T12:00:00+00:00"),  # 08:00 EDT, the Monday after
        ("2026-10-30", "2026-10-30T12:00:00+00:00"),  # 08:00 EDT
        ("2026-11-02", "2026-11-02T13:00:00+00:00"),  # 08:00 EST again
    ],
)
def test_the_reminder_time_is_office_time_across_daylight_saving_changes(
    settings: Settings, calendar: BusinessCalendar, day: str, utc: str
) -> None:
    # Clocks change on Sun 2026-03-08 and Sun 2026-11-01.
    due = calendar.add_business_days(date.fromisoformat(day), 1)
    item = deadline(calendar, due.isoformat(), start="2026-02-02")

    [reminder] = reminders_due([item], datetime.fromisoformat(utc), calendar, settings)

    assert (reminder.offset, reminder.day.isoformat()) == (1, day)
    assert reminder.planned_at.isoformat() == utc


def test_a_threshold_before_the_clock_started_never_applies(
    settings: Settings, calendar: BusinessCalendar
) -> None:
    # A result whose clock started Mon Jan 5, due Tue Jan 6: no 3-day reminder (Dec 29).
    item = deadline(calendar, "2026-01-06", start="2026-01-05", opened="2026-01-05 10:00")

    assert reminders_due([item], at("2026-01-05 07:00"), calendar, settings) == []
    [reminder] = reminders_due([item], at("2026-01-05 10:30"), calendar, settings)
    # Planned at 08:00, before the ticket existed: not late.
    assert (reminder.offset, reminder.is_late) == (1, False)


@pytest.mark.parametrize(
    ("changes", "recipients"),
    [
        ({}, [AGENT]),
        ({"assignee": "Marie.Roy@mri.gouv.qc.ca"}, ["marie.roy@mri.gouv.qc.ca"]),
        # A complaint that arrived in the information mailbox is worked by the complaints queue.
        (
            {"category": "complaint", "commitment": "complaint_reply"},
            ["agent.plaintes@mri.gouv.qc.ca"],
        ),
        ({"status": "on_hold"}, []),
        ({"status": "closed"}, []),
        ({"status": "answered"}, [AGENT]),
        ({"commitment": "ack"}, []),  # acknowledgements are not reminded
        ({"commitment": "gone_from_settings"}, []),
        ({"category": "other", "mailbox": "gone_from_settings"}, []),
    ],
)
def test_who_is_reminded(
    settings: Settings,
    calendar: BusinessCalendar,
    changes: dict[str, str],
    recipients: list[str],
) -> None:
    item = deadline(calendar, "2026-01-06", **changes)

    due = reminders_due([item], at("2026-01-05 09:00"), calendar, settings)

    assert [reminder.recipient for reminder in due] == recipients


def test_reminder_offsets_come_from_the_settings(
    settings: Settings, calendar: BusinessCalendar
) -> None:
    custom = settings.model_copy(
        update={"reminders": settings.reminders.model_copy(update={"offsets": (5, 2)})}
    )
    item = deadline(calendar, "2026-01-06")

    # 5 business days before Jan 6 is Tue Dec 23; 2 before is Tue Dec 30.
    assert [r.offset for r in reminders_due([item], at("2025-12-23 08:00"), calendar, custom)] == [
        5
    ]
    assert [r.offset for r in reminders_due([item], at("2025-12-30 08:00"), calendar, custom)] == [
        2
    ]
    assert reminders_due([item], at("2026-01-06 09:00"), calendar, custom)[0].offset == 2


# --- escalations ------------------------------------------------------------------------------

ESCALATION_CASES = [
    # (due date, now, expected (business days late, late?) or None)
    ("2026-01-06", "2026-01-06 23:59", None),
    ("2026-01-06", "2026-01-07 07:59", None),
    ("2026-01-06", "2026-01-07 08:00", (1, False)),
    ("2026-01-06", "2026-01-09 10:00", (3, True)),  # missed: goes out once, late
    ("2026-01-09", "2026-01-10 09:00", None),  # a Saturday
    ("2026-01-09", "2026-01-12 08:30", (1, False)),  # due Friday: escalated Monday
    ("2025-12-23", "2025-12-24 09:00", None),  # a holiday
    ("2025-12-23", "2025-12-29 08:00", (1, False)),  # the first business day after
    ("2025-12-30", "2026-01-05 08:15", (1, False)),
]


@pytest.mark.parametrize(("due", "now", "expected"), ESCALATION_CASES)
def test_when_a_passed_deadline_escalates(
    settings: Settings,
    calendar: BusinessCalendar,
    due: str,
    now: str,
    expected: tuple[int, bool] | None,
) -> None:
    found = escalations_due([deadline(calendar, due)], at(now), calendar, settings)

    if expected is None:
        assert found == []
        return
    [escalation] = found
    assert (escalation.business_days_late, escalation.is_late) == expected
    assert escalation.recipient == SUPERVISOR
    assert escalation.dedupe_key == f"escalation:MRI-2025-00001:info_reply:{due}:{SUPERVISOR}"


def test_a_queue_without_supervisors_escalates_to_its_staff(
    settings: Settings, calendar: BusinessCalendar
) -> None:
    mailboxes = tuple(m.model_copy(update={"supervisors": ()}) for m in settings.mailboxes)
    custom = settings.model_copy(update={"mailboxes": mailboxes})

    [escalation] = escalations_due(
        [deadline(calendar, "2026-01-06")], at("2026-01-07 09:00"), calendar, custom
    )

    assert escalation.recipient == AGENT


@pytest.mark.parametrize("status", ["on_hold", "closed"])
def test_a_paused_or_closed_ticket_does_not_escalate(
    settings: Settings, calendar: BusinessCalendar, status: str
) -> None:
    item = deadline(calendar, "2026-01-06", status=status)

    assert escalations_due([item], at("2026-01-07 09:00"), calendar, settings) == []


def test_a_hold_placed_after_the_deadline_does_not_stop_the_escalation(
    settings: Settings, calendar: BusinessCalendar
) -> None:
    # Due Tue Jan 6 (ends at midnight); put on hold Wed Jan 7 at 08:00, once it had passed.
    item = deadline(calendar, "2026-01-06", status="on_hold", held="2026-01-07 08:00")
    at_the_due_instant = deadline(calendar, "2026-01-06", status="on_hold", held="2026-01-07 00:00")
    paused = deadline(calendar, "2026-01-06", status="on_hold", held="2026-01-06 23:59")

    [escalation] = escalations_due([item], at("2026-01-07 09:00"), calendar, settings)
    assert escalation.business_days_late == 1
    assert len(escalations_due([at_the_due_instant], at("2026-01-07 09:00"), calendar, settings))
    assert escalations_due([paused], at("2026-01-07 09:00"), calendar, settings) == []
    digest = build_digest(
        digest_due("2026-01-07"), [item], {}, calendar, settings, now=at("2026-01-07 09:00")
    )
    info = digest.queues[0]
    assert [line.ref for line in info.overdue] == [item.ref]
    assert [line.ref for line in info.on_hold] == [item.ref]


# --- digests ----------------------------------------------------------------------------------

DIGEST_CASES = [
    # (now, the supervisor's last digest day, expected (missed days, late?) or None)
    ("2025-12-20 09:00", "2025-12-19", None),  # Saturday
    ("2025-12-25 09:00", "2025-12-23", None),  # Christmas
    ("2026-01-02 12:00", "2025-12-30", None),  # a holiday: no digest, not even a late one
    ("2025-12-22 08:29", "2025-12-19", None),
    ("2025-12-22 08:30", "2025-12-19", ((), False)),
    ("2025-12-22 09:30", "2025-12-19", ((), False)),
    ("2025-12-22 09:31", "2025-12-19", ((), True)),
    ("2025-12-22 09:00", "2025-12-22", None),  # already sent today
    ("2025-12-22 09:00", None, ((), False)),  # a first digest has nothing to catch up
    # Three days without a run (Wed to Fri): one digest on Monday, naming the three.
    ("2025-12-22 08:45", "2025-12-16", (("2025-12-17", "2025-12-18", "2025-12-19"), False)),
    # Holidays and weekends are not missed days.
    ("2025-12-29 08:45", "2025-12-23", ((), False)),
    ("2026-01-05 08:45", "2025-12-29", (("2025-12-30",), False)),
    # Back in the afternoon after a week away: one late digest.
    (
        "2025-11-24 14:00",
        "2025-11-14",
        (("2025-11-17", "2025-11-18", "2025-11-19", "2025-11-20", "2025-11-21"), True),
    ),
]


@pytest.mark.parametrize(("now", "last", "expected"), DIGEST_CASES)
def test_which_digest_is_due(
    settings: Settings,
    calendar: BusinessCalendar,
    now: str,
    last: str | None,
    expected: tuple[tuple[str, ...], bool] | None,
) -> None:
    last_digest = {SUPERVISOR: date.fromisoformat(last)} if last else {}

    found = digests_due(at(now), calendar, settings, last_digest)

    if expected is None:
        assert found == []
        return
    [digest] = found  # one supervisor for both queues: one digest
    missed, is_late = expected
    assert digest.recipient == SUPERVISOR
    assert digest.queues == ("renseignements", "plaintes")
    assert digest.day == at(now).date()
    assert tuple(day.isoformat() for day in digest.missed_days) == missed
    assert digest.is_late is is_late
    assert digest.dedupe_key == f"digest:{SUPERVISOR}:{at(now).date().isoformat()}"


def test_each_supervisor_gets_their_own_queues(
    settings: Settings, calendar: BusinessCalendar
) -> None:
    info, complaints = settings.mailboxes
    custom = settings.model_copy(
        update={
            "mailboxes": (
                info,
                complaints.model_copy(update={"supervisors": ("Chef.Plaintes@mri.gouv.qc.ca",)}),
            )
        }
    )

    found = digests_due(at("2025-12-22 08:30"), calendar, custom, {})

    assert [(d.recipient, d.queues) for d in found] == [
        (SUPERVISOR, ("renseignements",)),
        ("chef.plaintes@mri.gouv.qc.ca", ("plaintes",)),
    ]


def digest_due(day: str, missed: tuple[str, ...] = (), is_late: bool = False) -> DigestDue:
    return DigestDue(
        recipient=SUPERVISOR,
        day=date.fromisoformat(day),
        queues=("renseignements", "plaintes"),
        planned_at=at(f"{day} 08:30").astimezone(UTC),
        missed_days=tuple(date.fromisoformat(d) for d in missed),
        is_late=is_late,
    )


def test_the_digest_sorts_deadlines_into_sections(
    settings: Settings, calendar: BusinessCalendar
) -> None:
    deadlines = [
        deadline(calendar, "2026-01-06", ref="MRI-2025-00001"),  # 1 business day late
        deadline(calendar, "2026-01-02", ref="MRI-2025-00009", status="closed"),
        deadline(calendar, "2026-01-07", ref="MRI-2025-00002", assignee="marie.roy@x.ca"),
        deadline(calendar, "2026-01-14", ref="MRI-2025-00003"),  # 5 business days: due soon
        deadline(calendar, "2026-01-15", ref="MRI-2025-00004"),  # 6: beyond the horizon
        deadline(
            calendar,
            "2026-01-08",
            ref="MRI-2025-00005",
            category="complaint",
            commitment="complaint_reply",
            mailbox="plaintes",
            status="on_hold",
        ),
        deadline(calendar, "2026-01-07", ref="MRI-2025-00006", commitment="ack"),  # not shown
    ]

    digest = build_digest(
        digest_due("2026-01-07"), deadlines, {}, calendar, settings, now=at("2026-01-07 08:30")
    )

    info, complaints = digest.queues
    assert digest.horizon_end == date(2026, 1, 14)
    assert [(line.ref, line.business_days) for line in info.overdue] == [("MRI-2025-00001", 1)]
    assert [(line.ref, line.assignee) for line in info.due_today] == [
        ("MRI-2025-00002", "marie.roy@x.ca")
    ]
    assert [(line.ref, line.business_days) for line in info.due_soon] == [("MRI-2025-00003", 5)]
    assert info.on_hold == ()
    assert [line.ref for line in complaints.on_hold] == ["MRI-2025-00005"]
    assert complaints.overdue == complaints.due_today == complaints.due_soon == ()
    assert (digest.overdue_count, digest.due_today_count) == (1, 1)


def test_compliance_lines_follow_the_queue_commitments(settings: Settings) -> None:
    lines = compliance_lines(
        settings,
        settings.mailbox("renseignements"),
        {"info_reply": {"met": 17, "late": 1, "open_late": 2, "pending": 4}},
    )

    ack, reply = lines
    assert (ack.commitment, ack.decided, ack.rate, ack.meets_target) == ("ack", 0, None, None)
    assert (reply.commitment, reply.decided, reply.pending) == ("info_reply", 20, 4)
    assert reply.rate == pytest.approx(0.85)
    assert reply.meets_target is False  # 85 % against 90 %
    met_exactly = compliance_lines(
        settings, settings.mailbox("renseignements"), {"info_reply": {"met": 9, "late": 1}}
    )[1]
    assert met_exactly.meets_target is True  # 9 out of 10 is exactly 90 %


# --- what the messages say --------------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer(settings: Settings) -> Renderer:
    return Renderer(settings.templates_dir)


def test_a_late_reminder_says_so_and_shows_no_citizen_text(
    settings: Settings, calendar: BusinessCalendar, renderer: Renderer
) -> None:
    [reminder] = reminders_due(
        [deadline(calendar, "2026-01-06")], at("2025-12-30 10:00"), calendar, settings
    )

    rendered = render_reminder(renderer, reminder, calendar, settings)

    assert rendered.subject == (
        "Rappel [MRI-2025-00001] : échéance dans 2 jours ouvrables (mardi 6 janvier 2026) "
        "(en retard)"
    )
    assert "il était prévu le lundi 29 décembre 2025 à 8 h 00" in rendered.text
    assert "Responsable : non assigné" in rendered.text
    assert rendered.html is not None and "MRI-2025-00001" in rendered.html


def test_an_on_time_reminder_on_the_due_day(
    settings: Settings, calendar: BusinessCalendar, renderer: Renderer
) -> None:
    [reminder] = reminders_due(
        [deadline(calendar, "2026-01-06", assignee="marie.roy@mri.gouv.qc.ca")],
        at("2026-01-06 08:01"),
        calendar,
        settings,
    )

    rendered = render_reminder(renderer, reminder, calendar, settings)

    assert rendered.subject == (
        "Rappel [MRI-2025-00001] : échéance aujourd'hui (mardi 6 janvier 2026)"
    )
    assert "en retard" not in rendered.text
    assert "Responsable : marie.roy@mri.gouv.qc.ca" in rendered.text


def test_the_escalation_counts_business_days_late(
    settings: Settings, calendar: BusinessCalendar, renderer: Renderer
) -> None:
    [escalation] = escalations_due(
        [deadline(calendar, "2026-01-06")], at("2026-01-07 08:10"), calendar, settings
    )

    rendered = render_escalation(renderer, escalation, calendar, settings)

    assert rendered.subject == (
        "Échéance dépassée [MRI-2025-00001] : 1 jour ouvrable de retard "
        "(échéance mardi 6 janvier 2026)"
    )
    assert "part en retard" not in rendered.text


def test_a_catch_up_digest_names_the_missed_days(
    settings: Settings, calendar: BusinessCalendar, renderer: Renderer
) -> None:
    due = digest_due("2025-12-22", ("2025-12-17", "2025-12-18", "2025-12-19"))
    compliance = {
        "renseignements": compliance_lines(
            settings, settings.mailbox("renseignements"), {"ack": {"met": 1}}
        )
    }
    digest = build_digest(
        due, [deadline(calendar, "2026-01-06")], compliance, calendar, settings, now=due.planned_at
    )

    rendered = render_digest(renderer, digest, calendar, settings)

    assert rendered.subject == (
        "Condensé du lundi 22 décembre 2025 : 0 en retard, 0 à échéance aujourd'hui (rattrapage)"
    )
    assert (
        "les condensés du mercredi 17 décembre 2025, du jeudi 18 décembre 2025 et du "
        "vendredi 19 décembre 2025 n'ont pas été envoyés" in rendered.text
    )
    assert "Échéance d'ici 5 jours ouvrables, jusqu'au mardi 6 janvier 2026 (1)" in rendered.text
    assert "- Accusé de réception : 1 sur 1 dans le délai (100 %), cible 95 % : atteinte" in (
        rendered.text
    )
    assert rendered.html is not None and "Rattrapage" in rendered.html
