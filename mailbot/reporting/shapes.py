"""The JSON shapes people read: a ticket and its detail, a quarantined message, a retention
run, an entry of the access trail, a held act, the deadlines of a receipt, holidays and
canned answers (pure).

Instants are ISO 8601 with their offset (UTC as stored); dates are YYYY-MM-DD. One definition
of each shape, used by the CLI, the demo and the exports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailbot.db.act_rows import HeldAct
    from mailbot.db.inbound_rows import QuarantinedMessage
    from mailbot.standards.business_calendar import DueReport


def instant(value: datetime | None) -> str | None:
    """An instant in ISO 8601 with its offset, to the second (never microseconds)."""
    return value.isoformat(timespec="seconds") if value is not None else None


def office_minute(value: datetime | str | None, zone: tzinfo) -> str:
    """An instant as people read it: office time, to the minute ("2025-11-03 10:01")."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_json(ticket: Mapping[Any, Any]) -> dict[str, Any]:
    """The public JSON shape of a ticket."""
    return {
        "ref": ticket["ref"],
        "mailbox": ticket["mailbox"],
        "category": ticket["category"],
        "status": ticket["status"],
        "requester": ticket["requester"],
        "language": ticket["language"],
        "subject": ticket["subject"],
        "received_at": instant(ticket["received_at"]),
        "receipt_date": day(ticket["receipt_date"]),
        "due_date": day(ticket["due_date"]),
        "acknowledged_at": instant(ticket["acknowledged_at"]),
        "answered_at": instant(ticket["answered_at"]),
        "closed_at": instant(ticket["closed_at"]),
        "assignee": ticket["assignee"],
    }


def deadline_json(deadline: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "commitment": deadline["commitment"],
        "clock_start": day(deadline["clock_start"]),
        "due_date": day(deadline["due_date"]),
        "due_at": instant(deadline["due_at"]),
        "met_at": instant(deadline["met_at"]),
        "days_on_hold": deadline["days_on_hold"],
    }


def hold_json(hold: Mapping[Any, Any]) -> dict[str, Any]:
    """An `attente` (kind "wait") or an `incomplet` (kind "incomplete": `ended_at` is when the
    request was completed, `ended_by` who completed it)."""
    return {
        "kind": hold["kind"],
        "started_at": instant(hold["started_at"]),
        "started_by": hold["started_by"],
        "reason": hold["reason"],
        "ended_at": instant(hold["ended_at"]),
        "ended_by": hold["ended_by"],
    }


def message_json(message: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": message["id"],
        "message_id": message["message_id"],
        "received_at": instant(message["internal_date"]),
        "state": message["state"],
        "kind": message["kind"],
        "rules": message["rules"].split(",") if message["rules"] else [],
        "flags": message["flags"].split(",") if message["flags"] else [],
        "reason": message["reason"],
    }


def event_json(event: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "at": instant(event["at"]),
        "kind": event["kind"],
        "actor": event["actor"],
        "detail": event["detail"],
    }


def ticket_detail_json(
    ticket: Mapping[Any, Any], history: Mapping[str, Sequence[Mapping[Any, Any]]]
) -> dict[str, Any]:
    """A ticket with its deadlines, messages (with the rules that fired) and events."""
    return {
        **ticket_json(ticket),
        "legal_hold": (
            {
                "reason": ticket["legal_hold_reason"],
                "since": instant(ticket["legal_hold_at"]),
                "by": ticket["legal_hold_by"],
                "via": ticket["legal_hold_via"],
            }
            if ticket["legal_hold_at"] is not None
            else None
        ),
        "raw_destroyed_at": instant(ticket["raw_destroyed_at"]),
        "anonymised_at": instant(ticket["anonymised_at"]),
        "closed_reason": ticket["closed_reason"],  # merged | referred | None
        "merged_into": ticket["merged_into"],
        "deadlines": [deadline_json(d) for d in history["deadlines"]],
        "holds": [hold_json(h) for h in history.get("holds", ())],
        "messages": [message_json(m) for m in history["messages"]],
        "events": [event_json(e) for e in history["events"]],
    }


def quarantined_json(message: QuarantinedMessage) -> dict[str, Any]:
    """A quarantined message (`mailbot quarantine list`): never its content, only its size."""
    return {
        "id": message.id,
        "mailbox": message.mailbox,
        "received_at": instant(message.received_at),
        "size": message.size,
        "message_id": message.message_id,
        "reason": message.reason,
    }


def retention_run_json(run: Mapping[Any, Any]) -> dict[str, Any]:
    """One retention run and what it did (`finished_at` None: it was interrupted)."""
    return {
        "run": run["id"],
        "started_at": instant(run["started_at"]),
        "finished_at": instant(run["finished_at"]),
        "trigger": run["trigger"],
        "actor": run["actor"],
        "dry_run": run["dry_run"],
        "raw_destroyed": run["raw_destroyed"],
        "anonymised": run["anonymised"],
        "unlinked": run["unlinked"],
        "refs": run["refs"].split(),
    }


def access_entry_json(entry: Mapping[Any, Any]) -> dict[str, Any]:
    """One entry of the access trail: who saw or changed what, when."""
    return {
        "at": instant(entry["at"]),
        "actor": entry["actor"],
        "action": entry["action"],
        "ref": entry["ref"],
        "detail": entry["detail"],
    }


def held_act_json(act: HeldAct) -> dict[str, Any]:
    """A staff message whose acts are held past its author's hourly limit."""
    return {"person": act.person, "ref": act.ref, "acts": act.acts, "at": instant(act.at)}


def due_report_json(report: DueReport) -> dict[str, object]:
    """The report as JSON-ready values: dates YYYY-MM-DD, instants ISO 8601 with an offset."""
    return {
        "received_at": report.received_at.isoformat(),
        "received_at_office": report.received_at_office.isoformat(),
        "receipt_day": report.receipt_day.isoformat(),
        "deadlines": [
            {
                "id": line.commitment_id,
                "label": line.label,
                "business_days": line.business_days,
                "starts_at": line.starts_at,
                "clock_start": line.deadline.receipt_day.isoformat(),
                "due_date": line.deadline.due_date.isoformat(),
                "due_at": line.deadline.due_at.isoformat(),
            }
            for line in report.lines
        ],
    }


def holidays_json(by_year: Mapping[int, Sequence[tuple[date, str]]]) -> dict[str, Any]:
    """Each year's days off, by year."""
    return {
        str(year): [{"date": when.isoformat(), "name": name} for when, name in days]
        for year, days in by_year.items()
    }


def answers_json(languages_by_name: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Each canned answer's name and the languages it is written in."""
    return [
        {"name": name, "languages": list(languages)}
        for name, languages in languages_by_name.items()
    ]
