"""The outbox table: rows queued in the deciding transaction, leased, and their outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db.models import EVENT, OUTBOX, TICKET
from mailbot.db.store import insert_ignoring_for
from mailbot.states import OutboxState

# The one purpose the brake paces: acknowledgements (automatic answers to citizens).
PACED_PURPOSE = "acknowledgement"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A leased row, as the sender needs it."""

    id: int
    ticket_id: int | None
    purpose: str
    message_id: str
    envelope_from: str
    recipient: str
    raw: bytes
    attempts: int
    created_at: datetime
    lease_owner: str


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
    after_id: int | None = None,
) -> int | None:
    """Add an outbox row; None when a row with the same dedupe key exists (already queued).
    With `after_id`, the row waits for that one: it is sent only once that row is, and never
    if that row is refused for good (`release_waiting`, `withdraw_waiting`)."""
    inserted = connection.execute(
        _insert_row(connection.dialect.name),
        {
            "ticket_id": ticket_id,
            "purpose": purpose,
            "dedupe_key": dedupe_key,
            "message_id": message_id,
            "envelope_from": envelope_from,
            "recipient": recipient.lower(),
            "raw": raw,
            "state": (OutboxState.PENDING if after_id is None else OutboxState.WAITING).value,
            "after_id": after_id,
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": "",
            "created_at": now,
        },
    ).scalar()
    return int(inserted) if inserted is not None else None


@lru_cache(maxsize=4)
def _insert_row(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, built once per dialect."""
    return insert_ignoring_for(dialect, OUTBOX, "dedupe_key").returning(OUTBOX.c.id)


# The purposes other rows may wait for (`after_id`): only their outcomes are looked at.
WAITED_FOR = frozenset({"referral"})


def release_waiting(connection: Connection, row_id: int, now: datetime) -> int:
    """The rows that waited for row `row_id` (sent now) are due now; how many."""
    result = connection.execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.after_id == row_id)
        .where(OUTBOX.c.state == OutboxState.WAITING.value)
        .values(state=OutboxState.PENDING.value, next_attempt_at=now)
    )
    return int(result.rowcount or 0)


def withdraw_waiting(connection: Connection, row_id: int, reason: str) -> list[int]:
    """The rows that waited for row `row_id` (refused for good) are never sent: their ids."""
    ids = list(
        connection.execute(
            sa.select(OUTBOX.c.id)
            .where(OUTBOX.c.after_id == row_id)
            .where(OUTBOX.c.state == OutboxState.WAITING.value)
        ).scalars()
    )
    if ids:
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(ids))
            .values(state=OutboxState.WITHDRAWN.value, last_error=reason[:2000])
        )
    return ids


def created_at(connection: Connection, row_id: int) -> datetime | None:
    value: datetime | None = connection.execute(
        sa.select(OUTBOX.c.created_at).where(OUTBOX.c.id == row_id)
    ).scalar()
    return value


def is_queued(connection: Connection, dedupe_key: str) -> bool:
    found = connection.execute(
        sa.select(OUTBOX.c.id).where(OUTBOX.c.dedupe_key == dedupe_key)
    ).first()
    return found is not None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """An outbox row, as a delivery report is matched against it."""

    id: int
    ticket_id: int | None
    recipient: str
    purpose: str


def row_by_message_id(connection: Connection, message_id: str) -> SentMessage | None:
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
    return SentMessage(row.id, row.ticket_id, row.recipient, row.purpose) if row else None


# The notices that ask a staff member to confirm a held reply (mailbot/staff/confirm.py):
# each row's key is "<template>:<held inbound id>:<recipient>".
CONFIRMATION_PURPOSES = ("staff_confirm", "staff_unmarked_command")


def held_replies_asked_about(connection: Connection, message_ids: Sequence[str]) -> set[int]:
    """The held staff replies (inbound ids) whose confirmation request is one of
    `message_ids`: what a `confirmer` answering that request is about."""
    wanted = [m.strip() if m.strip().startswith("<") else f"<{m.strip()}>" for m in message_ids]
    if not wanted:
        return set()
    keys = connection.execute(
        sa.select(OUTBOX.c.dedupe_key)
        .where(OUTBOX.c.message_id.in_(wanted))
        .where(OUTBOX.c.purpose.in_(CONFIRMATION_PURPOSES))
    ).scalars()
    found = set()
    for key in keys:
        parts = key.split(":")
        if len(parts) >= 2 and parts[1].isdigit():
            found.add(int(parts[1]))
    return found


def automatic_answers_since(
    connection: Connection, since: datetime, recipient: str | None = None
) -> int:
    """Acknowledgements queued since `since`, to one recipient or to anyone."""
    if recipient is None:
        return int(connection.execute(_ANSWERS_SINCE, {"since": since}).scalar_one())
    found = connection.execute(_ANSWERS_TO_SINCE, {"since": since, "to": recipient.lower()})
    return int(found.scalar_one())


_ANSWERS_SINCE = (
    sa.select(sa.func.count())
    .select_from(OUTBOX)
    .where(OUTBOX.c.purpose == PACED_PURPOSE)
    .where(OUTBOX.c.created_at >= sa.bindparam("since"))
)
_ANSWERS_TO_SINCE = _ANSWERS_SINCE.where(OUTBOX.c.recipient == sa.bindparam("to"))


def paced_sent_since(connection: Connection, since: datetime) -> int:
    """Acknowledgements sent since `since` (what the brake counts)."""
    return int(
        connection.execute(
            sa.select(sa.func.count())
            .select_from(OUTBOX)
            .where(OUTBOX.c.purpose == PACED_PURPOSE)
            .where(OUTBOX.c.state == OutboxState.SENT.value)
            .where(OUTBOX.c.sent_at > since)
        ).scalar_one()
    )


def _due_paced(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        OUTBOX.c.purpose == PACED_PURPOSE,
        OUTBOX.c.state == OutboxState.PENDING.value,
        OUTBOX.c.next_attempt_at <= now,
    )


def due_paced(connection: Connection, now: datetime) -> int:
    """Acknowledgements due now and not sent yet (what the brake may hold back)."""
    return int(
        connection.execute(
            sa.select(sa.func.count()).select_from(OUTBOX).where(_due_paced(now))
        ).scalar_one()
    )


def queues_waiting(connection: Connection, now: datetime) -> list[str]:
    """The mailboxes of the tickets whose acknowledgements are due and not sent yet."""
    rows = connection.execute(
        sa.select(TICKET.c.mailbox)
        .distinct()
        .join(TICKET, TICKET.c.id == OUTBOX.c.ticket_id)
        .where(_due_paced(now))
        .order_by(TICKET.c.mailbox)
    ).scalars()
    return list(rows)


def lease(
    connection: Connection,
    now: datetime,
    until: datetime,
    owner: str,
    limit: int,
    *,
    paced: bool | None,
) -> list[int]:
    """One UPDATE both chooses and leases up to `limit` due rows (only the paced purpose, only
    the others, or any when `paced` is None): two workers never lease the same row."""
    if limit <= 0:
        return []
    available = sa.or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until < now)
    purpose: sa.ColumnElement[bool] = sa.true()
    if paced is not None:
        purpose = (
            (OUTBOX.c.purpose == PACED_PURPOSE) if paced else (OUTBOX.c.purpose != PACED_PURPOSE)
        )
    due = (
        sa.select(OUTBOX.c.id)
        .where(OUTBOX.c.state == OutboxState.PENDING.value)
        .where(OUTBOX.c.next_attempt_at <= now)
        .where(available)
        .where(purpose)
        .order_by(OUTBOX.c.id)
        .limit(limit)
        .scalar_subquery()
    )
    return list(
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(due))
            .where(OUTBOX.c.state == OutboxState.PENDING.value)
            .where(available)
            .values(lease_owner=owner, lease_until=until)
            .returning(OUTBOX.c.id)
        )
        .scalars()
        .all()
    )


def leased_rows(connection: Connection, ids: Sequence[int], owner: str) -> list[OutboxRow]:
    if not ids:
        return []
    rows = connection.execute(
        sa.select(
            OUTBOX.c.id,
            OUTBOX.c.ticket_id,
            OUTBOX.c.purpose,
            OUTBOX.c.message_id,
            OUTBOX.c.envelope_from,
            OUTBOX.c.recipient,
            OUTBOX.c.raw,
            OUTBOX.c.attempts,
            OUTBOX.c.created_at,
            OUTBOX.c.lease_owner,
        )
        .where(OUTBOX.c.id.in_(list(ids)))
        .where(OUTBOX.c.lease_owner == owner)
        .order_by(OUTBOX.c.id)
    ).all()
    return [OutboxRow(**row._mapping) for row in rows]


def record_attempt(connection: Connection, row: OutboxRow, values: Mapping[str, object]) -> bool:
    """Write an attempt's outcome, only while `row`'s lease is still ours (a worker whose lease
    expired, and whose row another worker took, cannot overwrite that outcome)."""
    statement = _record_attempt(tuple(sorted(values)))
    parameters = {f"new_{column}": value for column, value in values.items()}
    result = connection.execute(statement, {**parameters, "row": row.id, "owner": row.lease_owner})
    return result.rowcount == 1


@lru_cache(maxsize=16)
def _record_attempt(columns: tuple[str, ...]) -> sa.Update:
    """UPDATE of `columns` on a row still leased to its owner, built once per column set."""
    return (
        sa.update(OUTBOX)
        .where(OUTBOX.c.id == sa.bindparam("row"))
        .where(OUTBOX.c.state == OutboxState.PENDING.value)
        .where(OUTBOX.c.lease_owner == sa.bindparam("owner"))
        .values({column: sa.bindparam(f"new_{column}") for column in columns})
        .values(lease_owner=None, lease_until=None)
    )


def live_lease_owners(connection: Connection, now: datetime, prefix: str) -> list[str]:
    """The owners of unexpired leases on pending rows whose name starts with `prefix`."""
    return list(
        connection.execute(
            sa.select(OUTBOX.c.lease_owner)
            .distinct()
            .where(OUTBOX.c.state == OutboxState.PENDING.value)
            .where(OUTBOX.c.lease_until >= now)
            .where(OUTBOX.c.lease_owner.startswith(prefix, autoescape=True))
        ).scalars()
    )


def release_leases(connection: Connection, owner: str) -> int:
    """Give back every pending row `owner` still holds."""
    result = connection.execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.lease_owner == owner)
        .where(OUTBOX.c.state == OutboxState.PENDING.value)
        .values(lease_owner=None, lease_until=None)
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class Failure:
    """A row that could not be delivered and that no person has been told of yet."""

    outbox_id: int
    ticket_id: int
    purpose: str
    state: str
    error: str


def unreported_failures(connection: Connection, purposes: Sequence[str]) -> list[Failure]:
    reported = (
        sa.select(EVENT.c.outbox_id)
        .where(EVENT.c.kind == "failure_reported")
        .where(EVENT.c.outbox_id.is_not(None))
    )
    rows = connection.execute(
        sa.select(
            OUTBOX.c.id, OUTBOX.c.ticket_id, OUTBOX.c.purpose, OUTBOX.c.state, OUTBOX.c.last_error
        )
        .where(OUTBOX.c.state.in_((OutboxState.FAILED.value, OutboxState.HELD.value)))
        .where(OUTBOX.c.purpose.in_(list(purposes)))
        .where(OUTBOX.c.ticket_id.is_not(None))
        .where(OUTBOX.c.id.not_in(reported))
        .order_by(OUTBOX.c.id)
    ).all()
    return [Failure(row[0], row[1], row[2], row[3], row[4] or "") for row in rows]


def last_digest_days(connection: Connection, recipients: Sequence[str]) -> dict[str, date]:
    """Each recipient's latest digest day, read from the outbox keys ``digest:{to}:{day}``."""
    if not recipients:
        return {}
    rows = connection.execute(
        sa.select(OUTBOX.c.recipient, sa.func.max(OUTBOX.c.dedupe_key))
        .where(OUTBOX.c.purpose == "digest")
        .where(OUTBOX.c.recipient.in_(list(recipients)))
        .group_by(OUTBOX.c.recipient)
    ).all()
    found: dict[str, date] = {}
    for recipient, key in rows:
        try:
            found[recipient] = date.fromisoformat(str(key).rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
    return found
