"""ops: 64-bit object sizes (PostgreSQL's integer is 32-bit); scheduler heartbeat tables for /metrics

Revision ID: 0002_ops
Revises: 0001
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_ops"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A blob or frame above 2 GiB must fit: integer is 32-bit on PostgreSQL (SQLite's is 64-bit already).
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.alter_column("size", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.alter_column("size", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)

    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=True),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("alive", sa.Boolean(), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_table("workers")
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.alter_column("size", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.alter_column("size", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
