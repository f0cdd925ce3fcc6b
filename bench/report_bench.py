"""Benchmark of `mailbot report`: a busy ministry's year in a fresh database, then timings.

    .venv/bin/python bench/report_bench.py [--tickets 100000] [--runs 5] [--keep] [--url URL]

Generates the tickets (two deadline rows each, some holds, some still open) with Core bulk
inserts into a fresh SQLite file in a temporary folder (or into the empty database `--url`),
then builds and renders the report of the whole year as table and as JSON `--runs` times each,
and prints the median and the fastest run, the peak of Python allocations during one report
(tracemalloc, in a separate run because tracing slows everything down) and the process's peak
resident memory. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from mailbot.db.store import make_engine, migrate
from mailbot.reporting.report import ReportRequest, build_report, render_report
from mailbot.settings import Settings, load_settings
from mailbot.standards.business_calendar import BusinessCalendar, build_calendar

REPO = Path(__file__).resolve().parent.parent
YEAR = 2025
AS_OF = datetime(2026, 1, 30, 12, tzinfo=ZoneInfo("America/Toronto"))
CHUNK = 10_000
# (mailbox, category, reply commitment, business days, share of the tickets)
KINDS = (
    ("renseignements", "information", "info_reply", 10, 0.72),
    ("renseignements", "complaint", "complaint_reply", 15, 0.03),  # reclassified complaints
    ("plaintes", "complaint", "complaint_reply", 15, 0.25),
)


class Deadlines:
    """Due dates per (day 0, business days), computed once each: few distinct pairs."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self._known: dict[tuple[date, int], date] = {}

    def due(self, start: date, days: int) -> date:
        key = (start, days)
        if key not in self._known:
            self._known[key] = self.calendar.add_business_days(start, days)
        return self._known[key]


def _office_instant(calendar: BusinessCalendar, day: date, rng: random.Random) -> datetime:
    minutes = rng.randrange(8 * 60 + 30, 16 * 60 + 30)
    local = datetime(
        day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=calendar.zone
    )
    return local.astimezone(UTC)


def _rows(
    count: int, calendar: BusinessCalendar, seed: int
) -> Iterator[tuple[dict[str, object], list[dict[str, object]], dict[str, object] | None]]:
    """(ticket, its deadline rows, its hold or None) for `count` tickets spread over YEAR."""
    rng = random.Random(seed)
    deadlines = Deadlines(calendar)
    first = datetime(YEAR, 1, 1, tzinfo=calendar.zone).astimezone(UTC)
    seconds = 365 * 24 * 3600
    weights = [kind[4] for kind in KINDS]
    for number in range(1, count + 1):
        mailbox, category, reply, days, _ = rng.choices(KINDS, weights)[0]
        received_at = first + timedelta(seconds=rng.randrange(seconds))
        start = calendar.receipt_day(received_at)
        held = rng.random() < 0.04
        hold_days = rng.randint(1, 5) if held else 0
        ticket_rows = []
        for commitment, n, hold in (("ack", 2, 0), (reply, days, hold_days)):
            due_date = deadlines.due(start, n + hold)
            # Most answers come in time, a tail comes late, a few never (still open or closed).
            outcome = rng.random()
            met_at = None
            if outcome < 0.97:
                spread = n + hold + (3 if outcome > 0.85 else 0)
                met_at = _office_instant(
                    calendar, deadlines.due(start, rng.randint(0, spread)), rng
                )
            ticket_rows.append(
                {
                    "ticket_id": number,
                    "commitment": commitment,
                    "clock_start": start,
                    "due_date": due_date,
                    "due_at": calendar.end_of_day(due_date),
                    "met_at": met_at,
                    "days_on_hold": hold,
                }
            )
        answered = ticket_rows[1]["met_at"]
        ticket = {
            "id": number,
            "ref": f"MRI-{YEAR}-{number:06d}",
            "mailbox": mailbox,
            "category": category,
            "status": "answered" if answered else "open",
            "requester": f"citoyen{number % 5000}@example.org",
            "requester_name": "",
            "language": "fr",
            "subject": "",
            "received_at": received_at,
            "receipt_date": start,
            "due_date": ticket_rows[1]["due_date"],
            "acknowledged_at": ticket_rows[0]["met_at"],
            "answered_at": answered,
            "closed_at": None,
            "assignee": None,
            "english_allowed": False,
            "english_basis": None,
            "created_at": received_at,
            "updated_at": received_at,
        }
        hold_row = None
        if held:
            started = _office_instant(calendar, deadlines.due(start, 1), rng)
            ended = _office_instant(calendar, deadlines.due(start, 1 + hold_days), rng)
            hold_row = {
                "ticket_id": number,
                "started_at": started,
                "ended_at": ended,
                "reason": "pièces manquantes",
                "started_by": "",
                "ended_by": "",
            }
        yield ticket, ticket_rows, hold_row


def populate(engine: Engine, calendar: BusinessCalendar, count: int, seed: int) -> int:
    """Insert `count` tickets with Core bulk inserts; returns the number of hold rows."""
    tables = SQLModel.metadata.tables
    tickets: list[dict[str, object]] = []
    deadlines: list[dict[str, object]] = []
    holds: list[dict[str, object]] = []
    held = 0

    def flush() -> None:
        with engine.begin() as connection:
            connection.execute(tables["ticket"].insert(), tickets)
            connection.execute(tables["ticket_deadline"].insert(), deadlines)
            if holds:
                connection.execute(tables["ticket_hold"].insert(), holds)
        tickets.clear()
        deadlines.clear()
        holds.clear()

    for ticket, rows, hold in _rows(count, calendar, seed):
        tickets.append(ticket)
        deadlines.extend(rows)
        if hold is not None:
            holds.append(hold)
            held += 1
        if len(tickets) >= CHUNK:
            flush()
    if tickets:
        flush()
    return held


def timed(action: Callable[[], object], runs: int) -> list[float]:
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        durations.append(time.perf_counter() - started)
    return durations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database and say where")
    parser.add_argument(
        "--url",
        help="an EMPTY database to fill instead of a fresh SQLite file (e.g. a PostgreSQL "
        "database made for the purpose); it is left filled",
    )
    args = parser.parse_args(argv)

    settings: Settings = load_settings(REPO / "config" / "mailbot.toml", environ={})
    calendar = build_calendar(settings.calendar, settings.organisation.timezone)
    folder = Path(tempfile.mkdtemp(prefix="mailbot-report-bench-"))
    engine = make_engine(args.url or f"sqlite:///{folder / 'mailbot.db'}")
    try:
        migrate(engine)
        started = time.perf_counter()
        held = populate(engine, calendar, args.tickets, args.seed)
        print(
            f"generated {args.tickets} tickets, {2 * args.tickets} deadlines, {held} holds "
            f"into {engine.dialect.name} in {time.perf_counter() - started:.1f} s"
        )

        request = ReportRequest(since=date(YEAR, 1, 1), until=date(YEAR, 12, 31))

        def report(fmt: str, wanted: ReportRequest = request) -> str:
            built = build_report(engine, settings, calendar, wanted, as_of=AS_OF)
            return render_report(built, fmt, settings.templates_dir)

        print(
            f"python {sys.version.split()[0]}, report of {YEAR} as of {AS_OF.isoformat()}, "
            f"{args.runs} runs each"
        )
        for fmt in ("table", "json"):
            durations = timed(functools.partial(report, fmt), args.runs)
            print(
                f"  {fmt:<6} median {statistics.median(durations):.3f} s   "
                f"min {min(durations):.3f} s"
            )
        for fmt in ("table", "json"):
            tracemalloc.start()
            report(fmt)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"  {fmt:<6} peak Python allocations during one report: {peak / 1e6:.1f} MB")

        detailed = ReportRequest(since=request.since, until=request.until, details=True)
        durations = timed(lambda: report("csv", detailed), 1)
        print(f"  csv --details (every case listed): {durations[0]:.3f} s")
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process peak resident memory (generation included): {peak_rss:.0f} MB")
        print()
        print(report("table"), end="")
    finally:
        engine.dispose()
        if args.keep:
            print(f"database kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
