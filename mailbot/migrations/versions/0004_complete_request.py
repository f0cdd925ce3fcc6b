"""complete request: a hold's kind (wait | incomplete), so a request declared incomplete
restarts the clocks that count from the complete request

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every hold of the tickets already open was an `attente`: a pause (kind "wait").
    with op.batch_alter_table("ticket_hold", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="wait")
        )
    with op.batch_alter_table("ticket_hold", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("ticket_hold", schema=None) as batch_op:
        batch_op.drop_column("kind")
