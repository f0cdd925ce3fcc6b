"""The erasure ledger applied again: what its signed entries erased, erased again in a
database restored from an older backup or rebuilt from the mail store; running it twice
changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from mailbot.app import App
from mailbot.db import access, ledger_rows, retention_rows, ticket_rows
from mailbot.db.store import scrub_freed_pages
from mailbot.privacy import personal
from mailbot.privacy.ledger_entry import Ledger, LedgerEntry, address_hash, message_hash
from mailbot.privacy.retention import keeps_for


@dataclass
class Reapplied:
    """What the ledger's entries erased again in a database restored from an older backup
    or rebuilt from the mail store."""

    erasures: int = 0  # erasures on request that found something to erase again
    runs: int = 0  # retention runs and erasures recorded again in `retention history`
    tickets: int = 0  # tickets anonymised (or emptied of their messages) again
    messages: int = 0  # received messages emptied again
    sent: int = 0  # mailbot's own messages emptied again
    on_record: int = 0  # erasures on request the ledger holds
    ignored: int = 0  # entries not signed with this instance's key (not applied)

    def summary(self) -> str:
        text = (
            f"ledger: {self.erasures} erasure(s) re-applied (of {self.on_record} on record), "
            f"{self.tickets} ticket(s), {self.messages} received and {self.sent} sent "
            f"message(s) erased again, {self.runs} run(s) put back in the retention history"
        )
        if self.ignored:
            text += (
                f"; {self.ignored} entry(ies) not signed with this instance's key were not "
                "applied (was the signing key changed?)"
            )
        return text


def reapply_ledger(app: App, found: Ledger) -> Reapplied:
    """Apply the ledger's signed entries again to the database: tickets it anonymised or
    emptied (by reference; an erased person's other tickets received before the erasure, by
    the keyed hash of their address), received messages (by the keyed hash of their bytes'
    SHA-256), mailbot's own mail (by Message-ID), mail of no ticket (by the instant the
    schedule emptied it up to), the erased person in other tickets' history; legal holds
    in force are respected. Runs the database does not know are put back in its history.
    Running it again changes nothing."""
    key, keeps, now = app.signing_key, keeps_for(app.settings), app.clock.now()
    entries = found.verified
    report = Reapplied(
        on_record=len({e.run for e in entries if e.kind == "erase"}), ignored=found.unverified
    )
    if not entries:
        return report
    changed: set[str] = set()
    with app.engine.begin() as connection:
        report.tickets += _tickets_again(connection, key, entries, keeps, now, changed)
        report.messages += _messages_again(connection, key, entries, keeps, changed)
        report.sent += _sent_again(connection, entries, keeps, changed)
        report.runs += _history_again(connection, entries)
        report.erasures = len({e.run for e in entries if e.kind == "erase" and e.run in changed})
        if changed:
            access.record(connection, now, "mailbot", "ledger_reapplied", detail=report.summary())
    if changed:
        scrub_freed_pages(app.engine)
    return report


def _tickets_again(
    connection: Connection,
    key: bytes,
    entries: list[LedgerEntry],
    keeps: retention_rows.Keeps,
    now: datetime,
    changed: set[str],
) -> int:
    anonymise: dict[str, str] = {}
    emptied: dict[str, str] = {}
    for entry in entries:
        for ref in entry.refs:
            (emptied if entry.kind == "raw" else anonymise).setdefault(ref, entry.run)
    people: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        for person in entry.addresses:
            people.setdefault(person, []).append(entry)
    due: dict[int, tuple[retention_rows.DueTicket, str]] = {}
    for ticket in ledger_rows.tickets_named(connection, anonymise):
        if not ticket.anonymised and not ticket.legal_hold:
            due[ticket.id] = (
                retention_rows.DueTicket(ticket.id, ticket.ref, ticket.requester),
                anonymise[ticket.ref],
            )
    if people:
        for ticket in ledger_rows.tickets_not_anonymised(connection):
            if ticket.legal_hold or ticket.id in due:
                continue
            erasures = people.get(address_hash(key, personal.normalised(ticket.requester)), [])
            for entry in erasures:
                if ticket.received_at <= entry.at and ticket.ref not in entry.kept:
                    due[ticket.id] = (
                        retention_rows.DueTicket(ticket.id, ticket.ref, ticket.requester),
                        entry.run,
                    )
                    break
    if due:
        retention_rows.anonymise(connection, [again for again, _run in due.values()], keeps, now)
        for again, run in due.values():
            ticket_rows.add_event(connection, again.id, now, "erased_again")
            changed.add(run)
    raw = [
        (named, emptied[named.ref])
        for named in ledger_rows.tickets_named(connection, emptied)
        if not named.raw_destroyed and not named.legal_hold and named.id not in due
    ]
    if raw:
        retention_rows.destroy_raw(connection, [named.id for named, _run in raw], now)
        changed.update(run for _named, run in raw)
    if people:
        named = [
            person
            for person in ledger_rows.people_named(connection)
            if address_hash(key, personal.normalised(person)) in people
        ]
        if named:
            retention_rows.replace_person(connection, named)
            retention_rows.forget_addresses(connection, named)
    return len(due) + len(raw)


def _messages_again(
    connection: Connection,
    key: bytes,
    entries: list[LedgerEntry],
    keeps: retention_rows.Keeps,
    changed: set[str],
) -> int:
    wanted = {digest: entry.run for entry in entries for digest in entry.messages}
    held = set(retention_rows.legal_hold_ids(connection))
    hits = [
        (message, wanted[digest])
        for message in ledger_rows.messages_with_hashes(connection)
        if message.ticket_id not in held and (digest := message_hash(key, message.sha256)) in wanted
    ]
    retention_rows.clear_inbound(connection, [message.id for message, _run in hits])
    changed.update(run for _message, run in hits)
    count = len(hits)
    for entry in entries:
        if entry.kind != "unlinked" or entry.unlinked_before is None:
            continue
        while True:
            emptied = retention_rows.clear_unlinked(
                connection, entry.unlinked_before, keeps, 500, dry_run=False
            )
            if not emptied:
                break
            count += emptied
            changed.add(entry.run)
    return count


def _sent_again(
    connection: Connection,
    entries: list[LedgerEntry],
    keeps: retention_rows.Keeps,
    changed: set[str],
) -> int:
    wanted = {message_id: entry.run for entry in entries for message_id in entry.sent}
    named = ledger_rows.outbox_named(connection, wanted)
    retention_rows.clear_outgoing(connection, [row_id for row_id, _message_id in named], keeps)
    changed.update(wanted[message_id] for _row_id, message_id in named)
    return len(named)


# The word before a reference in a run's history, by the kind of ledger entry that named it.
_REF_PREFIX = {"erase": "anonymised", "anonymise": "anonymised", "raw": "raw"}


def _history_again(connection: Connection, entries: list[LedgerEntry]) -> int:
    """Each run the ledger records and the database lacks, put back in its history."""
    known = ledger_rows.run_keys(connection)
    runs: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        if entry.run and entry.run not in known:
            runs.setdefault(entry.run, []).append(entry)
    for run, batches in runs.items():
        first = batches[0]
        ledger_rows.record_run(
            connection,
            key=run,
            trigger=first.trigger,
            actor=first.actor,
            started_at=min(entry.at for entry in batches),
            finished_at=max(entry.at for entry in batches),
            counts=(
                sum(entry.counts[0] for entry in batches),
                sum(entry.counts[1] for entry in batches),
                sum(entry.counts[2] for entry in batches),
            ),
            refs=[
                f"{_REF_PREFIX[entry.kind]}:{ref}"
                for entry in batches
                if entry.kind in _REF_PREFIX
                for ref in entry.refs
            ],
        )
    return len(runs)
