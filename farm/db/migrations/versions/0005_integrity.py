"""integrity: whose fault a failed attempt was, and warnings (missing inputs rendered with --allow-missing)

Revision ID: 0005_integrity
Revises: 0004_merge
Create Date: 2026-11-30 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_integrity"
down_revision = "0004_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fault", sa.String(length=16), server_default="", nullable=False))
        batch_op.add_column(sa.Column("warning", sa.Text(), server_default="", nullable=False))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warning", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("warning")
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.drop_column("warning")
        batch_op.drop_column("fault")
