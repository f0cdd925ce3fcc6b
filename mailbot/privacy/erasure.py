"""Erasure on a justified request: every ticket and message of one person anonymised or
emptied now, whatever the schedule, except what is under legal hold; first an entry in the
erasure ledger, then the mail store's copies, then the rows."""

from __future__ import annotations

from mailbot.app import App
from mailbot.db import access, retention_rows, retention_runs, ticket_rows
from mailbot.db.store import chunks, reading, scrub_freed_pages
from mailbot.errors import MailbotError
from mailbot.privacy import ledger, personal
from mailbot.privacy.retention import RetentionReport, keeps_for


def erase_requester(app: App, address: str, reason: str, actor: str) -> RetentionReport:
    """Every ticket of `address` anonymised now, whatever the schedule, except those under
    legal hold (reported); every other message of theirs emptied (automatic replies, list
    mail, held messages: of no ticket, or held on someone else's ticket;
    `personal.messages_of`), with the notices to staff made from them (a held message's
    notice quotes its sender and subject); their address gone from other tickets' history.
    First an entry in the erasure ledger (mailbot/privacy/ledger.py), then the copies of
    all those messages deleted from the processed, quarantine and Sent folders: a failure
    of either stops the erasure before the database changes, so it can be run again.
    Recorded as a run and in the access trail."""
    if not reason.strip():
        raise MailbotError("erase: --reason is required (the request's justification)")
    settings, engine, now = app.settings, app.engine, app.clock.now()
    keeps = keeps_for(settings)
    wanted = personal.normalised(address)
    run_key = ledger.new_key()
    with engine.begin() as connection:
        run_id = retention_runs.start_run(
            connection, "erase", actor, now, dry_run=False, ledger_key=run_key
        )
        found = retention_rows.tickets_of_requester(connection, wanted)
    with reading(engine) as connection:
        free = [row.id for row in found if row.legal_hold_at is None]
        copies = retention_rows.copies_of_tickets(connection, free)
        whole = {row.id for row in found} | set(retention_rows.legal_hold_ids(connection))
        theirs = personal.messages_of(connection, wanted, skip_tickets=sorted(whole))
        derived = retention_rows.derived_from(connection, [copy.id for copy in theirs])
        sent = retention_rows.sent_of_tickets(connection, free)
        sent += [(out.message_id, out.raw) for out in derived if out.journalled and out.raw]
        entry = ledger.entry_for(
            connection,
            app.signing_key,
            ledger.Destruction(
                kind="erase",
                run=run_key,
                trigger="erase",
                actor=actor,
                at=now,
                addresses=(wanted,),
                refs=tuple(r.ref for r in found if r.legal_hold_at is None),
                kept=tuple(r.ref for r in found if r.legal_hold_at is not None),
                sha256s=tuple(copy.sha256 for copy in (*copies, *theirs)),
                sent=(
                    *retention_rows.outgoing_of_tickets(connection, free),
                    *retention_rows.with_aliases(connection, [out.message_id for out in derived]),
                ),
                counts=(
                    0,
                    sum(1 for r in found if r.legal_hold_at is None and r.anonymised_at is None),
                    len(theirs),
                ),
            ),
        )
    ledger.keep_entry(app, entry)
    report = RetentionReport(run_id, dry_run=False)
    report.copies_deleted = personal.delete_copies(app, [*copies, *theirs], now)
    report.copies_deleted += personal.delete_sent_copies(app, sent, now)
    for chunk in chunks(found, settings.retention.batch_size):
        with engine.begin() as connection:
            due = []
            for row in chunk:
                if row.legal_hold_at is not None:
                    report.held.append(row.ref)
                    access.record(connection, now, actor, "erase_refused", row.ref, "legal hold")
                elif row.anonymised_at is None:
                    due.append(retention_rows.DueTicket(row.id, row.ref, row.requester))
            retention_rows.anonymise(connection, due, keeps, now)
            retention_runs.add_to_run(
                connection, run_id, anonymised=len(due), refs=[f"anonymised:{t.ref}" for t in due]
            )
            for ticket in due:
                ticket_rows.add_event(connection, ticket.id, now, "erased", actor=actor)
                access.record(connection, now, actor, "erase", ticket.ref, reason)
            report.anonymised += [t.ref for t in due]
    with engine.begin() as connection:
        retention_rows.clear_inbound(connection, [copy.id for copy in theirs])
        retention_rows.clear_outgoing(connection, [out.id for out in derived], keeps)
        if theirs:
            report.unlinked += len(theirs)
            retention_runs.add_to_run(connection, run_id, unlinked=len(theirs))
            access.record(connection, now, actor, "erase", None, f"{len(theirs)} other message(s)")
        retention_rows.replace_person(connection, [wanted])
        retention_rows.forget_addresses(connection, [wanted])
        retention_runs.finish_run(connection, run_id, now)
    scrub_freed_pages(engine)
    return report
