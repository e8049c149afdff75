"""products: what the farm makes from a job once every frame is in (the video of a video-output scene)

Revision ID: 0008_products
Revises: 0007_scheduler_lease
Create Date: 2026-11-30 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_products"
down_revision = "0007_scheduler_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_products",
        sa.Column("job_id", sa.String(length=40), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("company_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_job_products_company_id", "job_products", ["company_id"])


def downgrade() -> None:
    op.drop_index("ix_job_products_company_id", table_name="job_products")
    op.drop_table("job_products")
