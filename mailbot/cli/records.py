"""The commands of the records a public body keeps and gives back: export (the right of
access), retention (the schedule, run and history), legal-hold and erase."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mailbot.cli.common import actor, print_json, print_lines, requester, trail
from mailbot.cli.exits import EXIT_FAILURE, EXIT_OK
from mailbot.cli.invocation import Invocation
from mailbot.cli.parser import json_option
from mailbot.cli.views import (
    legal_hold_line,
    mail_store_note_line,
    retention_run_lines,
    written_line,
)
from mailbot.db.store import reading
from mailbot.errors import ConfigError


def export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requester", required=True, help="the requester's email address")
    parser.add_argument("--output", help="write to this file instead of standard output")
    parser.add_argument(
        "--messages",
        metavar="ZIP",
        help="also write a zip: the JSON index, every message as its original .eml, and "
        "the attachments",
    )


def export(call: Invocation) -> int:
    from mailbot.privacy.export import export_requester

    app, args = call.app, call.args
    args.requester = requester("export", args.requester)
    data = export_requester(app.engine, args.requester)
    refs = [ticket["ref"] for ticket in data["tickets"]]
    trail(app, args, "export", None, f"access request: {len(refs)} ticket(s) {' '.join(refs)}")
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if args.messages:
        from mailbot.privacy.export import write_messages_zip

        count = write_messages_zip(app.engine, args.requester, data, Path(args.messages))
        print(written_line(f"{count} message(s)", args.messages), file=sys.stderr)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(written_line(f"{len(data['tickets'])} ticket(s)", args.output), file=sys.stderr)
    else:
        print(text)
    return EXIT_OK


def retention_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list, change nothing")
    json_option(parser)


def retention_history_arguments(parser: argparse.ArgumentParser) -> None:
    json_option(parser)


def retention(call: Invocation) -> int:
    from mailbot.app import guard_clock
    from mailbot.privacy.retention import run_retention

    app, args = call.app, call.args
    if args.action == "history":
        return _history(call)
    if not args.dry_run:
        guard_clock(app)  # never destroy as of an invented instant on a live database
    report = run_retention(app, trigger="cli", actor=actor(args), dry_run=args.dry_run)
    if args.json:
        print_json(report.as_json())
    else:
        print(report.summary())
    return EXIT_OK


def _history(call: Invocation) -> int:
    from mailbot.db.retention_runs import runs
    from mailbot.reporting.shapes import retention_run_json

    app = call.app
    with reading(app.engine) as connection:
        found = runs(connection)
    rows = [retention_run_json(run) for run in found]
    if call.args.json:
        print_json(rows)
    else:
        print_lines(retention_run_lines(rows, app.settings.organisation.zone))
    return EXIT_OK


def legal_hold_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", help="the ticket reference (e.g. MRI-2025-00042)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--reason", help="why it must be kept (a file number, not a name)")
    what.add_argument("--release", action="store_true", help="lift the legal hold")


def legal_hold(call: Invocation) -> int:
    from mailbot.app import guard_clock
    from mailbot.privacy.retention import set_legal_hold_by_ref

    app, args = call.app, call.args
    if args.reason is not None and not args.reason.strip():
        raise ConfigError("legal-hold: --reason must not be empty")
    reason = None if args.release else args.reason.strip()
    guard_clock(app)
    set_legal_hold_by_ref(app, args.ref, reason, actor(args))
    print(legal_hold_line(args.ref, placed=reason is not None))
    return EXIT_OK


def erase_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requester", required=True, help="the requester's email address")
    parser.add_argument("--reason", required=True, help="the justification (a file number)")
    json_option(parser)


def erase(call: Invocation) -> int:
    from mailbot.app import guard_clock
    from mailbot.privacy.erasure import erase_requester

    app, args = call.app, call.args
    args.requester = requester("erase", args.requester)
    guard_clock(app)
    report = erase_requester(app, args.requester, args.reason, actor(args))
    # Over Graph, what erasure could do to the mail store's copies depends on the deployment.
    note = None
    if app.settings.graph is not None:
        from mailbot.transport.graph_check import erasure_note

        note = erasure_note(app.settings.graph)
    if args.json:
        found = report.as_json()
        if note is not None:
            found["mail_store_note"] = note
        print_json(found)
    else:
        print(report.summary())
        if note is not None:
            print(mail_store_note_line(note))
    return EXIT_OK if not report.held else EXIT_FAILURE
