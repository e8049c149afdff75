"""tenancy: company shares, slot guarantees and caps, budgets, rate card; users; token owners

Revision ID: 0002_tenancy
Revises: 0001
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_tenancy"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_share", sa.Float(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("cpu_share", sa.Float(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("min_slots", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("max_slots", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("gpu_hours_budget", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cpu_hours_budget", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("rates", sa.JSON(), server_default="{}", nullable=False))

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("company_id", "name"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_company_id"), ["company_id"], unique=False)

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))
        batch_op.drop_column("user_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_company_id"))
    op.drop_table("users")
    with op.batch_alter_table("companies", schema=None) as batch_op:
        for column in ("rates", "cpu_hours_budget", "gpu_hours_budget", "max_slots", "min_slots", "cpu_share",
                       "gpu_share"):
            batch_op.drop_column(column)
