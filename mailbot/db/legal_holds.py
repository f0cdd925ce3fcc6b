"""Legal holds on tickets: placed or released, and who placed the one in force (SQLAlchemy
Core, on the caller's connection). A ticket under legal hold is kept whole by retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

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
