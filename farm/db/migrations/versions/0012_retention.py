"""retention: days a company keeps its finished jobs and their outputs (null: forever), and the index that lets
``farm admin gc`` find the expired ones without reading the rest of the history (issue 15)

Revision ID: 0012_retention
Revises: 0011_metric_totals
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_retention"
down_revision = "0011_metric_totals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Float(), nullable=True))
    op.create_index("ix_jobs_company_finished", "jobs", ["company_id", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_company_finished", table_name="jobs")
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.drop_column("retention_days")
