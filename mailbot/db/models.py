"""The database tables (SQLModel); the schema itself is owned by the Alembic migrations.

All instants are stored in UTC; `UtcDateTime` gives them back aware, whatever the backend.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; naive values are refused rather than guessed."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        instant: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if instant.tzinfo is None:
            return instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)


def _instant(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UtcDateTime(), nullable=nullable, index=index))


class TicketCounter(SQLModel, table=True):
    """The last sequence number given per (prefix, year): references are sequential per year."""

    __tablename__ = "ticket_counter"

    prefix: str = Field(primary_key=True, max_length=16)
    year: int = Field(primary_key=True)
    last: int = 0


class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"
    __table_args__ = (sa.UniqueConstraint("ref", name="uq_ticket_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(max_length=32)
    mailbox: str = Field(max_length=64, index=True)
    category: str = Field(max_length=32)
    status: str = Field(max_length=16, index=True)  # open | on_hold | answered | closed
    requester: str = Field(max_length=320, index=True)
    requester_name: str = Field(default="", max_length=200)
    language: str = Field(max_length=2)
    subject: str = Field(default="", max_length=1000)
    received_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    receipt_date: date
    due_date: date | None = Field(default=None, index=True)
    acknowledged_at: datetime | None = _instant()
    answered_at: datetime | None = _instant()
    closed_at: datetime | None = _instant()
    assignee: str | None = Field(default=None, max_length=320)
    english_allowed: bool = False
    english_basis: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    # Retention (mailbot/privacy/retention.py): a legal hold stops it; the instants say what was
    # done.
    legal_hold_reason: str | None = Field(default=None, max_length=2000)
    legal_hold_at: datetime | None = _instant()
    # Who placed the hold in force and from where ("cli" | "email"): only that decides who may
    # lift it; a hold placed over it changes neither.
    legal_hold_by: str | None = Field(default=None, max_length=320)
    legal_hold_via: str | None = Field(default=None, max_length=8)
    raw_destroyed_at: datetime | None = _instant()
    anonymised_at: datetime | None = _instant()
    # Why a closed ticket was closed, when not simply answered: merged | referred
    # (mailbot/tickets/merge.py, mailbot/tickets/referral.py); a merged ticket names the one it
    # joined.
    closed_reason: str | None = Field(default=None, max_length=16)
    merged_into: str | None = Field(default=None, max_length=32)


class TicketDeadline(SQLModel, table=True):
    """One commitment's clock on one ticket: when it started, when it is due, when it was met."""

    __tablename__ = "ticket_deadline"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "commitment", name="uq_deadline"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    commitment: str = Field(max_length=32)
    clock_start: date
    due_date: date = Field(index=True)
    due_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    met_at: datetime | None = _instant()
    days_on_hold: int = 0


class TicketHold(SQLModel, table=True):
    """The ministry waits on the citizen: a pause of the clock (kind "wait", `attente`), or a
    request declared incomplete (kind "incomplete", `incomplet`): then `ended_at` is when it
    was completed (the citizen's message arriving, or staff saying `complet`), and the clocks
    that count from the complete request start again from that instant's receipt day."""

    __tablename__ = "ticket_hold"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    started_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    ended_at: datetime | None = _instant()
    reason: str = Field(default="", max_length=2000)
    started_by: str = Field(default="", max_length=320)
    ended_by: str = Field(default="", max_length=320)
    kind: str = Field(default="wait", max_length=16)  # wait | incomplete


class InboundMessage(SQLModel, table=True):
    """Every message fetched from a mailbox, raw, with what became of it and why."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        sa.UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_inbound_imap_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=64)
    folder: str = Field(max_length=200)
    uidvalidity: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    uid: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    message_id: str = Field(default="", max_length=1000, index=True)
    sha256: str = Field(max_length=64, index=True)
    # Same request, however delivered (parse.request_fingerprint): duplicates are found by it.
    fingerprint: str = Field(default="", max_length=64, index=True)
    size: int = 0
    raw: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    internal_date: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    # received | processed | set_aside | quarantined
    state: str = Field(max_length=16, index=True)
    reason: str = Field(default="", max_length=2000)
    kind: str = Field(default="", max_length=32)
    rules: str = Field(default="", max_length=2000)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    flags: str = Field(default="", max_length=200)
    stored_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    moved_at: datetime | None = _instant()
    # The ticket this message belonged to before a merge moved it (mailbot/tickets/merge.py):
    # the ticket kept refers only its own messages, never a merged duplicate's.
    merged_from: int | None = None


class ImapCheckpoint(SQLModel, table=True):
    """The highest UID stored per (mailbox, UIDVALIDITY)."""

    __tablename__ = "imap_checkpoint"

    mailbox: str = Field(primary_key=True, max_length=64)
    uidvalidity: int = Field(sa_column=sa.Column(sa.BigInteger(), primary_key=True))
    last_uid: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class OutboxMessage(SQLModel, table=True):
    """A message to send, written in the transaction that decided it; the worker sends it."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe"),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
        # The rate limits count automatic answers per recipient and in a recent window.
        sa.Index("ix_outbox_recipient_purpose_created", "recipient", "purpose", "created_at"),
        sa.Index("ix_outbox_purpose_created", "purpose", "created_at"),
        sa.Index("ix_outbox_due", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    purpose: str = Field(max_length=32)  # acknowledgement | notice | reply | reminder | digest
    dedupe_key: str = Field(max_length=300)
    message_id: str = Field(max_length=300)
    envelope_from: str = Field(default="", max_length=320)
    recipient: str = Field(max_length=320)
    raw: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    # pending | sent | failed | held | waiting | withdrawn
    state: str = Field(max_length=16, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _instant()
    last_error: str = Field(default="", max_length=2000)
    created_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    sent_at: datetime | None = _instant()
    # When the copy went to the sending mailbox's Sent folder (mailbot/recovery/journal.py), or was
    # found there; set at once where the server keeps the copy itself or none is kept.
    sent_copy_at: datetime | None = _instant()
    # A row that waits for another (a referral's notice to the citizen waits for the referral):
    # state "waiting" until that row is sent, "withdrawn" if it is refused for good.
    after_id: int | None = Field(default=None, index=True)


class TicketEvent(SQLModel, table=True):
    """The ticket's history: everything that happened to it, who did it and what caused it."""

    __tablename__ = "ticket_event"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    kind: str = Field(max_length=32)
    actor: str = Field(default="mailbot", max_length=320)
    inbound_id: int | None = Field(default=None, foreign_key="inbound_message.id")
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id")
    detail: str = Field(default="", max_length=4000)


class AddressState(SQLModel, table=True):
    """What we know of a correspondent's address: undeliverable after a permanent bounce."""

    __tablename__ = "address_state"

    address: str = Field(primary_key=True, max_length=320)
    undeliverable: bool = False
    reason: str = Field(default="", max_length=2000)
    updated_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))


class ServiceAlert(SQLModel, table=True):
    """A condition that needs people told once when it starts and once when it ends (the
    brake pacing acknowledgements, ...): at most one open episode per name."""

    __tablename__ = "service_alert"

    name: str = Field(primary_key=True, max_length=64)
    started_at: datetime | None = _instant()
    resolved_at: datetime | None = _instant()
    detail: str = Field(default="", max_length=2000)


class ServiceMeta(SQLModel, table=True):
    """Facts about the database itself: which clock writes it, the instance id it got when it
    was created (`instance_id`, carried by every backup and ledger entry), ..."""

    __tablename__ = "service_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(default="", max_length=2000)


class RetentionRun(SQLModel, table=True):
    """One retention run: when, what triggered it, how many and which references. A run
    killed halfway keeps `finished_at` empty; its counts are those of its committed batches."""

    __tablename__ = "retention_run"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False, index=True))
    finished_at: datetime | None = _instant()
    trigger: str = Field(max_length=16)  # cli | daemon | erase
    actor: str = Field(default="", max_length=320)
    dry_run: bool = False
    raw_destroyed: int = 0
    anonymised: int = 0
    unlinked: int = 0
    refs: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    # The run's key in the erasure ledger kept in the mail store (mailbot/privacy/ledger.py):
    # a run the ledger records and the database lacks (restored from an older backup) is
    # recorded again under it.
    ledger_key: str = Field(default="", max_length=32, index=True)


class AccessEntry(SQLModel, table=True):
    """The access trail: who displayed, exported or changed what, when (references only)."""

    __tablename__ = "access_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False, index=True))
    actor: str = Field(max_length=320)
    action: str = Field(max_length=32)
    ref: str | None = Field(default=None, max_length=32, index=True)
    detail: str = Field(default="", max_length=2000)


class StaffAct(SQLModel, table=True):
    """One staff message that closed, referred, merged or relayed (mailbot/staff/limits.py):
    applied, or held past the person's hourly limit until a supervisor releases it."""

    __tablename__ = "staff_act"
    __table_args__ = (
        sa.UniqueConstraint("inbound_id", name="uq_staff_act_inbound"),
        sa.Index("ix_staff_act_person_at", "person", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person: str = Field(max_length=320)
    at: datetime = Field(sa_column=sa.Column(UtcDateTime(), nullable=False))
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id")
    inbound_id: int = Field(foreign_key="inbound_message.id")
    acts: str = Field(max_length=64)  # close,refer,merge,relay: what the message does
    state: str = Field(max_length=16, index=True)  # applied | held | released
    decided_by: str = Field(default="", max_length=320)  # the supervisor who released it
    decided_at: datetime | None = _instant()


class GraphMessage(SQLModel, table=True):
    """A message Microsoft Graph showed in a watched folder, under its immutable id; `id` is
    the number that stands for its UID (`GRAPH_UIDVALIDITY`), so a message listed again (a
    delta resync) keeps its number and is never processed twice."""

    __tablename__ = "graph_message"
    __table_args__ = (
        sa.UniqueConstraint("mailbox", "immutable_id", name="uq_graph_message_immutable_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=64)
    immutable_id: str = Field(max_length=512)
    present: bool = Field(default=True)  # still in the watched folder, as far as Graph said
    received_at: datetime | None = _instant()
    seen_at: datetime | None = _instant(nullable=False)


class GraphFolder(SQLModel, table=True):
    """The delta link of a watched folder: where the next delta query starts."""

    __tablename__ = "graph_folder"

    mailbox: str = Field(primary_key=True, max_length=64)
    folder: str = Field(primary_key=True, max_length=255)
    delta_link: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    resyncs: int = 0
    updated_at: datetime | None = _instant(nullable=False)


class MessageAlias(SQLModel, table=True):
    """The Message-ID the transport gave one of our messages when it did not keep ours
    (Exchange may rewrite it on Graph's send path): replies that cite it are threaded as
    replies to ours."""

    __tablename__ = "message_alias"

    assigned: str = Field(primary_key=True, max_length=300)
    message_id: str = Field(max_length=300)
    recorded_at: datetime | None = _instant(nullable=False)


# The tables, for SQLAlchemy Core statements (the database modules write with these).
TICKET: sa.Table = Ticket.__table__  # type: ignore[attr-defined]
COUNTER: sa.Table = TicketCounter.__table__  # type: ignore[attr-defined]
DEADLINE: sa.Table = TicketDeadline.__table__  # type: ignore[attr-defined]
HOLD: sa.Table = TicketHold.__table__  # type: ignore[attr-defined]
INBOUND: sa.Table = InboundMessage.__table__  # type: ignore[attr-defined]
CHECKPOINT: sa.Table = ImapCheckpoint.__table__  # type: ignore[attr-defined]
OUTBOX: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]
EVENT: sa.Table = TicketEvent.__table__  # type: ignore[attr-defined]
ADDRESS: sa.Table = AddressState.__table__  # type: ignore[attr-defined]
ALERT: sa.Table = ServiceAlert.__table__  # type: ignore[attr-defined]
META: sa.Table = ServiceMeta.__table__  # type: ignore[attr-defined]
RETENTION_RUN: sa.Table = RetentionRun.__table__  # type: ignore[attr-defined]
ACCESS: sa.Table = AccessEntry.__table__  # type: ignore[attr-defined]
GRAPH_MESSAGE: sa.Table = GraphMessage.__table__  # type: ignore[attr-defined]
GRAPH_FOLDER: sa.Table = GraphFolder.__table__  # type: ignore[attr-defined]
MESSAGE_ALIAS: sa.Table = MessageAlias.__table__  # type: ignore[attr-defined]
STAFF_ACT: sa.Table = StaffAct.__table__  # type: ignore[attr-defined]
