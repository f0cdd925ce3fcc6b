"""The JSON shapes the commands print, as a specification (instants ISO 8601 with their offset,
days YYYY-MM-DD)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mailbot.reporting.shapes import (
    access_entry_json,
    answers_json,
    due_report_json,
    holidays_json,
    retention_run_json,
)
from mailbot.settings import DEFAULT_COMMITMENTS, CalendarSettings
from mailbot.standards.business_calendar import BusinessCalendar, build_calendar, due_report


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return build_calendar(CalendarSettings(), "America/Toronto")


def test_a_retention_run_lists_the_references_it_touched() -> None:
    run = {
        "id": 5,
        "started_at": datetime(2026, 11, 5, 17, 0, 0, 123456, tzinfo=UTC),
        "finished_at": None,
        "trigger": "cli",
        "actor": "auditrice",
        "dry_run": False,
        "raw_destroyed": 1,
        "anonymised": 1,
        "unlinked": 0,
        "refs": "raw:MRI-2025-00001 anonymised:MRI-2025-00002",
    }
    assert retention_run_json(run) == {
        "run": 5,
        "started_at": "2026-11-05T17:00:00+00:00",
        "finished_at": None,
        "trigger": "cli",
        "actor": "auditrice",
        "dry_run": False,
        "raw_destroyed": 1,
        "anonymised": 1,
        "unlinked": 0,
        "refs": ["raw:MRI-2025-00001", "anonymised:MRI-2025-00002"],
    }


def test_an_access_entry_holidays_and_canned_answers() -> None:
    entry = {
        "at": datetime(2025, 12, 1, 17, tzinfo=UTC),
        "actor": "auditrice",
        "action": "show",
        "ref": "MRI-2025-00001",
        "detail": "",
        "id": 3,
    }
    assert access_entry_json(entry) == {
        "at": "2025-12-01T17:00:00+00:00",
        "actor": "auditrice",
        "action": "show",
        "ref": "MRI-2025-00001",
        "detail": "",
    }
    assert holidays_json({2026: [(date(2026, 1, 1), "Jour de l'An")]}) == {
        "2026": [{"date": "2026-01-01", "name": "Jour de l'An"}]
    }
    assert answers_json({"passeport": ("fr", "en")}) == [
        {"name": "passeport", "languages": ["fr", "en"]}
    ]


def test_due_report_json(calendar: BusinessCalendar) -> None:
    ack = DEFAULT_COMMITMENTS[0]
    report = due_report(calendar, datetime(2025, 12, 19, 22, 5, tzinfo=UTC), [ack])
    assert due_report_json(report) == {
        "received_at": "2025-12-19T22:05:00+00:00",
        "received_at_office": "2025-12-19T17:05:00-05:00",
        "receipt_day": "2025-12-22",
        "deadlines": [
            {
                "id": "ack",
                "label": "Accusé de réception",
                "business_days": 2,
                "starts_at": "receipt",
                "clock_start": "2025-12-22",
                "due_date": "2025-12-29",
                "due_at": "2025-12-30T05:00:00+00:00",
            }
        ],
    }
