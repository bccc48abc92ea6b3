"""Tables of the sales-accepted-lead SLA feature (clocks, actions).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Placeholder so the chain exists while the feature is built; filled in by the feature's own change.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
