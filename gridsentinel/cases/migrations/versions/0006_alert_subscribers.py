"""Alert subscribers (issue 16): per-center MQTT accounts that may only read their center's alert topics
(gridsentinel/devices/subscribers.py). Only the account is here; its password lives hashed in the broker's
password file and its grants in the broker's ACL. A name is an MQTT username, so it never equals a
device id (checked both ways by the stores, in the same database).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_subscribers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("center", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("credential_epoch", sa.Integer, nullable=False),
        sa.Column("description", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.CheckConstraint("state IN ('active', 'revoked')", name="ck_alert_subscribers_state"),
    )
    op.create_index("ix_alert_subscribers_center", "alert_subscribers", ["center"])


def downgrade() -> None:
    op.drop_index("ix_alert_subscribers_center", "alert_subscribers")
    op.drop_table("alert_subscribers")
