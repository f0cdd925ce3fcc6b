"""graph: messages seen through Microsoft Graph (immutable id -> number), delta links, and
the Message-IDs the transport assigned to ours

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "graph_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("immutable_id", sa.String(length=512), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox", "immutable_id", name="uq_graph_message_immutable_id"),
    )
    op.create_table(
        "graph_folder",
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=255), nullable=False),
        sa.Column("delta_link", sa.Text(), nullable=False),
        sa.Column("resyncs", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("mailbox", "folder"),
    )

    op.create_table(
        "message_alias",
        sa.Column("assigned", sa.String(length=300), nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("assigned"),
    )


def downgrade() -> None:
    op.drop_table("message_alias")
    op.drop_table("graph_folder")
    op.drop_table("graph_message")
