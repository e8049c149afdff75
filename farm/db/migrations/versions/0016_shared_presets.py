"""shared presets: a company's or the platform's job presets published for other companies (issue 20 item 4)

Revision ID: 0016_shared_presets
Revises: 0015_reason_codes
Create Date: 2026-11-30 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_shared_presets"
down_revision = "0015_reason_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_presets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("company_id", sa.String(40), sa.ForeignKey("companies.id"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("by_platform", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("company_id", "name", name="uq_shared_presets_company_name"),
    )
    op.create_index("ix_shared_presets_company_id", "shared_presets", ["company_id"])
    op.create_table(
        "shared_preset_grants",
        sa.Column("preset_id", sa.String(40), sa.ForeignKey("shared_presets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("company_id", sa.String(40), sa.ForeignKey("companies.id"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("shared_preset_grants")
    op.drop_index("ix_shared_presets_company_id", table_name="shared_presets")
    op.drop_table("shared_presets")
