"""The commands of the published standards: the deadlines of a receipt (due), the calendar
(holidays), the canned answers, and the compliance report with its counting rules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailbot.cli.common import office_instant, print_json, print_lines
from mailbot.cli.exits import EXIT_OK
from mailbot.cli.invocation import Invocation
from mailbot.cli.parser import day, json_option, year
from mailbot.cli.views import answer_lines, due_lines, holiday_lines, written_line
from mailbot.errors import ConfigError


def due_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("received", help="ISO-8601 instant; without an offset it is office time")
    parser.add_argument(
        "--standard", action="append", help="a commitment id (repeatable; default: all)"
    )
    json_option(parser)


def due(call: Invocation) -> int:
    from mailbot.reporting.shapes import due_report_json
    from mailbot.standards.business_calendar import build_calendar, due_report

    settings, args = call.settings, call.args
    calendar = build_calendar(settings.calendar, settings.organisation.timezone)
    try:
        received = office_instant(args.received, settings.organisation.zone)
    except ValueError as exc:
        raise ConfigError(f"due: {args.received!r} is not an ISO-8601 instant ({exc})") from exc
    commitments = list(settings.commitments)
    if args.standard:
        known = {c.id for c in commitments}
        unknown = [s for s in args.standard if s not in known]
        if unknown:
            raise ConfigError(f"due: unknown commitment(s) {unknown}; known: {sorted(known)}")
        commitments = [c for c in commitments if c.id in args.standard]
    report = due_report(calendar, received, commitments)
    if args.json:
        print_json(due_report_json(report))
    else:
        print_lines(due_lines(report))
    return EXIT_OK


def holidays_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("year", type=year, nargs="+", help="one or more years, e.g. 2026")
    json_option(parser)


def holidays(call: Invocation) -> int:
    from mailbot.reporting.shapes import holidays_json
    from mailbot.standards.business_calendar import build_calendar

    settings, args = call.settings, call.args
    calendar = build_calendar(settings.calendar, settings.organisation.timezone)
    try:
        by_year = {one: calendar.holidays_in(one) for one in args.year}
    except ValueError as exc:
        raise ConfigError(f"holidays: {exc}") from exc
    if args.json:
        print_json(holidays_json(by_year))
    else:
        print_lines(holiday_lines(by_year))
    return EXIT_OK


def answers_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list"], help="list: each name and its languages")
    json_option(parser)


def answers(call: Invocation) -> int:
    from mailbot.mail.canned import load_answers
    from mailbot.reporting.shapes import answers_json

    settings = call.settings
    found = load_answers(settings.answers.dir, settings.templates_dir)
    rows = answers_json({name: found.languages(name) for name in found.names})
    if call.args.json:
        print_json(rows)
    else:
        print_lines(answer_lines(rows, found.folder))
    return EXIT_OK


def report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", required=True, type=day, help="first day, YYYY-MM-DD (clock start)"
    )
    parser.add_argument("--until", required=True, type=day, help="last day, YYYY-MM-DD, included")
    parser.add_argument("--queue", help="one queue (mailbox name)")
    parser.add_argument(
        "--format",
        default="table",
        choices=["table", "json", "csv", "html"],
        help="output format (default: table)",
    )
    parser.add_argument("--output", help="write to this file instead of standard output")
    parser.add_argument("--details", action="store_true", help="list every case behind it")


def report(call: Invocation) -> int:
    from mailbot.reporting.report import ReportRequest, build_report, render_report

    app, args = call.app, call.args
    try:
        request = ReportRequest(
            since=args.since, until=args.until, queue=args.queue, details=args.details
        )
    except ValueError as exc:
        raise ConfigError(f"report: {exc}") from exc
    built = build_report(app.engine, app.settings, app.calendar, request, as_of=app.clock.now())
    text = render_report(built, args.format, app.settings.templates_dir)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8", newline="")
        print(written_line("report", args.output), file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def report_rules(_call: Invocation) -> int:
    """`mailbot report-rules`: the counting rules, as shipped with mailbot."""
    from mailbot.reporting.report import rules_text

    sys.stdout.write(rules_text())
    return EXIT_OK
