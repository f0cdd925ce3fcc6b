"""Retention in the database: what is due, raw messages destroyed, tickets anonymised, what a
person's mail left behind (SQLAlchemy Core, on the caller's connection). Legal holds are in
`legal_holds`, the record of runs in `retention_runs`.

What is kept and what is cleared, column by column, is written in `anonymise` and
`clear_unlinked` below and in the README's "Personal information" section;
tests/privacy/test_retention.py
searches every text and binary column of every table to hold both to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import (
    ADDRESS,
    DEADLINE,
    EVENT,
    HOLD,
    INBOUND,
    MESSAGE_ALIAS,
    OUTBOX,
    TICKET,
)
from mailbot.db.store import chunks
from mailbot.states import TicketStatus

# What stands in for a person's address or name once anonymised.
ANONYMISED = "anonymised"
# Outgoing rows still waiting to be sent keep their bytes (the worker needs them).
_UNSENT = ("pending", "waiting")

# Whether an address or actor may stay: mailbot itself, the ministry's staff and mailboxes.
Keeps = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class DueTicket:
    id: int
    ref: str
    requester: str


def _has_raw(ticket_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    inbound = sa.exists().where(INBOUND.c.ticket_id == ticket_id, sa.func.length(INBOUND.c.raw) > 0)
    outbox = sa.exists().where(
        OUTBOX.c.ticket_id == ticket_id,
        sa.func.length(OUTBOX.c.raw) > 0,
        OUTBOX.c.state.not_in(_UNSENT),
    )
    return sa.or_(inbound, outbox)


def _closed_before(queue: str, cutoff: datetime) -> list[sa.ColumnElement[bool]]:
    """Finished at or before `cutoff`: closed then, or answered and left without any activity
    since (staff often answer and never close; a citizen who writes again reopens it)."""
    closed = sa.and_(
        TICKET.c.status == TicketStatus.CLOSED.value,
        TICKET.c.closed_at.is_not(None),
        TICKET.c.closed_at <= cutoff,
    )
    pending = sa.exists().where(DEADLINE.c.ticket_id == TICKET.c.id, DEADLINE.c.met_at.is_(None))
    answered_and_left = sa.and_(
        TICKET.c.status == TicketStatus.ANSWERED.value,
        TICKET.c.updated_at <= cutoff,
        ~pending,  # a result still owed (interview, committee) keeps it
    )
    return [
        TICKET.c.mailbox == queue,
        sa.or_(closed, answered_and_left),
        TICKET.c.legal_hold_at.is_(None),
    ]


def due_raw(connection: Connection, queue: str, cutoff: datetime, limit: int) -> list[DueTicket]:
    """Tickets of `queue` finished at or before `cutoff`, not under legal hold, that
    still hold raw messages."""
    rows = connection.execute(
        sa.select(TICKET.c.id, TICKET.c.ref, TICKET.c.requester)
        .where(*_closed_before(queue, cutoff), _has_raw(TICKET.c.id))
        .order_by(TICKET.c.id)
        .limit(limit)
    ).all()
    return [DueTicket(*row) for row in rows]


def due_anonymisation(
    connection: Connection, queue: str, cutoff: datetime, limit: int
) -> list[DueTicket]:
    """Tickets of `queue` finished at or before `cutoff`, not under legal hold, not
    anonymised yet."""
    rows = connection.execute(
        sa.select(TICKET.c.id, TICKET.c.ref, TICKET.c.requester)
        .where(*_closed_before(queue, cutoff), TICKET.c.anonymised_at.is_(None))
        .order_by(TICKET.c.id)
        .limit(limit)
    ).all()
    return [DueTicket(*row) for row in rows]


def tickets_of_requester(connection: Connection, address: str) -> list[Any]:
    """The (id, ref, requester, legal_hold_at, anonymised_at) of `address`'s tickets."""
    return list(
        connection.execute(
            sa.select(
                TICKET.c.id,
                TICKET.c.ref,
                TICKET.c.requester,
                TICKET.c.legal_hold_at,
                TICKET.c.anonymised_at,
            )
            .where(sa.func.lower(TICKET.c.requester) == address.lower())
            .order_by(TICKET.c.id)
        ).all()
    )


def destroy_raw(connection: Connection, ticket_ids: Sequence[int], now: datetime) -> None:
    """The raw bytes of every message of these tickets (received and sent) emptied."""
    if not ticket_ids:
        return
    connection.execute(
        sa.update(INBOUND).where(INBOUND.c.ticket_id.in_(ticket_ids)).values(raw=b"")
    )
    connection.execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.ticket_id.in_(ticket_ids), OUTBOX.c.state.not_in(_UNSENT))
        .values(raw=b"")
    )
    connection.execute(
        sa.update(TICKET).where(TICKET.c.id.in_(ticket_ids)).values(raw_destroyed_at=now)
    )


def anonymise(
    connection: Connection, tickets: Sequence[DueTicket], keeps: Keeps, now: datetime
) -> None:
    """Nothing personal left on these tickets; what the report counts stays (reference,
    queue, category, language, status, dates, deadlines, holds' dates, outcomes)."""
    if not tickets:
        return
    ids = [t.id for t in tickets]
    # Mail not sent yet to an anonymised ticket's requester never will be; it says why.
    unsent = (
        connection.execute(
            sa.select(OUTBOX.c.id).where(OUTBOX.c.ticket_id.in_(ids), OUTBOX.c.state.in_(_UNSENT))
        )
        .scalars()
        .all()
    )
    if unsent:
        connection.execute(sa.update(OUTBOX).where(OUTBOX.c.id.in_(unsent)).values(state="failed"))
    destroy_raw(connection, ids, now)
    connection.execute(
        sa.update(TICKET)
        .where(TICKET.c.id.in_(ids))
        .values(
            requester=ANONYMISED,
            requester_name="",
            subject="",
            english_basis=sa.case((TICKET.c.english_basis.is_(None), None), else_=""),
            anonymised_at=now,
        )
    )
    # Internal notes, command lines, hold reasons: the texts go, the dates and kinds stay.
    # A message's outcome reason stays (mailbot writes it: rule names, counts, states).
    connection.execute(sa.update(EVENT).where(EVENT.c.ticket_id.in_(ids)).values(detail=""))
    _replace_people(connection, EVENT, EVENT.c.ticket_id.in_(ids), ("actor",), keeps)
    connection.execute(sa.update(HOLD).where(HOLD.c.ticket_id.in_(ids)).values(reason=""))
    _replace_people(connection, HOLD, HOLD.c.ticket_id.in_(ids), ("started_by", "ended_by"), keeps)
    connection.execute(
        sa.update(INBOUND)
        .where(INBOUND.c.ticket_id.in_(ids))
        .values(message_id="", sha256="", fingerprint="")
    )
    _anonymise_outbox(connection, OUTBOX.c.ticket_id.in_(ids), keeps)
    if unsent:
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(unsent))
            .values(last_error="not sent: the ticket was anonymised")
        )
    forget_addresses(connection, {t.requester for t in tickets})


def _replace_people(
    connection: Connection,
    table: sa.Table,
    where: sa.ColumnElement[bool],
    columns: Iterable[str],
    keeps: Keeps,
) -> None:
    for column in columns:
        rows = connection.execute(
            sa.select(table.c.id, table.c[column]).where(where, table.c[column] != "")
        ).all()
        gone = [row.id for row in rows if not keeps(row[1])]
        if gone:
            connection.execute(
                sa.update(table).where(table.c.id.in_(gone)).values({column: ANONYMISED})
            )


def _anonymise_outbox(connection: Connection, where: sa.ColumnElement[bool], keeps: Keeps) -> None:
    """Sent mail keeps its purpose, state and dates; a citizen's address goes from the
    recipient and from the dedupe key (acknowledgement keys hold only the reference)."""
    connection.execute(sa.update(OUTBOX).where(where).values(last_error=""))
    rows = connection.execute(
        sa.select(OUTBOX.c.id, OUTBOX.c.recipient, OUTBOX.c.dedupe_key).where(where)
    ).all()
    for row in rows:
        if keeps(row.recipient):
            continue
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id == row.id)
            .values(
                recipient=ANONYMISED,
                dedupe_key=(
                    f"{ANONYMISED}:{row.id}"
                    if row.recipient and row.recipient in row.dedupe_key
                    else row.dedupe_key
                ),
            )
        )


def forget_addresses(connection: Connection, addresses: Iterable[str]) -> None:
    """The bounce state of addresses no longer the requester of any ticket kept whole."""
    for address in {a.lower() for a in addresses if a and a != ANONYMISED}:
        still = connection.execute(
            sa.select(TICKET.c.id)
            .where(sa.func.lower(TICKET.c.requester) == address, TICKET.c.anonymised_at.is_(None))
            .limit(1)
        ).first()
        if still is None:
            connection.execute(sa.delete(ADDRESS).where(ADDRESS.c.address == address))


# --- what belongs to no ticket -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCopy:
    """An inbound row's identity in the mail store: its mailbox, Message-ID, bytes' hash and
    size."""

    id: int
    mailbox: str
    message_id: str
    sha256: str
    size: int


def copies_of_tickets(connection: Connection, ticket_ids: Sequence[int]) -> list[StoredCopy]:
    """Every inbound row of these tickets (the citizen's, the staff's replies that quote them)."""
    if not ticket_ids:
        return []
    rows = connection.execute(
        sa.select(
            INBOUND.c.id, INBOUND.c.mailbox, INBOUND.c.message_id, INBOUND.c.sha256, INBOUND.c.size
        ).where(INBOUND.c.ticket_id.in_(ticket_ids), INBOUND.c.sha256 != "")
    ).all()
    return [StoredCopy(*row) for row in rows]


def sent_of_tickets(connection: Connection, ticket_ids: Sequence[int]) -> list[tuple[str, bytes]]:
    """The Message-ID and bytes of every message mailbot sent on these tickets whose copy it
    put in a Sent folder (`outbox.sent_copy_at`): the journal's copies, for erasure."""
    if not ticket_ids:
        return []
    rows = connection.execute(
        sa.select(OUTBOX.c.message_id, OUTBOX.c.raw).where(
            OUTBOX.c.ticket_id.in_(ticket_ids),
            OUTBOX.c.sent_copy_at.is_not(None),
            sa.func.length(OUTBOX.c.raw) > 0,
        )
    ).all()
    return [(str(row[0]), bytes(row[1])) for row in rows]


def unlinked_raw(
    connection: Connection, after_id: int, limit: int
) -> list[tuple[StoredCopy, bytes]]:
    """Inbound rows of no ticket that still hold their bytes, by id after `after_id`."""
    rows = connection.execute(
        sa.select(
            INBOUND.c.id,
            INBOUND.c.mailbox,
            INBOUND.c.message_id,
            INBOUND.c.sha256,
            INBOUND.c.size,
            INBOUND.c.raw,
        )
        .where(
            INBOUND.c.ticket_id.is_(None),
            INBOUND.c.id > after_id,
            sa.func.length(INBOUND.c.raw) > 0,
        )
        .order_by(INBOUND.c.id)
        .limit(limit)
    ).all()
    return [
        (StoredCopy(row.id, row.mailbox, row.message_id, row.sha256, row.size), row.raw)
        for row in rows
    ]


def _unlinked_inbound(cutoff: datetime, limit: int) -> sa.Select[Any]:
    """The inbound rows `clear_unlinked` empties next (the same ones, in the same order)."""
    return (
        sa.select(
            INBOUND.c.id, INBOUND.c.mailbox, INBOUND.c.message_id, INBOUND.c.sha256, INBOUND.c.size
        )
        .where(
            INBOUND.c.ticket_id.is_(None),
            INBOUND.c.stored_at <= cutoff,
            sa.or_(sa.func.length(INBOUND.c.raw) > 0, INBOUND.c.message_id != ""),
        )
        .order_by(INBOUND.c.id)
        .limit(limit)
    )


def _unlinked_outbox(cutoff: datetime, limit: int) -> sa.Select[Any]:
    """The outgoing rows of no ticket `clear_unlinked` empties next (the same ones)."""
    return (
        sa.select(OUTBOX.c.id, OUTBOX.c.message_id, OUTBOX.c.raw, OUTBOX.c.sent_copy_at)
        .where(
            OUTBOX.c.ticket_id.is_(None),
            OUTBOX.c.created_at <= cutoff,
            OUTBOX.c.state.not_in(_UNSENT),
            sa.func.length(OUTBOX.c.raw) > 0,
        )
        .order_by(OUTBOX.c.id)
        .limit(limit)
    )


def unlinked_outgoing(connection: Connection, cutoff: datetime, limit: int) -> list[OutgoingCopy]:
    """Mailbot's own mail of no ticket `clear_unlinked` empties next (held-message notices,
    digests, alerts), with what erasing their Sent copies needs."""
    return [
        OutgoingCopy(row.id, row.message_id, bytes(row.raw), row.sent_copy_at is not None)
        for row in connection.execute(_unlinked_outbox(cutoff, limit)).all()
    ]


def unlinked_copies(connection: Connection, cutoff: datetime, limit: int) -> list[StoredCopy]:
    """The mail-store identities of the rows `clear_unlinked` empties next."""
    return [
        StoredCopy(*row)
        for row in connection.execute(_unlinked_inbound(cutoff, limit)).all()
        if row.sha256
    ]


def clear_inbound(connection: Connection, ids: Sequence[int]) -> None:
    """These inbound rows emptied of everything personal (bytes, identifiers, reason)."""
    for chunk in chunks(ids, 500):
        connection.execute(
            sa.update(INBOUND)
            .where(INBOUND.c.id.in_(chunk))
            .values(raw=b"", message_id="", sha256="", fingerprint="", reason="")
        )


def clear_unlinked(
    connection: Connection, cutoff: datetime, keeps: Keeps, limit: int, *, dry_run: bool
) -> int:
    """Up to `limit` rows of mail that belongs to no ticket, stored at or before `cutoff`,
    emptied (quarantined and set-aside messages, staff mail, bounce states); how many."""
    inbound = connection.execute(_unlinked_inbound(cutoff, limit)).all()
    outbox = connection.execute(_unlinked_outbox(cutoff, limit)).all()
    addresses = connection.execute(
        sa.select(ADDRESS.c.address).where(ADDRESS.c.updated_at <= cutoff).limit(limit)
    ).all()
    live = {
        row[0].lower()
        for row in connection.execute(
            sa.select(TICKET.c.requester).where(
                TICKET.c.anonymised_at.is_(None),
                sa.func.lower(TICKET.c.requester).in_([a[0] for a in addresses]),
            )
        ).all()
    }
    stale = [a[0] for a in addresses if a[0] not in live]
    count = len(inbound) + len(outbox) + len(stale)
    if dry_run or not count:
        return count
    if inbound:
        connection.execute(
            sa.update(INBOUND)
            .where(INBOUND.c.id.in_([r.id for r in inbound]))
            .values(raw=b"", message_id="", sha256="", fingerprint="", reason="")
        )
    if outbox:
        ids = [r.id for r in outbox]
        connection.execute(sa.update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(raw=b""))
        _anonymise_outbox(connection, OUTBOX.c.id.in_(ids), keeps)
    if stale:
        connection.execute(sa.delete(ADDRESS).where(ADDRESS.c.address.in_(stale)))
    return count


# --- what else a person's mail left behind -----------------------------------------------------

# Outgoing rows made from one received message, by their dedupe keys: the notice to staff
# about a held message (it quotes the sender and the subject) and a follow-up forwarded.
_DERIVED_KEYS = ("held", "forward")


@dataclass(frozen=True, slots=True)
class OutgoingCopy:
    """One of mailbot's own messages: its row, Message-ID and bytes (empty once destroyed),
    and whether its copy went to a Sent folder."""

    id: int
    message_id: str
    raw: bytes
    journalled: bool


def derived_from(connection: Connection, inbound_ids: Sequence[int]) -> list[OutgoingCopy]:
    """The outgoing rows made from these received messages (`_DERIVED_KEYS`)."""
    found: list[OutgoingCopy] = []
    for chunk in chunks(inbound_ids, 100):
        patterns = [
            OUTBOX.c.dedupe_key.like(f"{key}:{inbound_id}:%")
            for inbound_id in chunk
            for key in _DERIVED_KEYS
        ]
        rows = connection.execute(
            sa.select(OUTBOX.c.id, OUTBOX.c.message_id, OUTBOX.c.raw, OUTBOX.c.sent_copy_at).where(
                sa.or_(*patterns)
            )
        ).all()
        found += [
            OutgoingCopy(r.id, r.message_id, bytes(r.raw), r.sent_copy_at is not None) for r in rows
        ]
    return found


def outgoing_of_tickets(connection: Connection, ticket_ids: Sequence[int]) -> list[str]:
    """The Message-IDs of every message mailbot queued on these tickets, and those the
    transport sent them under (`with_aliases`)."""
    found: list[str] = []
    for chunk in chunks(ticket_ids, 500):
        found += [
            str(value)
            for value in connection.execute(
                sa.select(OUTBOX.c.message_id).where(OUTBOX.c.ticket_id.in_(chunk))
            ).scalars()
        ]
    return with_aliases(connection, found)


def with_aliases(connection: Connection, message_ids: Sequence[str]) -> list[str]:
    """`message_ids` and the Message-IDs the transport gave those messages instead (Exchange,
    over Graph: `message_alias`), which is what their copies in Sent Items carry."""
    found = list(message_ids)
    for chunk in chunks(message_ids, 500):
        found += [
            str(value)
            for value in connection.execute(
                sa.select(MESSAGE_ALIAS.c.assigned).where(
                    MESSAGE_ALIAS.c.message_id.in_(list(chunk))
                )
            ).scalars()
        ]
    return found


def clear_outgoing(connection: Connection, ids: Sequence[int], keeps: Keeps) -> None:
    """These outgoing rows emptied: bytes, error text, a citizen recipient; one not sent yet
    never will be, and says why."""
    for batch in chunks(ids, 500):
        chunk = list(batch)
        unsent = list(
            connection.execute(
                sa.select(OUTBOX.c.id).where(OUTBOX.c.id.in_(chunk), OUTBOX.c.state.in_(_UNSENT))
            ).scalars()
        )
        connection.execute(
            sa.update(OUTBOX).where(OUTBOX.c.id.in_(chunk)).values(raw=b"", last_error="")
        )
        _anonymise_outbox(connection, OUTBOX.c.id.in_(chunk), keeps)
        if unsent:
            connection.execute(
                sa.update(OUTBOX)
                .where(OUTBOX.c.id.in_(unsent))
                .values(state="failed", last_error="not sent: erased")
            )


# How much of a stored message is read to find its From, Reply-To and Sender.
HEAD_BYTES = 64 * 1024


def inbound_heads(
    connection: Connection, after_id: int, limit: int, *, skip_tickets: Sequence[int] = ()
) -> list[tuple[StoredCopy, int | None, bytes]]:
    """Received rows that still hold their bytes, by id after `after_id`, with their ticket
    and the start of their bytes (the header block)."""
    query = (
        sa.select(
            INBOUND.c.id,
            INBOUND.c.mailbox,
            INBOUND.c.message_id,
            INBOUND.c.sha256,
            INBOUND.c.size,
            INBOUND.c.ticket_id,
            sa.func.substr(INBOUND.c.raw, 1, HEAD_BYTES).label("head"),
        )
        .where(INBOUND.c.id > after_id, sa.func.length(INBOUND.c.raw) > 0)
        .order_by(INBOUND.c.id)
        .limit(limit)
    )
    if skip_tickets:
        query = query.where(
            sa.or_(INBOUND.c.ticket_id.is_(None), INBOUND.c.ticket_id.not_in(list(skip_tickets)))
        )
    return [
        (
            StoredCopy(row.id, row.mailbox, row.message_id, row.sha256, row.size),
            row.ticket_id,
            bytes(row.head or b""),
        )
        for row in connection.execute(query).all()
    ]


def replace_person(connection: Connection, addresses: Iterable[str]) -> None:
    """These addresses no longer name anyone in the history (an actor, who started or ended a
    hold), except on tickets under legal hold, which stay whole."""
    people = sorted({address.lower() for address in addresses if address})
    if not people:
        return
    held = sa.select(TICKET.c.id).where(TICKET.c.legal_hold_at.is_not(None))
    for table, column in ((EVENT, "actor"), (HOLD, "started_by"), (HOLD, "ended_by")):
        connection.execute(
            sa.update(table)
            .where(sa.func.lower(table.c[column]).in_(people), table.c.ticket_id.not_in(held))
            .values({column: ANONYMISED})
        )


def legal_hold_ids(connection: Connection) -> list[int]:
    """The tickets under legal hold: kept whole, whoever's mail they hold."""
    return [
        int(value)
        for value in connection.execute(
            sa.select(TICKET.c.id).where(TICKET.c.legal_hold_at.is_not(None))
        ).scalars()
    ]
