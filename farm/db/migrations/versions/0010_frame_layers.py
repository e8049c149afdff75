"""frame layers: the files of a frame written as one file per view layer (single-layer formats, several layers)

Revision ID: 0010_frame_layers
Revises: 0009_browser_sessions
Create Date: 2026-11-30 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_frame_layers"
down_revision = "0009_browser_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.add_column(sa.Column("layers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.drop_column("layers")
