"""metric totals: running counters and histograms for /metrics, frame bytes and last frame time per job, slot
sizes in the heartbeat rows (issue 15: a scrape no longer aggregates the frames table)

Revision ID: 0011_metric_totals
Revises: 0010_frame_layers
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_metric_totals"
down_revision = "0010_frame_layers"
branch_labels = None
depends_on = None

# The bounds of farm.lifecycle.tallies at the time of this migration (a migration does not import the app).
FRAME_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


def upgrade() -> None:
    totals = op.create_table(
        "metric_totals",
        sa.Column("series", sa.String(64), primary_key=True),
        sa.Column("company_id", sa.String(40), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("buckets", sa.JSON(), nullable=False),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frames_bytes", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_frame_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cpus", sa.Float(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("gpus", sa.Float(), server_default="0", nullable=False))
    # What the scrape used to aggregate at every turn, aggregated once.
    op.execute(
        "UPDATE jobs SET frames_bytes = (SELECT coalesce(sum(size), 0) FROM frames WHERE frames.job_id = jobs.id),"
        " last_frame_at = (SELECT max(created_at) FROM frames WHERE frames.job_id = jobs.id)"
    )
    bind = op.get_bind()
    rows = []
    for company_id, count in bind.execute(
        sa.text(
            "SELECT jobs.company_id, count(*) FROM frames JOIN jobs ON jobs.id = frames.job_id GROUP BY jobs.company_id"
        )
    ).all():
        rows.append(
            {
                "series": "frames_rendered",
                "company_id": company_id,
                "label": "",
                "count": count,
                "total": float(count),
                "buckets": [],
            }
        )
    bucket_sums = ", ".join(
        f"sum(CASE WHEN frames.render_seconds <= {b!r} THEN 1 ELSE 0 END)" for b in FRAME_SECONDS_BUCKETS
    )
    for row in bind.execute(
        sa.text(
            "SELECT jobs.company_id, lower(coalesce(frames.device, '')), count(*), "  # noqa: S608 (constants only)
            f"coalesce(sum(frames.render_seconds), 0), {bucket_sums} "
            "FROM frames JOIN jobs ON jobs.id = frames.job_id "
            "GROUP BY jobs.company_id, lower(coalesce(frames.device, ''))"
        )
    ).all():
        rows.append(
            {
                "series": "frame_render_seconds",
                "company_id": row[0],
                "label": row[1],
                "count": int(row[2]),
                "total": float(row[3] or 0.0),
                "buckets": [int(v or 0) for v in row[4:]],
            }
        )
    for company_id, resource, count, total in bind.execute(
        sa.text(
            "SELECT company_id, resource, count(*), coalesce(sum(seconds * count), 0) FROM usage_ledger "
            "WHERE resource IN ('cpu', 'gpu') GROUP BY company_id, resource"
        )
    ).all():
        rows.append(
            {
                "series": "resource_seconds",
                "company_id": company_id,
                "label": resource,
                "count": int(count),
                "total": float(total or 0.0),
                "buckets": [],
            }
        )
    if rows:
        op.bulk_insert(totals, rows)


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("gpus")
        batch_op.drop_column("cpus")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("last_frame_at")
        batch_op.drop_column("frames_bytes")
    op.drop_table("metric_totals")
