"""journal: when the copy of a sent message was put in the mailbox's Sent folder

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_copy_at", sa.DateTime(timezone=True), nullable=True))
    # Mail sent before the journal existed gets no copy now (it would arrive all at once).
    op.execute("UPDATE outbox SET sent_copy_at = sent_at WHERE state = 'sent'")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("sent_copy_at")
