"""Tables of the win/loss and rejection reason-code feature.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Placeholder so the chain exists while the feature is built; filled in by the feature's own change.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    """Nothing yet."""
