"""The command table: each `mailbot COMMAND`, its help, its arguments, the handler that runs it
and what it needs; `mailbot --help` lists them in this order."""

from __future__ import annotations

from mailbot.cli import casework, records, reference, service
from mailbot.cli.invocation import Action, Subcommand


def _table(*commands: Subcommand) -> dict[str, Subcommand]:
    table = {command.name: command for command in commands}
    assert len(table) == len(commands), "two commands of one name"
    return table


COMMANDS: dict[str, Subcommand] = _table(
    Subcommand(
        "run",
        "the daemon: watch the mailboxes, send, run jobs",
        service.run,
        needs="database",
        arguments=service.run_arguments,
    ),
    Subcommand(
        "tickets",
        "list tickets",
        casework.tickets,
        needs="app",
        arguments=casework.tickets_arguments,
    ),
    Subcommand(
        "show",
        "one ticket with its deadlines, messages, events",
        casework.show,
        needs="app",
        arguments=casework.show_arguments,
    ),
    Subcommand(
        "check",
        "validate the configuration, log in to each server, and check that mail to each "
        "queue's notes address arrives",
        service.check,
        needs="settings",
        arguments=service.check_arguments,
    ),
    Subcommand(
        "answers",
        "the canned answers staff can use (#réponse type : NOM)",
        reference.answers,
        needs="settings",
        arguments=reference.answers_arguments,
    ),
    Subcommand(
        "due",
        "receipt day and deadlines for a receipt instant",
        reference.due,
        needs="settings",
        arguments=reference.due_arguments,
        quiet=True,
    ),
    Subcommand(
        "holidays",
        "the public-service holidays of a year",
        reference.holidays,
        needs="settings",
        arguments=reference.holidays_arguments,
        quiet=True,
    ),
    Subcommand(
        "report",
        "compliance per commitment and queue over a period (published figures)",
        reference.report,
        needs="app",
        arguments=reference.report_arguments,
    ),
    Subcommand(
        "report-rules",
        "how the report counts, in full (the text shipped with mailbot)",
        reference.report_rules,
        needs="nothing",
    ),
    Subcommand(
        "quarantine",
        "messages that could not be processed",
        casework.quarantine,
        needs="app",
        actions=(
            Action("list", "list quarantined messages", casework.quarantine_list_arguments),
            Action(
                "retry",
                "process a quarantined message again (after a fix)",
                arguments=casework.quarantine_retry_arguments,
            ),
        ),
    ),
    Subcommand(
        "export",
        "everything held about one requester, as JSON (access requests)",
        records.export,
        needs="app",
        arguments=records.export_arguments,
    ),
    Subcommand(
        "retention",
        "destroy and anonymise what the retention schedule says is due",
        records.retention,
        needs="app",
        actions=(
            Action("run", "run it now (as of --now)", records.retention_run_arguments),
            Action("history", "the runs so far", records.retention_history_arguments),
        ),
    ),
    Subcommand(
        "legal-hold",
        "keep a ticket whole whatever the schedule (litigation, inquiry)",
        records.legal_hold,
        needs="app",
        arguments=records.legal_hold_arguments,
    ),
    Subcommand(
        "erase",
        "anonymise one requester's tickets now (a justified erasure request)",
        records.erase,
        needs="app",
        arguments=records.erase_arguments,
    ),
    Subcommand(
        "held-acts",
        "staff acts held past a person's hourly limit ([staff] actions_per_hour)",
        casework.held_acts,
        needs="app",
        arguments=casework.held_acts_arguments,
    ),
    Subcommand(
        "audit",
        "the access trail: who saw or changed what, when",
        casework.audit,
        needs="app",
        arguments=casework.audit_arguments,
    ),
    Subcommand(
        "backup",
        "a consistent copy of the SQLite database, while mailbot runs",
        service.backup,
        needs="database",
        arguments=service.backup_arguments,
    ),
    Subcommand(
        "restore",
        "put a backup in place of the database (mailbot stopped)",
        service.restore,
        # Not "database": a restore takes the database for itself, once every other is done.
        needs="settings",
        arguments=service.restore_arguments,
    ),
    Subcommand(
        "reconcile",
        "bring back from the mail store (processed, quarantine, Sent) what the database lacks",
        service.reconcile,
        needs="app",
    ),
    Subcommand(
        "sandbox",
        "a throwaway Dovecot + SMTP for trying mailbot",
        service.sandbox,
        # It reads the configuration itself: the example one when none is given.
        needs="nothing",
        arguments=service.sandbox_arguments,
        quiet=True,
    ),
)
