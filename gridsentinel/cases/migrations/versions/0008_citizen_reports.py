"""Citizen reports as the intake decided them (issue 17, report quality): table ``citizen_reports``.

One row per Open311 report: who filed it (account, device, phone), where and when, the photo's perceptual
hash, the quality decision with its reasons (JSON), the state (accepted, held for verification, confirmed,
rejected, duplicate) and the detection it is or will be (JSON). See gridsentinel/cases/report_store.py.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "citizen_reports",
        sa.Column("report_id", sa.String(32), primary_key=True),
        sa.Column("detection_id", sa.String(64), nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("reporter", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(100)),
        sa.Column("device_id", sa.String(100)),
        sa.Column("phone", sa.String(40)),
        sa.Column("lat", sa.Double, nullable=False),
        sa.Column("lon", sa.Double, nullable=False),
        sa.Column("filed_lat", sa.Double),
        sa.Column("filed_lon", sa.Double),
        sa.Column("grid_code", sa.String(15), nullable=False),
        sa.Column("category_key", sa.String(40), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("photo_hash", sa.String(256)),
        sa.Column("has_photo", sa.Boolean, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("duplicate_of", sa.String(32)),
        sa.Column("gaming_score", sa.Double, nullable=False),
        sa.Column("quality", sa.JSON, nullable=False),
        sa.Column("detection", sa.JSON, nullable=False),
        sa.Column("decided_at", sa.Double),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decision_note", sa.Text),
        sa.CheckConstraint("state IN ('accepted', 'held', 'confirmed', 'rejected', 'duplicate')",
                           name="ck_citizen_reports_state"),
    )
    op.create_index("ix_citizen_reports_received_at", "citizen_reports", ["received_at"])
    op.create_index("ix_citizen_reports_account_id", "citizen_reports", ["account_id"])
    op.create_index("ix_citizen_reports_device_id", "citizen_reports", ["device_id"])
    op.create_index("ix_citizen_reports_state", "citizen_reports", ["state"])


def downgrade() -> None:
    op.drop_table("citizen_reports")
