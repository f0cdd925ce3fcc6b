"""The commands that look at the cases and what became of the mail: tickets, show, quarantine,
held-acts, audit. Each that shows personal information records it in the access trail."""

from __future__ import annotations

import argparse

from mailbot.cli.common import actor, office_instant, print_json, print_lines, trail
from mailbot.cli.exits import EXIT_FAILURE, EXIT_OK
from mailbot.cli.invocation import Invocation
from mailbot.cli.parser import json_option
from mailbot.cli.views import (
    audit_lines,
    held_act_lines,
    quarantine_lines,
    released_line,
    retry_line,
    ticket_lines,
    ticket_table,
)
from mailbot.db.store import reading
from mailbot.errors import ConfigError, NotFound


def tickets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status", choices=["open", "on_hold", "answered", "closed"], help="only this status"
    )
    parser.add_argument("--mailbox", help="only the tickets that arrived in this mailbox")
    json_option(parser)


def tickets(call: Invocation) -> int:
    from mailbot.db.report_rows import queue_has_tickets
    from mailbot.db.ticket_rows import ticket_records
    from mailbot.reporting.shapes import ticket_json

    app, args = call.app, call.args
    with reading(app.engine) as connection:
        configured = [mailbox.name for mailbox in app.settings.mailboxes]
        # A mailbox no longer configured is known by its tickets; any other name is a typo.
        if (
            args.mailbox is not None
            and args.mailbox not in configured
            and not queue_has_tickets(connection, args.mailbox)
        ):
            raise NotFound(f"no mailbox {args.mailbox!r} (configured: {', '.join(configured)})")
        records = ticket_records(connection, status=args.status, mailbox=args.mailbox)
    rows = [ticket_json(record) for record in records]
    trail(
        app,
        args,
        "tickets",
        None,
        f"{len(rows)} ticket(s) listed (status={args.status or 'any'}, "
        f"mailbox={args.mailbox or 'any'})",
    )
    if args.json:
        print_json(rows)
    else:
        print_lines(ticket_table(rows))
    return EXIT_OK


def show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", help="the ticket's reference, e.g. MRI-2025-00001")
    json_option(parser)


def show(call: Invocation) -> int:
    from mailbot.db.ticket_rows import ticket_history, ticket_record
    from mailbot.reporting.shapes import ticket_detail_json

    app, args = call.app, call.args
    with reading(app.engine) as connection:
        record = ticket_record(connection, args.ref)
        if record is None:
            raise NotFound(f"no ticket {args.ref}")
        data = ticket_detail_json(record, ticket_history(connection, record["id"]))
    trail(app, args, "show", data["ref"], "")
    if args.json:
        print_json(data)
    else:
        print_lines(ticket_lines(data, app.settings.organisation.zone))
    return EXIT_OK


def quarantine_list_arguments(parser: argparse.ArgumentParser) -> None:
    json_option(parser)


def quarantine_retry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=int, help="the message number from `list`")


def quarantine(call: Invocation) -> int:
    from mailbot.intake.quarantine import list_quarantine, retry_quarantined
    from mailbot.reporting.shapes import quarantined_json

    app, args = call.app, call.args
    if args.action == "list":
        rows = [quarantined_json(message) for message in list_quarantine(app)]
        trail(app, args, "quarantine_list", None, f"{len(rows)} message(s) listed")
        if args.json:
            print_json(rows)
        else:
            print_lines(quarantine_lines(rows, app.settings.organisation.zone))
        return EXIT_OK
    state = retry_quarantined(app, args.id)
    print(retry_line(args.id, state))
    return EXIT_OK if state != "quarantined" else EXIT_FAILURE


def held_acts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--release",
        metavar="ADDRESS",
        help="release this person's held acts: the next pass applies them, checked again",
    )
    json_option(parser)


def held_acts(call: Invocation) -> int:
    from mailbot.app import guard_clock
    from mailbot.reporting.shapes import held_act_json
    from mailbot.staff import release

    app, args = call.app, call.args
    if args.release:
        guard_clock(app)
        count = release.release_by_command_line(app, args.release.strip().lower(), actor(args))
        if not count:
            raise NotFound(f"no act of {args.release} is held")
        print(released_line(count, args.release))
        return EXIT_OK
    rows = [held_act_json(act) for act in release.held_acts(app)]
    if args.json:
        print_json(rows)
    else:
        print_lines(held_act_lines(rows))
    return EXIT_OK


def audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", nargs="?", help="one ticket reference")
    parser.add_argument("--since", help="from this day (YYYY-MM-DD, office time) or instant")
    json_option(parser)


def audit(call: Invocation) -> int:
    from mailbot.db.access import entries
    from mailbot.reporting.shapes import access_entry_json

    app, args = call.app, call.args
    zone = app.settings.organisation.zone
    since = None
    if args.since:
        try:
            since = office_instant(args.since, zone)
        except ValueError:
            raise ConfigError(
                f"audit: --since {args.since!r}: expected a day (YYYY-MM-DD, office time) or "
                "an instant (2025-11-03T10:00-05:00)"
            ) from None
    with reading(app.engine) as connection:
        found = entries(connection, ref=args.ref, since=since)
        if args.ref and not found:
            from mailbot.db.ticket_rows import ticket_record

            if ticket_record(connection, args.ref) is None:
                raise NotFound(f"no ticket {args.ref}")
    rows = [access_entry_json(entry) for entry in found]
    if args.json:
        print_json(rows)
    else:
        print_lines(audit_lines(rows, zone))
    return EXIT_OK
