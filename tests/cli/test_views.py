"""What the commands print, as a specification: literal rows in, literal lines out (office
time, America/Toronto, to the minute)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailbot.cli.views import (
    answer_lines,
    answers_check_line,
    audit_lines,
    backup_line,
    clock_lines,
    due_lines,
    held_act_lines,
    holiday_lines,
    quarantine_lines,
    retention_run_lines,
    ticket_lines,
    ticket_table,
)
from mailbot.db.backup import BackupFacts
from mailbot.settings import DEFAULT_COMMITMENTS, CalendarSettings, CommitmentSettings
from mailbot.standards.business_calendar import BusinessCalendar, build_calendar, due_report
from tests.standards.test_business_calendar import local

TORONTO = ZoneInfo("America/Toronto")


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return build_calendar(CalendarSettings(), "America/Toronto")


TICKET: dict[str, Any] = {
    "ref": "MRI-2025-00042",
    "mailbox": "renseignements",
    "category": "information",
    "status": "closed",
    "requester": "lea.roy@example.org",
    "language": "fr",
    "subject": "Attestation",
    "received_at": "2025-11-03T15:00:00+00:00",
    "receipt_date": "2025-11-03",
    "due_date": "2025-11-17",
    "acknowledged_at": "2025-11-03T15:01:00+00:00",
    "answered_at": None,
    "closed_at": "2025-11-05T14:30:59+00:00",
    "assignee": None,
    "legal_hold": {"reason": "dossier 7", "since": "2025-11-06T13:00:00+00:00"},
    "raw_destroyed_at": None,
    "anonymised_at": None,
    "closed_reason": "merged",
    "merged_into": "MRI-2025-00041",
    "deadlines": [
        {
            "commitment": "info_reply",
            "clock_start": "2025-11-04",
            "due_date": "2025-11-18",
            "met_at": None,
        },
        {
            "commitment": "ack",
            "clock_start": "2025-11-03",
            "due_date": "2025-11-05",
            "met_at": "2025-11-03T15:01:00+00:00",
        },
    ],
    "holds": [
        {
            "kind": "incomplete",
            "started_at": "2025-11-03T16:00:00+00:00",
            "started_by": "agent@mri.gouv.qc.ca",
            "reason": "il manque l'attestation",
            "ended_at": "2025-11-04T14:00:00+00:00",
            "ended_by": "lea.roy@example.org",
        },
        {
            "kind": "wait",
            "started_at": "2025-11-04T15:00:00+00:00",
            "started_by": "agent@mri.gouv.qc.ca",
            "reason": "entrevue",
            "ended_at": None,
            "ended_by": None,
        },
    ],
    "messages": [
        {
            "id": 7,
            "received_at": "2025-11-03T15:00:00+00:00",
            "kind": "new_request",
            "state": "processed",
            "rules": [],
        },
    ],
    "events": [
        {"at": "2025-11-03T15:01:00+00:00", "kind": "opened", "actor": "mailbot", "detail": ""},
        {"at": "2025-11-05T14:30:00+00:00", "kind": "merged", "actor": "agent", "detail": "x"},
    ],
}


def test_the_ticket_table_has_a_header_and_says_when_it_is_empty() -> None:
    assert ticket_table([]) == ["no tickets"]
    assert ticket_table([TICKET]) == [
        "ref              mailbox         category     status    received   due        requester",
        "MRI-2025-00042   renseignements  information  closed    2025-11-03 2025-11-17 "
        "lea.roy@example.org",
    ]


def test_a_ticket_in_office_time_with_its_clocks_waits_messages_and_events() -> None:
    assert ticket_lines(TICKET, TORONTO) == [
        "ref:             MRI-2025-00042",
        "mailbox:         renseignements",
        "category:        information",
        "status:          closed",
        "requester:       lea.roy@example.org",
        "language:        fr",
        "subject:         Attestation",
        "received_at:     2025-11-03 10:00",
        "acknowledged_at: 2025-11-03 10:01",
        "answered_at:     -",
        "closed_at:       2025-11-05 09:30",
        "receipt_date:    2025-11-03",
        "due_date:        2025-11-17",
        "assignee:        -",
        "closed as:       merged into MRI-2025-00041",
        "legal hold:      since 2025-11-06 08:00: dossier 7",
        "(times are office time, America/Toronto)",
        *clock_lines(TICKET, TORONTO),
        "messages:",
        "  #7 2025-11-03 10:00 new_request (processed) rules: -",
        "events:",
        "  2025-11-03 10:01 opened by mailbot",
        "  2025-11-05 09:30 merged by agent: x",
    ]


def test_the_clocks_say_where_each_counts_from_and_each_wait() -> None:
    assert clock_lines(TICKET, TORONTO) == [
        "deadlines:",
        "  info_reply           from 2025-11-04  due 2025-11-18  met: not yet",
        "  ack                  from 2025-11-03  due 2025-11-05  met: 2025-11-03 10:01",
        "waits:",
        "  incomplete since 2025-11-03 11:00 by agent@mri.gouv.qc.ca: il manque l'attestation "
        "(completed 2025-11-04 09:00 by lea.roy@example.org)",
        "  on hold since 2025-11-04 10:00 by agent@mri.gouv.qc.ca: entrevue (not ended yet)",
    ]
    assert clock_lines({**TICKET, "deadlines": [], "holds": []}, TORONTO) == ["deadlines:"]


def test_an_anonymised_ticket_says_so_rather_than_its_raw_destruction() -> None:
    gone = {
        **TICKET,
        "closed_reason": None,
        "legal_hold": None,
        "raw_destroyed_at": "2026-11-05T17:00:00+00:00",
        "anonymised_at": "2027-12-06T17:00:00+00:00",
    }
    raw_only = {**gone, "anonymised_at": None}

    assert "anonymised:      2027-12-06 12:00" in ticket_lines(gone, TORONTO)
    assert not any(line.startswith("raw destroyed:") for line in ticket_lines(gone, TORONTO))
    assert "raw destroyed:   2026-11-05 12:00" in ticket_lines(raw_only, TORONTO)


def test_quarantined_messages_one_a_line() -> None:
    row = {
        "id": 8,
        "mailbox": "renseignements",
        "received_at": "2025-11-05T15:00:00+00:00",
        "size": 347,
        "message_id": "<bug-1@example.org>",
        "reason": "RuntimeError: a parser bug",
    }
    assert quarantine_lines([], TORONTO) == ["quarantine is empty"]
    assert quarantine_lines([row], TORONTO) == [
        "#8      renseignements  2025-11-05 10:00       347 bytes  RuntimeError: a parser bug"
    ]


def test_the_access_trail_in_office_time() -> None:
    rows: list[dict[str, Any]] = [
        {
            "at": "2025-11-04T14:05:00+00:00",
            "actor": "agent.info@mri.gouv.qc.ca",
            "action": "staff_close",
            "ref": "MRI-2025-00001",
            "detail": "",
        },
        {
            "at": "2025-12-01T17:00:00+00:00",
            "actor": "auditrice",
            "action": "tickets",
            "ref": None,
            "detail": "4 ticket(s) listed",
        },
    ]
    assert audit_lines([], TORONTO) == ["no entries"]
    assert audit_lines(rows, TORONTO) == [
        "when             who                      action             ticket           detail",
        "2025-11-04 09:05 agent.info@mri.gouv.qc.ca staff_close        MRI-2025-00001   ",
        "2025-12-01 12:00 auditrice                tickets            -                "
        "4 ticket(s) listed",
        "(times are office time, America/Toronto)",
    ]


def test_held_acts_and_retention_runs() -> None:
    act = {
        "person": "p@mri.gouv.qc.ca",
        "ref": "MRI-2025-00003",
        "acts": "close",
        "at": "2025-11-04T14:05:00+00:00",
    }
    run = {
        "run": 4,
        "started_at": "2026-11-05T17:00:00+00:00",
        "finished_at": None,
        "trigger": "cli",
        "dry_run": True,
        "raw_destroyed": 1,
        "anonymised": 0,
        "unlinked": 4,
        "refs": ["raw:MRI-2025-00001"],
    }
    assert held_act_lines([]) == ["no act held"]
    assert held_act_lines([act]) == [
        "2025-11-04T14:05:00+00:00  MRI-2025-00003   close        p@mri.gouv.qc.ca"
    ]
    assert retention_run_lines([run], TORONTO) == [
        "#4     2026-11-05 12:00 cli     dry run raw=1 anonymised=0 unlinked=4 (interrupted) "
        "raw:MRI-2025-00001"
    ]


def test_holidays_answers_and_backups() -> None:
    days = {2026: [(date(2026, 1, 1), "Jour de l'An"), (date(2026, 1, 2), "Lendemain")]}
    facts = BackupFacts(
        taken_at=datetime(2025, 11, 3, 15, tzinfo=UTC),
        schema="0010",
        data_until=datetime(2025, 11, 3, 15, tzinfo=UTC),
        source="sqlite",
        instance="i-1",
        checksum="ab12",
    )
    answers = [{"name": "passeport", "languages": ["fr", "en"]}]

    assert holiday_lines(days) == [
        "2026-01-01  Thu  Jour de l'An",
        "2026-01-02  Fri  Lendemain",
    ]
    assert answer_lines([], None) == ["no canned answers (no [answers] dir configured)"]
    assert answer_lines([], Path("/etc/mailbot/answers")) == [
        "no canned answers (/etc/mailbot/answers)"
    ]
    assert answer_lines(answers, None) == [f"{'passeport':<32} fr en"]
    assert answers_check_line(0, None) == "ok   answers: 0 canned answer(s) in (none)"
    assert backup_line(Path("/backups/a.db"), facts) == (
        "backup written to /backups/a.db: schema 0010, data up to 2025-11-03T15:00:00+00:00, "
        "instance i-1, checksum sha256:ab12"
    )


# --- the `mailbot due` report -------------------------------------------------------------------


def test_due_report_text(calendar: BusinessCalendar) -> None:
    report = due_report(calendar, local(2025, 11, 3, 10), DEFAULT_COMMITMENTS)
    assert due_lines(report) == [
        "received                                   2025-11-03 10:00-05:00",
        "receipt day                                2025-11-03",
        "ack (2 jours ouvrables)                    2025-11-05",
        "info_reply (10 jours ouvrables)            2025-11-17",
        "complaint_reply (15 jours ouvrables)       2025-11-24",
        "internship_ack (2 jours ouvrables)         2025-11-05",
        "internship_result (15 jours ouvrables) *   2025-11-24",
        "cooperation_ack (2 jours ouvrables)        2025-11-05",
        "cooperation_result (30 jours ouvrables) *  2025-12-15",
        "* clock started by a date staff give (interview, committee): "
        "counted here from the day given",
    ]


def test_due_report_singular_label(calendar: BusinessCalendar) -> None:
    one_day = CommitmentSettings(id="quick", label="Rapide", business_days=1, target=0.9)
    text = "\n".join(due_lines(due_report(calendar, local(2025, 11, 3, 10), [one_day])))
    assert "quick (1 jour ouvrable)  2025-11-04" in text
    assert "*" not in text
