"""library: assets companies publish for each other, who may use them, and each job's use (issue 20)

Revision ID: 0014_library
Revises: 0013_pipeline
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_library"
down_revision = "0013_pipeline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "library_assets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("company_id", sa.String(40), sa.ForeignKey("companies.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("licence", sa.Text(), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retracted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_library_assets_company_id", "library_assets", ["company_id"])
    op.create_index("ix_library_assets_sha", "library_assets", ["sha256"])
    op.create_table(
        "library_grants",
        sa.Column("asset_id", sa.String(40), sa.ForeignKey("library_assets.id"), primary_key=True),
        sa.Column("company_id", sa.String(40), sa.ForeignKey("companies.id"), primary_key=True),
    )
    op.create_table(
        "library_uses",
        sa.Column("asset_id", sa.String(40), sa.ForeignKey("library_assets.id"), primary_key=True),
        sa.Column("job_id", sa.String(40), primary_key=True),
        sa.Column("company_id", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_library_uses_company_id", "library_uses", ["company_id"])
    op.create_index("ix_library_uses_used_at", "library_uses", ["used_at"])


def downgrade() -> None:
    op.drop_table("library_uses")
    op.drop_table("library_grants")
    op.drop_index("ix_library_assets_sha", table_name="library_assets")
    op.drop_index("ix_library_assets_company_id", table_name="library_assets")
    op.drop_table("library_assets")
