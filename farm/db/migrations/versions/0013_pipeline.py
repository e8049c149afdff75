"""studio pipeline (issue 19): job dependencies and what a job waits for, webhooks with their delivery log, and
named job presets

Revision ID: 0013_pipeline
Revises: 0012_retention
Create Date: 2026-11-30 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_pipeline"
down_revision = "0012_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wait", sa.String(8), server_default="", nullable=False))
    op.create_index("ix_jobs_wait", "jobs", ["wait"])
    op.create_table(
        "job_dependencies",
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("depends_on", sa.String(40), sa.ForeignKey("jobs.id"), primary_key=True),
        sa.Column("frame_match", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_job_dependencies_depends_on", "job_dependencies", ["depends_on"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("company_id", sa.String(40), sa.ForeignKey("companies.id"), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhooks_company_id", "webhooks", ["company_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.String(40), nullable=False),
        sa.Column("company_id", sa.String(40), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_webhook_deliveries_webhook_id", "webhook_deliveries", ["webhook_id"])
    op.create_index("ix_webhook_deliveries_company_id", "webhook_deliveries", ["company_id"])
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"])
    op.create_table(
        "job_presets",
        sa.Column("company_id", sa.String(40), sa.ForeignKey("companies.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_presets")
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_company_id", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_webhook_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhooks_company_id", table_name="webhooks")
    op.drop_table("webhooks")
    op.drop_index("ix_job_dependencies_depends_on", table_name="job_dependencies")
    op.drop_table("job_dependencies")
    op.drop_index("ix_jobs_wait", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("wait")
