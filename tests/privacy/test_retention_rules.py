"""The retention rules: the schedule's settings, when it is due, the staff commands (pure), and
which tickets are finished (real SQLite, in-memory mailboxes and relay)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from mailbot.app import App
from mailbot.errors import ConfigError
from mailbot.privacy.retention import cutoffs, due_today, run_retention
from mailbot.settings import (
    CalendarSettings,
    RetentionPeriod,
    RetentionSettings,
    Settings,
    parse_settings,
)
from mailbot.staff.command_table import Command, CommandError, CommandName
from mailbot.staff.parse_commands import parse_commands
from mailbot.standards.business_calendar import build_calendar
from tests.conftest import AppFactory
from tests.fakes import MemoryMailboxes, RecordingSender
from tests.intake.test_pipeline import CITIZEN
from tests.staff.test_staff_work import opened, staff_pass, ticket

REPO = Path(__file__).resolve().parents[2]
OFFICE = ZoneInfo("America/Toronto")
CALENDAR = build_calendar(CalendarSettings(), "America/Toronto")
SCHEDULE = RetentionSettings(
    raw_days=365,
    anonymise_days=730,
    queues=(("plaintes", RetentionPeriod(raw_days=730, anonymise_days=1095)),),
)


def office(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=OFFICE)


def settings_with(retention: dict[str, object]) -> Settings:
    document = tomllib.loads((REPO / "config" / "mailbot.toml").read_text())
    document["retention"] = retention
    return parse_settings(document, base_dir=REPO, environ={})


def test_the_example_configuration_documents_the_defaults() -> None:
    settings = settings_with(
        tomllib.loads((REPO / "config" / "mailbot.toml").read_text())["retention"]
    )
    assert settings.retention.period("renseignements") == RetentionPeriod(
        raw_days=730, anonymise_days=2555
    )
    assert RetentionSettings().run_time == time(2, 0)


def test_a_queue_has_its_own_period_and_the_others_the_default() -> None:
    assert SCHEDULE.period("plaintes") == RetentionPeriod(raw_days=730, anonymise_days=1095)
    assert SCHEDULE.period("renseignements") == RetentionPeriod(raw_days=365, anonymise_days=730)
    hash(SCHEDULE)  # settings are frozen and hashable (is_staff caches on them)


def test_a_queue_that_does_not_exist_or_an_inverted_period_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown queue"):
        settings_with({"queues": {"plaints": {"raw_days": 1, "anonymise_days": 2}}})
    with pytest.raises(ConfigError, match="anonymise_days"):
        settings_with({"raw_days": 800, "anonymise_days": 700})


def test_cutoffs_are_days_of_24_hours_before_now() -> None:
    now = datetime(2027, 11, 4, 14, 5, tzinfo=UTC)
    cut = cutoffs(SCHEDULE, "plaintes", now)
    assert cut.raw == datetime(2025, 11, 4, 14, 5, tzinfo=UTC)
    assert cut.anonymise == datetime(2024, 11, 4, 14, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "last", "due"),
    [
        ("2027-11-05T01:59", None, False),  # Friday, before the run time
        ("2027-11-05T02:00", None, True),
        ("2027-11-05T09:00", "2027-11-05T02:00", False),  # once a day
        ("2027-11-06T09:00", "2027-11-05T02:00", False),  # Saturday
        ("2027-11-08T02:30", "2027-11-05T02:00", True),  # Monday
        ("2027-12-25T09:00", "2027-12-24T02:00", False),  # Christmas
        ("2027-11-08T02:30", "2027-11-07T23:30", True),  # the last was Sunday, office time
    ],
)
def test_the_daily_run_is_due_once_a_business_day_from_its_time(
    now: str, last: str | None, due: bool
) -> None:
    previous = office(last) if last else None
    assert due_today(office(now), previous, CALENDAR, SCHEDULE, OFFICE) is due


def test_a_disabled_schedule_never_runs() -> None:
    off = SCHEDULE.model_copy(update={"enabled": False})
    assert not due_today(office("2027-11-05T09:00"), None, CALENDAR, off, OFFICE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "#Conservation légale : enquête du Protecteur du citoyen",
            Command(
                CommandName.LEGAL_HOLD,
                "enquête du Protecteur du citoyen",
                "#Conservation légale : enquête du Protecteur du citoyen",
            ),
        ),
        (
            "#legal hold: litigation 500-17",
            Command(CommandName.LEGAL_HOLD, "litigation 500-17", "#legal hold: litigation 500-17"),
        ),
        (
            "#fin conservation légale",
            Command(CommandName.LEGAL_RELEASE, "", "#fin conservation légale"),
        ),
        (
            "/Levée conservation légale",
            Command(CommandName.LEGAL_RELEASE, "", "/Levée conservation légale"),
        ),
        ("#End legal hold", Command(CommandName.LEGAL_RELEASE, "", "#End legal hold")),
        ("#Release legal hold", Command(CommandName.LEGAL_RELEASE, "", "#Release legal hold")),
    ],
)
def test_legal_hold_commands_in_french_and_english(text: str, expected: Command) -> None:
    assert parse_commands(text).commands == (expected,)


@pytest.mark.parametrize(
    "text",
    [
        "Conservation légale des documents est requise par la loi.",
        "Legal matters are pending.",
        "Fin de la conservation légale demain",
    ],
)
def test_prose_that_starts_like_a_legal_hold_stays_prose(text: str) -> None:
    parsed = parse_commands(text)
    assert (parsed.commands, parsed.errors, parsed.body) == ((), (), text)


def test_an_unmarked_legal_hold_is_held_back_whatever_follows() -> None:
    # Never a command without its mark, and never words for a citizen either: held, asked.
    parsed = parse_commands("Conservation légale : enquête du Protecteur du citoyen")
    assert (parsed.commands, parsed.errors) == ((), ())
    assert [item.marked for item in parsed.unmarked] == ["#conservation légale : MOTIF"]


def test_a_legal_hold_without_its_reason_is_an_error_for_the_sender() -> None:
    assert parse_commands("#conservation légale").errors == (
        CommandError("#conservation légale", "missing_argument", "", "legal_hold"),
    )
    assert parse_commands("#end legal hold: now").errors == (
        CommandError("#end legal hold: now", "takes_no_argument", "now", "legal_release"),
    )


# --- which tickets are finished (real SQLite, in-memory mailboxes and relay) ----------------


def _raw_and_requester(app: App) -> tuple[int, str]:
    with app.engine.connect() as connection:
        raw = connection.execute(
            sa.text("SELECT COALESCE(SUM(LENGTH(raw)), 0) FROM inbound_message")
        ).scalar_one()
        requester = connection.execute(sa.text("SELECT requester FROM ticket")).scalar_one()
    return int(raw), str(requester)


def test_a_ticket_answered_and_left_is_finished_from_its_last_activity(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    app = staff_pass(make_app, memory, relay, "Bonjour, voici la réponse.")  # 2025-11-04 09:05
    assert ticket(app)["status"] == "answered"
    days = app.settings.retention
    answered = office("2025-11-04T09:05").astimezone(UTC)  # days of 24 hours, DST or not

    before = make_app((answered + timedelta(days=days.raw_days, minutes=-1)).isoformat())
    run_retention(before, trigger="cli", actor="test")
    assert _raw_and_requester(before)[0] > 0  # a minute early: all kept

    after = make_app((answered + timedelta(days=days.raw_days, minutes=1)).isoformat())
    run_retention(after, trigger="cli", actor="test")
    assert _raw_and_requester(after) == (0, CITIZEN)  # raw gone, the person not yet

    late = make_app((answered + timedelta(days=days.anonymise_days, minutes=1)).isoformat())
    run_retention(late, trigger="cli", actor="test")
    assert _raw_and_requester(late) == (0, "anonymised")


def test_a_ticket_still_open_keeps_everything(
    make_app: AppFactory, memory: MemoryMailboxes, relay: RecordingSender
) -> None:
    opened(make_app, memory, relay)  # acknowledged, never answered
    app = make_app("2035-01-05T10:00:00-05:00")

    run_retention(app, trigger="cli", actor="test")

    raw, requester = _raw_and_requester(app)
    assert raw > 0 and requester == CITIZEN
