"""reason codes and submitter (issue 16): status, attempt and blocklist reasons as a code with parameters beside
their text, and who submitted each job

Revision ID: 0015_reason_codes
Revises: 0014_library
Create Date: 2026-11-30 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_reason_codes"
down_revision = "0014_library"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before keep an empty code: the monitor shows their text as it is.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason_code", sa.String(64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("status_reason_params", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("submitted_by", sa.String(200), server_default="", nullable=False))
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("reason_params", sa.JSON(), nullable=True))
    with op.batch_alter_table("blocklist", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("reason_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("blocklist", schema=None) as batch_op:
        batch_op.drop_column("reason_params")
        batch_op.drop_column("reason_code")
    with op.batch_alter_table("task_attempts", schema=None) as batch_op:
        batch_op.drop_column("reason_params")
        batch_op.drop_column("reason_code")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("submitted_by")
        batch_op.drop_column("status_reason_params")
        batch_op.drop_column("status_reason_code")
