"""The text the commands print, line by line, from values and JSON rows (pure).

Times are office time, to the minute; every listing says what it shows when it is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from mailbot.reporting.shapes import office_minute

if TYPE_CHECKING:
    from mailbot.db.backup import BackupFacts
    from mailbot.standards.business_calendar import DueReport

Row = Mapping[str, Any]

# `mailbot show`: the ticket's fields in this order, the instants in office time.
TICKET_FIELDS = (
    "ref",
    "mailbox",
    "category",
    "status",
    "requester",
    "language",
    "subject",
    "received_at",
    "acknowledged_at",
    "answered_at",
    "closed_at",
    "receipt_date",
    "due_date",
    "assignee",
)
TICKET_INSTANTS = frozenset({"received_at", "acknowledged_at", "answered_at", "closed_at"})

STAFF_DATE_MARK = "*"
STAFF_DATE_NOTE = (
    "* clock started by a date staff give (interview, committee): counted here from the day given"
)


def written_line(what: str, path: str) -> str:
    """Said on standard error when the output went to a file."""
    return f"{what} written to {path}"


def ticket_table(rows: Sequence[Row]) -> list[str]:
    """`mailbot tickets`: a header, then one ticket a line."""
    if not rows:
        return ["no tickets"]
    header = (
        f"{'ref':<16} {'mailbox':<15} {'category':<12} {'status':<9} {'received':<10} "
        f"{'due':<10} requester"
    )
    return [
        header,
        *(
            f"{row['ref']:<16} {row['mailbox']:<15} {row['category']:<12} {row['status']:<9} "
            f"{row['receipt_date']:<10} {row['due_date'] or '-':<10} {row['requester']}"
            for row in rows
        ),
    ]


def ticket_lines(data: Row, zone: ZoneInfo) -> list[str]:
    """`mailbot show`: the ticket, its clocks and waits, its messages and its events."""
    lines: list[str] = []
    for key in TICKET_FIELDS:
        value = office_minute(data[key], zone) if key in TICKET_INSTANTS else data[key]
        lines.append(f"{key + ':':<17}{value if value is not None else '-'}")
    if data["closed_reason"] is not None:
        into = f" into {data['merged_into']}" if data["merged_into"] else ""
        lines.append(f"{'closed as:':<17}{data['closed_reason']}{into}")
    hold = data["legal_hold"]
    if hold is not None:
        since = office_minute(hold["since"], zone)
        lines.append(f"{'legal hold:':<17}since {since}: {hold['reason']}")
    if data["anonymised_at"] is not None:
        lines.append(f"{'anonymised:':<17}{office_minute(data['anonymised_at'], zone)}")
    elif data["raw_destroyed_at"] is not None:
        lines.append(f"{'raw destroyed:':<17}{office_minute(data['raw_destroyed_at'], zone)}")
    lines.append(f"(times are office time, {zone.key})")
    lines += clock_lines(data, zone)
    lines.append("messages:")
    lines += (
        f"  #{m['id']} {office_minute(m['received_at'], zone)} {m['kind']} ({m['state']}) "
        f"rules: {', '.join(m['rules']) or '-'}"
        for m in data["messages"]
    )
    lines.append("events:")
    for e in data["events"]:
        detail = f": {e['detail']}" if e["detail"] else ""
        lines.append(f"  {office_minute(e['at'], zone)} {e['kind']} by {e['actor']}{detail}")
    return lines


def clock_lines(data: Row, zone: tzinfo) -> list[str]:
    """The deadlines with the day each clock counts from, then the waits: each `attente`, and
    each time the request was declared incomplete and completed (first receipt: receipt_date)."""
    lines = ["deadlines:"]
    for d in data["deadlines"]:
        met = office_minute(d["met_at"], zone) if d["met_at"] else "not yet"
        lines.append(
            f"  {d['commitment']:<20} from {d['clock_start']}  due {d['due_date']}  met: {met}"
        )
    if data["holds"]:
        lines.append("waits:")
    for h in data["holds"]:
        what = "incomplete" if h["kind"] == "incomplete" else "on hold"
        ended = "completed" if h["kind"] == "incomplete" else "ended"
        until = (
            f"{ended} {office_minute(h['ended_at'], zone)} by {h['ended_by']}"
            if h["ended_at"]
            else f"not {ended} yet"
        )
        lines.append(
            f"  {what} since {office_minute(h['started_at'], zone)} by {h['started_by']}: "
            f"{h['reason']} ({until})"
        )
    return lines


def quarantine_lines(rows: Sequence[Row], zone: tzinfo) -> list[str]:
    """`mailbot quarantine list`: one message a line, with why it is there."""
    if not rows:
        return ["quarantine is empty"]
    return [
        f"#{row['id']:<6} {row['mailbox']:<15} {office_minute(row['received_at'], zone)} "
        f"{row['size']:>9} bytes  {row['reason']}"
        for row in rows
    ]


def retry_line(message: int, state: str) -> str:
    """`mailbot quarantine retry`: where the message went this time."""
    return f"message #{message}: {state}"


def audit_lines(rows: Sequence[Row], zone: ZoneInfo) -> list[str]:
    """`mailbot audit`: a header, one entry of the trail a line, and the time zone."""
    if not rows:
        return ["no entries"]
    return [
        f"{'when':<16} {'who':<24} {'action':<18} {'ticket':<16} detail",
        *(
            f"{office_minute(row['at'], zone)} {row['actor']:<24} {row['action']:<18} "
            f"{row['ref'] or '-':<16} {row['detail']}"
            for row in rows
        ),
        f"(times are office time, {zone.key})",
    ]


def held_act_lines(rows: Sequence[Row]) -> list[str]:
    """`mailbot held-acts`: one held staff message a line."""
    if not rows:
        return ["no act held"]
    return [f"{row['at']}  {row['ref']:<16} {row['acts']:<12} {row['person']}" for row in rows]


def released_line(count: int, person: str) -> str:
    return f"{count} act(s) of {person} released: the next pass applies them"


def retention_run_lines(rows: Sequence[Row], zone: tzinfo) -> list[str]:
    """`mailbot retention history`: one run a line, with the tickets it touched."""
    return [
        f"#{row['run']:<5} {office_minute(row['started_at'], zone)} {row['trigger']:<7} "
        f"{'dry run ' if row['dry_run'] else ''}raw={row['raw_destroyed']} "
        f"anonymised={row['anonymised']} unlinked={row['unlinked']} "
        f"{'' if row['finished_at'] else '(interrupted) '}{' '.join(row['refs'])}"
        for row in rows
    ]


def legal_hold_line(ref: str, *, placed: bool) -> str:
    return f"{ref}: legal hold {'placed' if placed else 'released'}"


def mail_store_note_line(note: str) -> str:
    """After an erasure over Microsoft Graph: what it could do to the mail store's copies."""
    return f"mail store: {note}"


def due_lines(report: DueReport) -> list[str]:
    """`mailbot due`: aligned lines, the arrival, the receipt day, then one due date per
    commitment (a mark on those counted from a day staff give)."""
    rows: list[tuple[str, str]] = [
        ("received", report.received_at_office.isoformat(sep=" ", timespec="minutes")),
        ("receipt day", report.receipt_day.isoformat()),
    ]
    for line in report.lines:
        mark = f" {STAFF_DATE_MARK}" if line.starts_at == "staff_date" else ""
        label = f"{line.commitment_id} ({_business_days_label(line.business_days)}){mark}"
        rows.append((label, line.deadline.due_date.isoformat()))
    width = max(len(label) for label, _ in rows)
    text = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if any(line.starts_at == "staff_date" for line in report.lines):
        text.append(STAFF_DATE_NOTE)
    return text


def _business_days_label(n: int) -> str:
    return f"{n} jour ouvrable" if n < 2 else f"{n} jours ouvrables"


def holiday_lines(by_year: Mapping[int, Sequence[tuple[date, str]]]) -> list[str]:
    """`mailbot holidays`: one day off a line, with its weekday and name."""
    return [
        f"{day.isoformat()}  {day.strftime('%a')}  {name}"
        for days in by_year.values()
        for day, name in days
    ]


def answer_lines(rows: Sequence[Row], folder: Path | None) -> list[str]:
    """`mailbot answers list`: each canned answer and its languages."""
    if not rows:
        return [f"no canned answers ({folder or 'no [answers] dir configured'})"]
    return [f"{row['name']:<32} {' '.join(row['languages'])}" for row in rows]


def answers_check_line(count: int, folder: Path | None) -> str:
    """`mailbot check`, its first line: the canned answers read and checked."""
    return f"ok   answers: {count} canned answer(s) in {folder or '(none)'}"


def backup_line(path: Path, facts: BackupFacts) -> str:
    until = facts.data_until.isoformat() if facts.data_until else "empty"
    return (
        f"backup written to {path}: schema {facts.schema}, data up to {until}, instance "
        f"{facts.instance or 'unknown'}, checksum sha256:{facts.checksum}"
    )
