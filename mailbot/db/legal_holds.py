"""Legal holds on tickets: placed or released with their line in the ticket's history, and who
placed the one in force (SQLAlchemy Core, on the caller's connection). A ticket under legal
hold is kept whole by retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mailbot.db import ticket_rows
from mailbot.db.models import TICKET


def set_legal_hold(
    connection: Connection,
    ticket_id: int,
    reason: str | None,
    now: datetime,
    *,
    by: str = "",
    via: str = "",
) -> None:
    """Put the ticket under legal hold (a reason, placed `by` whom `via` "cli" or "email"),
    or release it (None)."""
    held = reason is not None
    connection.execute(
        sa.update(TICKET)
        .where(TICKET.c.id == ticket_id)
        .values(
            legal_hold_reason=reason[:2000] if reason is not None else None,
            legal_hold_at=now if held else None,
            legal_hold_by=by[:320] if held else None,
            legal_hold_via=via if held else None,
            updated_at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class HoldOrigin:
    """Who placed a ticket's legal hold in force, and whether by email (else the command line)."""

    actor: str
    by_email: bool


def hold_origin(connection: Connection, ticket_id: int) -> HoldOrigin | None:
    """The owner of the ticket's legal hold in force (None when it has none). A hold whose
    origin is unknown counts as the command line's."""
    row = connection.execute(
        sa.select(TICKET.c.legal_hold_at, TICKET.c.legal_hold_by, TICKET.c.legal_hold_via).where(
            TICKET.c.id == ticket_id
        )
    ).first()
    if row is None or row.legal_hold_at is None:
        return None
    return HoldOrigin(row.legal_hold_by or "", row.legal_hold_via == "email")


def change_legal_hold(
    connection: Connection,
    ticket_id: int,
    reason: str | None,
    actor: str,
    now: datetime,
    inbound_id: int | None = None,
) -> None:
    """Place (a reason) or release (None) the legal hold; in the ticket's history. Its owner
    is `actor`, from the command line, or by email when `inbound_id` names the message.
    Placing a hold over one in force leaves that one as it is (reason and owner): the new
    reason is in the history only, so who may lift the hold does not change."""
    if reason is not None and hold_origin(connection, ticket_id) is not None:
        ticket_rows.add_event(
            connection,
            ticket_id,
            now,
            "legal_hold_kept",
            f"already under legal hold; also: {reason}",
            actor=actor,
            inbound_id=inbound_id,
        )
        return
    via = "email" if inbound_id is not None else "cli"
    set_legal_hold(connection, ticket_id, reason, now, by=actor, via=via)
    kind = "legal_hold" if reason is not None else "legal_hold_released"
    ticket_rows.add_event(
        connection, ticket_id, now, kind, reason or "", actor=actor, inbound_id=inbound_id
    )
