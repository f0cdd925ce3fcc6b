"""request fingerprint, service alerts and meta; addresses lower-cased

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:14:07.670625
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_alert",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "service_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fingerprint", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.create_index(
            batch_op.f("ix_inbound_message_fingerprint"), ["fingerprint"], unique=False
        )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.alter_column("fingerprint", server_default=None)
    # Addresses compare without regard to case: store them lower-cased. Two states kept for
    # one address in two cases merge into the lower-case row (undeliverable wins).
    op.execute("UPDATE ticket SET requester = lower(requester), assignee = lower(assignee)")
    op.execute("UPDATE outbox SET recipient = lower(recipient)")
    _merge_address_states()


def _merge_address_states() -> None:
    table = sa.table(
        "address_state",
        sa.column("address", sa.String),
        sa.column("undeliverable", sa.Boolean),
        sa.column("reason", sa.String),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(table)).all()
    merged: dict[str, dict[str, object]] = {}
    for row in rows:
        key = row.address.lower()
        kept = merged.get(key)
        # One state per address: an undeliverable mark wins, then the latest news.
        if kept is None or (row.undeliverable, row.updated_at) > (
            kept["undeliverable"],
            kept["updated_at"],
        ):
            merged[key] = {**row._mapping, "address": key}
    if len(merged) == len(rows) and all(row.address == row.address.lower() for row in rows):
        return
    connection.execute(sa.delete(table))
    if merged:
        connection.execute(sa.insert(table), list(merged.values()))


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_message_fingerprint"))
        batch_op.drop_column("fingerprint")
    op.drop_table("service_meta")
    op.drop_table("service_alert")
