"""Ticket rows written and read on one open connection: tickets, deadlines, events, outbox.

Every function here takes the caller's `Connection`, so whatever a message or a command
causes is written in the caller's single transaction. SQLAlchemy Core statements on the
SQLModel tables: the hot path of ingestion creates several rows per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.business_calendar import BusinessCalendar, Deadline, Hold
from mailbot.models import (
    AddressState,
    InboundMessage,
    OutboxMessage,
    ServiceAlert,
    ServiceMeta,
    Ticket,
    TicketCounter,
    TicketDeadline,
    TicketEvent,
    TicketHold,
)
from mailbot.settings import Settings
from mailbot.tickets import NewTicket

# The commitments of each category when no mailbox of that category says otherwise.
CATEGORY_COMMITMENTS: Mapping[str, tuple[str, ...]] = {
    "information": ("ack", "info_reply"),
    "complaint": ("ack", "complaint_reply"),
    "internship": ("internship_ack", "internship_result"),
    "cooperation": ("cooperation_ack", "cooperation_result"),
}

TICKET = Ticket.__table__  # type: ignore[attr-defined]
INBOUND = InboundMessage.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
EVENT = TicketEvent.__table__  # type: ignore[attr-defined]
DEADLINE = TicketDeadline.__table__  # type: ignore[attr-defined]
COUNTER = TicketCounter.__table__  # type: ignore[attr-defined]
ADDRESS = AddressState.__table__  # type: ignore[attr-defined]
HOLD = TicketHold.__table__  # type: ignore[attr-defined]
ALERT = ServiceAlert.__table__  # type: ignore[attr-defined]
META = ServiceMeta.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class TicketRow:
    """The ticket facts the pipeline and the templates need (a read-only view)."""

    id: int
    ref: str
    mailbox: str
    category: str
    status: str
    requester: str
    requester_name: str
    language: str
    subject: str
    received_at: datetime
    receipt_date: date
    due_date: date | None
    english_allowed: bool
    assignee: str | None = None


def _ticket_row(row: Any) -> TicketRow:
    return TicketRow(
        id=row.id,
        ref=row.ref,
        mailbox=row.mailbox,
        category=row.category,
        status=row.status,
        requester=row.requester,
        requester_name=row.requester_name,
        language=row.language,
        subject=row.subject,
        received_at=row.received_at,
        receipt_date=row.receipt_date,
        due_date=row.due_date,
        english_allowed=row.english_allowed,
        assignee=row.assignee,
    )


def ticket_by_id(connection: Connection, ticket_id: int) -> TicketRow | None:
    row = connection.execute(sa.select(TICKET).where(TICKET.c.id == ticket_id)).first()
    return _ticket_row(row) if row is not None else None


def ticket_by_ref(connection: Connection, ref: str) -> TicketRow | None:
    row = connection.execute(sa.select(TICKET).where(TICKET.c.ref == ref)).first()
    return _ticket_row(row) if row is not None else None


def tickets_by_ref(connection: Connection, refs: Iterable[str]) -> dict[str, TicketRow]:
    wanted = list(refs)
    if not wanted:
        return {}
    rows = connection.execute(sa.select(TICKET).where(TICKET.c.ref.in_(wanted))).all()
    return {row.ref: _ticket_row(row) for row in rows}


def tickets_of_message_ids(connection: Connection, message_ids: Sequence[str]) -> dict[str, str]:
    """Message-ID of a stored inbound message -> the reference of its ticket."""
    if not message_ids:
        return {}
    rows = connection.execute(
        sa.select(INBOUND.c.message_id, TICKET.c.ref)
        .join(TICKET, TICKET.c.id == INBOUND.c.ticket_id)
        .where(INBOUND.c.message_id.in_(list(message_ids)[:50]))
    ).all()
    return {message_id: ref for message_id, ref in rows}


def commitments_for(settings: Settings, category: str) -> tuple[str, ...]:
    """The commitments of a category: from the mailbox of that category, else the defaults."""
    mailbox = settings.mailbox_of_category(category)
    return mailbox.commitments if mailbox else CATEGORY_COMMITMENTS.get(category, ("ack",))


def receipt_deadlines(
    settings: Settings,
    calendar: BusinessCalendar,
    category: str,
    received_at: datetime,
    holds: Sequence[Hold],
    as_of: datetime,
) -> dict[str, Deadline]:
    """The deadline of each commitment of `category` whose clock starts at receipt, moved by
    `holds` as known at `as_of`. Result clocks start later, at a date staff give."""
    deadlines = {}
    for commitment_id in commitments_for(settings, category):
        commitment = settings.commitment(commitment_id)
        if commitment.starts_at == "receipt":
            deadlines[commitment.id] = calendar.deadline_with_holds(
                received_at, commitment.business_days, holds, as_of
            )
    return deadlines


def reply_due_date(settings: Settings, deadlines: Mapping[str, Deadline]) -> date | None:
    """The date promised to the citizen: that of the commitment of kind "reply", if any."""
    for commitment_id, deadline in deadlines.items():
        if settings.commitment(commitment_id).kind == "reply":
            return deadline.due_date
    return None


def deadline_values(deadline: Deadline) -> dict[str, object]:
    """The columns of a ticket_deadline row for `deadline`."""
    return {
        "clock_start": deadline.receipt_day,
        "due_date": deadline.due_date,
        "due_at": deadline.due_at,
        "days_on_hold": deadline.days_on_hold,
    }


def allocate_ref(connection: Connection, prefix: str, year: int) -> str:
    """The next reference of the year. The write transaction holds the database's write lock
    (BEGIN IMMEDIATE on SQLite, the row lock elsewhere), so two processes never share one."""
    updated = connection.execute(
        sa.update(COUNTER)
        .where(COUNTER.c.prefix == prefix)
        .where(COUNTER.c.year == year)
        .values(last=COUNTER.c.last + 1)
        .returning(COUNTER.c.last)
    ).scalar()
    if updated is None:
        connection.execute(sa.insert(COUNTER).values(prefix=prefix, year=year, last=1))
        updated = 1
    return f"{prefix}-{year}-{int(updated):05d}"


def insert_ticket(
    connection: Connection,
    settings: Settings,
    calendar: BusinessCalendar,
    new: NewTicket,
    now: datetime,
) -> TicketRow:
    """Open a ticket with the deadline of every commitment its category has from receipt."""
    receipt_day = calendar.receipt_day(new.received_at)
    # The year of arrival in office time, even when the receipt day rolls into January.
    ref = allocate_ref(
        connection, settings.organisation.ticket_prefix, calendar.office_date(new.received_at).year
    )
    deadlines = receipt_deadlines(settings, calendar, new.category, new.received_at, (), now)
    due_date = reply_due_date(settings, deadlines)
    values = {
        "ref": ref,
        "mailbox": new.mailbox,
        "category": new.category,
        "status": "open",
        "requester": new.requester,
        "requester_name": new.requester_name,
        "language": new.language,
        "subject": new.subject,
        "received_at": new.received_at,
        "receipt_date": receipt_day,
        "due_date": due_date,
        "english_allowed": False,
        "created_at": now,
        "updated_at": now,
    }
    ticket_id = connection.execute(
        sa.insert(TICKET).values(**values).returning(TICKET.c.id)
    ).scalar_one()
    if deadlines:
        connection.execute(
            sa.insert(DEADLINE),
            [
                {"ticket_id": ticket_id, "commitment": commitment, **deadline_values(deadline)}
                for commitment, deadline in deadlines.items()
            ],
        )
    return TicketRow(
        id=ticket_id,
        ref=ref,
        mailbox=new.mailbox,
        category=new.category,
        status="open",
        requester=new.requester,
        requester_name=new.requester_name,
        language=new.language,
        subject=new.subject,
        received_at=new.received_at,
        receipt_date=receipt_day,
        due_date=due_date,
        english_allowed=False,
    )


def add_event(
    connection: Connection,
    ticket_id: int,
    at: datetime,
    kind: str,
    detail: str = "",
    *,
    actor: str = "mailbot",
    inbound_id: int | None = None,
    outbox_id: int | None = None,
) -> None:
    connection.execute(
        sa.insert(EVENT).values(
            ticket_id=ticket_id,
            at=at,
            kind=kind,
            actor=actor,
            inbound_id=inbound_id,
            outbox_id=outbox_id,
            detail=detail[:4000],
        )
    )


def set_ticket_fields(
    connection: Connection, ticket_id: int, now: datetime, **values: object
) -> None:
    connection.execute(
        sa.update(TICKET).where(TICKET.c.id == ticket_id).values(updated_at=now, **values)
    )


def insert_inbound(connection: Connection, values: Mapping[str, object]) -> int:
    return int(
        connection.execute(sa.insert(INBOUND).values(**values).returning(INBOUND.c.id)).scalar_one()
    )


def update_inbound(connection: Connection, inbound_id: int, **values: object) -> None:
    connection.execute(sa.update(INBOUND).where(INBOUND.c.id == inbound_id).values(**values))


def stored_state(connection: Connection, mailbox: str, uidvalidity: int, uid: int) -> str | None:
    state: str | None = connection.execute(
        sa.select(INBOUND.c.state)
        .where(INBOUND.c.mailbox == mailbox)
        .where(INBOUND.c.uidvalidity == uidvalidity)
        .where(INBOUND.c.uid == uid)
    ).scalar()
    return state


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The first stored copy of a message delivered again."""

    inbound_id: int
    mailbox: str
    ticket_id: int | None


def duplicate_of(connection: Connection, fingerprint: str, digest: str) -> Duplicate | None:
    """The first stored copy with this fingerprint (parse.request_fingerprint), in any of our
    mailboxes, or (rows stored before fingerprints existed) with the same bytes; a quarantined
    copy does not count (processing it failed: try again)."""
    same = sa.or_(
        INBOUND.c.fingerprint == fingerprint,
        sa.and_(INBOUND.c.fingerprint == "", INBOUND.c.sha256 == digest),
    )
    row = connection.execute(
        sa.select(INBOUND.c.id, INBOUND.c.mailbox, INBOUND.c.ticket_id)
        .where(same)
        .where(INBOUND.c.state != "quarantined")
        .order_by(INBOUND.c.id)
        .limit(1)
    ).first()
    return Duplicate(row.id, row.mailbox, row.ticket_id) if row is not None else None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """An outbox row, as a delivery report is matched against it."""

    id: int
    ticket_id: int | None
    recipient: str
    purpose: str


def outbox_row_by_message_id(connection: Connection, message_id: str) -> SentMessage | None:
    """The outbox row whose Message-ID is `message_id` (with or without angle brackets)."""
    value = message_id.strip()
    if not value:
        return None
    if not value.startswith("<"):
        value = f"<{value}>"
    row = connection.execute(
        sa.select(OUTBOX.c.id, OUTBOX.c.ticket_id, OUTBOX.c.recipient, OUTBOX.c.purpose).where(
            OUTBOX.c.message_id == value
        )
    ).first()
    if row is None:
        return None
    return SentMessage(row.id, row.ticket_id, row.recipient, row.purpose)


def mark_undeliverable(connection: Connection, address: str, reason: str, now: datetime) -> None:
    address = address.lower()
    updated = connection.execute(
        sa.update(ADDRESS)
        .where(ADDRESS.c.address == address)
        .values(undeliverable=True, reason=reason, updated_at=now)
    )
    if updated.rowcount == 0:
        connection.execute(
            sa.insert(ADDRESS).values(
                address=address, undeliverable=True, reason=reason, updated_at=now
            )
        )


def clear_undeliverable(connection: Connection, address: str) -> None:
    """The person wrote again: automatic mail may go to the address again."""
    connection.execute(
        sa.update(ADDRESS)
        .where(ADDRESS.c.address == address.lower())
        .where(ADDRESS.c.undeliverable.is_(True))
        .values(undeliverable=False, reason="")
    )


def undeliverable_reason(connection: Connection, address: str) -> str | None:
    row = connection.execute(
        sa.select(ADDRESS.c.undeliverable, ADDRESS.c.reason).where(
            ADDRESS.c.address == address.lower()
        )
    ).first()
    return row.reason or "undeliverable" if row is not None and row.undeliverable else None


def automatic_answers_since(
    connection: Connection, since: datetime, recipient: str | None = None
) -> int:
    """Acknowledgements queued since `since`, to one recipient or to anyone."""
    query = (
        sa.select(sa.func.count())
        .select_from(OUTBOX)
        .where(OUTBOX.c.purpose == "acknowledgement")
        .where(OUTBOX.c.created_at >= since)
    )
    if recipient is not None:
        query = query.where(OUTBOX.c.recipient == recipient.lower())
    return int(connection.execute(query).scalar_one())


def queue_message(
    connection: Connection,
    *,
    ticket_id: int | None,
    purpose: str,
    dedupe_key: str,
    message_id: str,
    envelope_from: str,
    recipient: str,
    raw: bytes,
    now: datetime,
) -> int | None:
    """Add an outbox row; None when a row with the same dedupe key exists (already queued)."""
    inserted = connection.execute(
        _insert_ignoring(connection, OUTBOX, "dedupe_key")
        .values(
            ticket_id=ticket_id,
            purpose=purpose,
            dedupe_key=dedupe_key,
            message_id=message_id,
            envelope_from=envelope_from,
            recipient=recipient.lower(),
            raw=raw,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            last_error="",
            created_at=now,
        )
        .returning(OUTBOX.c.id)
    ).scalar()
    return int(inserted) if inserted is not None else None


def _insert_ignoring(connection: Connection, table: sa.Table, key: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING, in the dialect of the connection."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=[key])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=[key])


def start_of_office_day(calendar: BusinessCalendar, now: datetime) -> datetime:
    return calendar.end_of_day(calendar.office_date(now) - timedelta(days=1))


@dataclass(frozen=True, slots=True)
class Alert:
    name: str
    started_at: datetime
    detail: str


def open_alert(connection: Connection, name: str) -> Alert | None:
    row = connection.execute(
        sa.select(ALERT)
        .where(ALERT.c.name == name)
        .where(ALERT.c.started_at.is_not(None))
        .where(ALERT.c.resolved_at.is_(None))
    ).first()
    return Alert(row.name, row.started_at, row.detail) if row is not None else None


def start_alert(connection: Connection, name: str, now: datetime, detail: str) -> bool:
    """Open an episode of `name`; False when one is already open (another instance won)."""
    updated = connection.execute(
        sa.update(ALERT)
        .where(ALERT.c.name == name)
        .where(sa.or_(ALERT.c.started_at.is_(None), ALERT.c.resolved_at.is_not(None)))
        .values(started_at=now, resolved_at=None, detail=detail[:2000])
    )
    if updated.rowcount:
        return True
    inserted = connection.execute(
        _insert_ignoring(connection, ALERT, "name").values(
            name=name, started_at=now, resolved_at=None, detail=detail[:2000]
        )
    )
    return bool(inserted.rowcount)


def resolve_alert(connection: Connection, name: str, now: datetime) -> bool:
    """Close the open episode of `name`; False when none was open."""
    updated = connection.execute(
        sa.update(ALERT)
        .where(ALERT.c.name == name)
        .where(ALERT.c.started_at.is_not(None))
        .where(ALERT.c.resolved_at.is_(None))
        .values(resolved_at=now)
    )
    return bool(updated.rowcount)


def claim_meta(connection: Connection, key: str, value: str) -> str:
    """The stored value of `key`, which becomes `value` if the key was never set."""
    connection.execute(_insert_ignoring(connection, META, "key").values(key=key, value=value))
    return str(connection.execute(sa.select(META.c.value).where(META.c.key == key)).scalar_one())
