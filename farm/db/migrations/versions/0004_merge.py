"""Merge the tenancy, operations and reliability branches into one head.

Revision ID: 0004_merge
Revises: 0002_ops, 0002_tenancy, 0003_reliability
"""

from __future__ import annotations

revision = "0004_merge"
down_revision = ("0002_ops", "0002_tenancy", "0003_reliability")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch different tables and columns."""


def downgrade() -> None:
    """Nothing to undo."""
