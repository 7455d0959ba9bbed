"""Device registry: the devices (with state, revision, credential epoch) and their change history, whose
unpublished rows are the outbox of the ``gs.devices`` feed (gridsentinel/devices/store.py).

Revision ID: 0003
Revises: 0002
Create Date: 2025-07-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("lat", sa.Double, nullable=False),
        sa.Column("lon", sa.Double, nullable=False),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("component_id", sa.String(16)),
        sa.Column("expected_interval_s", sa.Double, nullable=False),
        sa.Column("install", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("credential", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("credential_epoch", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("retired_at", sa.Double),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.CheckConstraint("state IN ('active', 'retired')", name="ck_devices_state"),
        sa.CheckConstraint("credential IN ('seed', 'issued', 'revoked')", name="ck_devices_credential"),
    )
    op.create_index("ix_devices_grid_code", "devices", ["grid_code"])
    op.create_table(
        "device_history",
        # Insertion order = publishing order (a device's changes stay in revision order).
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("published_at", sa.Double),
        sa.UniqueConstraint("device_id", "revision", name="uq_device_history_revision"),
    )
    op.create_index("ix_device_history_published_at", "device_history", ["published_at"])


def downgrade() -> None:
    op.drop_index("ix_device_history_published_at", "device_history")
    op.drop_table("device_history")
    op.drop_index("ix_devices_grid_code", "devices")
    op.drop_table("devices")
