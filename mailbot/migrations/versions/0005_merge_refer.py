"""merge and referral: why a ticket was closed, and the ticket a duplicate was merged into

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("merged_into", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("merged_into")
        batch_op.drop_column("closed_reason")
