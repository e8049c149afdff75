"""progress: per-job task counters and frames done, kept up to date instead of recounted; an index for a job's
runnable chunks in order

Revision ID: 0006_progress
Revises: 0005_integrity
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_progress"
down_revision = "0005_integrity"
branch_labels = None
depends_on = None

COUNTERS = {
    "tasks_total": None,
    "tasks_runnable": ("queued", "soft-failed"),
    "tasks_in_flight": ("dispatched", "running"),
    "tasks_completed": ("completed",),
    "tasks_failed": ("failed",),
    "tasks_canceled": ("canceled",),
    "tasks_paused": ("paused",),
}


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in (*COUNTERS, "frames_done"):
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    for name, statuses in COUNTERS.items():
        where = "" if statuses is None else " AND tasks.status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"
        op.execute(f"UPDATE jobs SET {name} = (SELECT count(*) FROM tasks WHERE tasks.job_id = jobs.id{where})")  # noqa: S608
    op.execute("UPDATE jobs SET frames_done = (SELECT count(*) FROM frames WHERE frames.job_id = jobs.id)")
    op.create_index("ix_tasks_job_status_index", "tasks", ["job_id", "status", "index"])


def downgrade() -> None:
    op.drop_index("ix_tasks_job_status_index", table_name="tasks")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        for name in ("frames_done", *reversed(list(COUNTERS))):
            batch_op.drop_column(name)
