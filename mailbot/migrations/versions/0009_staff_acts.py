"""staff acts: each person's closes, referrals, merges and relays (limited per hour, held past
the limit); where a merged message came from; outgoing mail that waits for another row

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_act",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("acts", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=320), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["inbound_id"], ["inbound_message.id"]),
        sa.ForeignKeyConstraint(["ticket_id"], ["ticket.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("inbound_id", name="uq_staff_act_inbound"),
    )
    op.create_index("ix_staff_act_person_at", "staff_act", ["person", "at"])
    op.create_index("ix_staff_act_state", "staff_act", ["state"])
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_from", sa.Integer(), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("after_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_outbox_after_id", ["after_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_after_id")
        batch_op.drop_column("after_id")
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_column("merged_from")
    op.drop_index("ix_staff_act_state", table_name="staff_act")
    op.drop_index("ix_staff_act_person_at", table_name="staff_act")
    op.drop_table("staff_act")
