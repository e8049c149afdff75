"""scheduler lease: the one row that says which scheduler leads (holder, generation, beat) and how its loop fares

Revision ID: 0007_scheduler_lease
Revises: 0006_progress
Create Date: 2026-11-30 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_scheduler_lease"
down_revision = "0006_progress"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False, server_default=""),
        sa.Column("generation", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("beat", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("loop_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("loop_seconds", sa.Float(), nullable=False, server_default="0"),
        sa.Column("lease_seconds", sa.Float(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_lease")
