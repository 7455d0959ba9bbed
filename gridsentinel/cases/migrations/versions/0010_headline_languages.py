"""A case's headline in other languages (issue 16, the zh-CN interface): column ``cases.headlines``.

JSON ``{"zh-CN": ...}`` beside ``headline`` (English): detectors describe what they find in both
languages (``Detection.messages``), and the case keeps the translations of the detection that set its
headline. Existing cases start with none (the pages fall back to the English headline).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("headlines", sa.JSON, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("headlines")
