"""legal hold owner: who placed the hold in force and from where (command line or email)

Holds in force before this migration get the owner of the first hold placed since their last
release (what the history says); one whose origin the history cannot tell is the command
line's (the stricter: lifted only there).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_hold_by", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("legal_hold_via", sa.String(length=8), nullable=True))
    connection = op.get_bind()
    held = connection.execute(
        sa.text("SELECT id FROM ticket WHERE legal_hold_at IS NOT NULL")
    ).scalars()
    for ticket_id in list(held):
        events = connection.execute(
            sa.text(
                "SELECT kind, actor, inbound_id FROM ticket_event WHERE ticket_id = :id"
                " AND kind IN ('legal_hold', 'legal_hold_released') ORDER BY id"
            ),
            {"id": ticket_id},
        ).all()
        owner: tuple[str, str] | None = None
        for kind, actor, inbound_id in events:
            if kind == "legal_hold_released":
                owner = None
            elif owner is None:
                owner = (actor, "email" if inbound_id is not None else "cli")
        by, via = owner or ("", "cli")
        connection.execute(
            sa.text("UPDATE ticket SET legal_hold_by = :by, legal_hold_via = :via WHERE id = :id"),
            {"by": by, "via": via, "id": ticket_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("legal_hold_via")
        batch_op.drop_column("legal_hold_by")
