"""recovery ledger: each database knows its instance, each retention run its ledger key

Every database gets an instance id (a random one, in service_meta, when it is created or first
migrated): every backup carries it, and `mailbot restore` refuses another instance's backup.
Each retention run (and erasure) gets the key under which the erasure ledger in the mail store
records it, so a run the ledger knows and a restored database lacks is recorded again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 09:00:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ledger_key", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.create_index("ix_retention_run_ledger_key", ["ledger_key"], unique=False)
    connection = op.get_bind()
    found = connection.execute(
        sa.text("SELECT value FROM service_meta WHERE key = 'instance_id'")
    ).scalar()
    if found is None:
        connection.execute(
            sa.text("INSERT INTO service_meta (key, value) VALUES ('instance_id', :value)"),
            {"value": uuid.uuid4().hex},
        )


def downgrade() -> None:
    with op.batch_alter_table("retention_run", schema=None) as batch_op:
        batch_op.drop_index("ix_retention_run_ledger_key")
        batch_op.drop_column("ledger_key")
    op.execute("DELETE FROM service_meta WHERE key = 'instance_id'")
