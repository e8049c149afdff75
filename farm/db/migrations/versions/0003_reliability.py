"""reliability: failed-attempt count per chunk, pause that stops running chunks, per-job node blocklist

Revision ID: 0003_reliability
Revises: 0001
Create Date: 2026-11-27 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_reliability"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pause_now", sa.Boolean(), server_default="0", nullable=False))
    op.create_table(
        "blocklist",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"]),
        sa.PrimaryKeyConstraint("job_id", "node"),
    )


def downgrade() -> None:
    op.drop_table("blocklist")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("pause_now")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("failures")
