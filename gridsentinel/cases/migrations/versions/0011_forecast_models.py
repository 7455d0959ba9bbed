"""The hotspot forecast's trained models (issue 18): table ``forecast_models``.

One row per model: its version, the days of case history it learnt from, families (in feature order), sizes,
hyperparameters, the scikit-learn version and the pickled model with its SHA-256; at most one model per kind,
scope and day. See gridsentinel/analytics/model_store.py.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forecast_models",
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(15), nullable=False),
        sa.Column("trained_at", sa.Double, nullable=False),
        sa.Column("data_start", sa.String(10), nullable=False),
        sa.Column("data_end", sa.String(10), nullable=False),
        sa.Column("families", sa.JSON, nullable=False),
        sa.Column("cells", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("problems", sa.Integer, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("sklearn", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("model", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("kind", "scope", "data_end", name="uq_forecast_models_day"),
    )


def downgrade() -> None:
    op.drop_table("forecast_models")
