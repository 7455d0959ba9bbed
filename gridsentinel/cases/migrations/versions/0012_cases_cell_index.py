"""The dedup reads find cases by cell first (issue 15): index ``ix_cases_cell_category`` replaces
``ix_cases_category_cell``.

The cases stage reads, for each batch, the cases of its categories in its cells (``candidate_cases``) and the
active cases of the incident families nearby (``family_cases``), both with ``grid_code = ANY(...)``. The old
index began with the category: PostgreSQL matched the category in the index and filtered every case of that
category by cell, so each batch read all of the category's cases, open and closed (3,600 rows for 36
detections in a fresh store; the cost grew with the store until the stage fell behind). With the cell first,
a batch reads its own cells' rows whatever the table's statistics say.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cases_cell_category", "cases", ["grid_code", "category_type", "category_code", "status"])
    op.drop_index("ix_cases_category_cell", table_name="cases")


def downgrade() -> None:
    op.create_index("ix_cases_category_cell", "cases", ["category_type", "category_code", "grid_code", "status"])
    op.drop_index("ix_cases_cell_category", table_name="cases")
