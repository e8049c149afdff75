"""an index on a company's jobs by creation time: the submit limit counts the jobs of the last minute without
reading the company's whole history (issue 12)

Revision ID: 0018_jobs_company_created
Revises: 0017_product_reason_codes
Create Date: 2026-12-01 04:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0018_jobs_company_created"
down_revision = "0017_product_reason_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_company_created", "jobs", ["company_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_company_created", table_name="jobs")
