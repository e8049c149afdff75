"""product reason codes (issue 16): why a job's video failed, as a code with parameters beside its text

Revision ID: 0017_product_reason_codes
Revises: 0016_shared_presets
Create Date: 2026-11-30 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_product_reason_codes"
down_revision = "0016_shared_presets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before keep an empty code: the monitor shows their text as it is.
    with op.batch_alter_table("job_products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason_code", sa.String(64), server_default="", nullable=False))
        batch_op.add_column(sa.Column("reason_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_products", schema=None) as batch_op:
        batch_op.drop_column("reason_params")
        batch_op.drop_column("reason_code")
