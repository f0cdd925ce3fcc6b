"""retention: legal hold and retention instants on tickets, retention runs, access trail

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_hold_reason", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("legal_hold_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("raw_destroyed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "retention_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("raw_destroyed", sa.Integer(), nullable=False),
        sa.Column("anonymised", sa.Integer(), nullable=False),
        sa.Column("unlinked", sa.Integer(), nullable=False),
        sa.Column("refs", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retention_run_started_at"), ["started_at"], unique=False
        )
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_log_ref"), ["ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_log_ref"))
        batch_op.drop_index(batch_op.f("ix_access_log_at"))
    op.drop_table("access_log")
    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retention_run_started_at"))
    op.drop_table("retention_run")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("anonymised_at")
        batch_op.drop_column("raw_destroyed_at")
        batch_op.drop_column("legal_hold_at")
        batch_op.drop_column("legal_hold_reason")
