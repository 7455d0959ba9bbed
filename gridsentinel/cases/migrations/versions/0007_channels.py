"""Channels (issue 17): the 12345 hotline's calls, kept from intake to detection so that a call whose
address cannot be resolved waits in a queue (never dropped); and the ``inspector`` role.

- ``hotline_calls``: one row per call: text, address, call time, the gazetteer's candidates and the
  suggested categories, then the confirmed category, the point and cell, and the detection id once it
  went to ``gs.detections``. ``status``: ``pending`` (taken, not confirmed), ``queued`` (confirmed, the
  address unresolved), ``sent`` (the detection was produced). ``ticket`` (the hotline platform's own
  work-order number) is unique: a retried intake is the same call.
- The role check of ``api_users`` / ``api_tokens`` gains ``inspector``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = "('viewer', 'dispatcher', 'supervisor', 'engineer', 'admin', 'citizen', 'department')"
ROLES = "('viewer', 'dispatcher', 'supervisor', 'engineer', 'admin', 'citizen', 'department', 'inspector')"


def _roles(table: str, roles: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table(table, recreate="auto") as batch:
        batch.drop_constraint(f"ck_{table}_role", type_="check")
        batch.create_check_constraint(f"ck_{table}_role", f"role IN {roles}")


def upgrade() -> None:
    op.create_table(
        "hotline_calls",
        sa.Column("call_id", sa.String(64), primary_key=True),
        sa.Column("ticket", sa.String(64)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("address", sa.String(400), nullable=False),
        sa.Column("called_at", sa.Double, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("taken_by", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("suggestions", sa.JSON, nullable=False),
        sa.Column("category_key", sa.String(40)),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("lat", sa.Double),
        sa.Column("lon", sa.Double),
        sa.Column("place", sa.String(200)),
        sa.Column("located_by", sa.String(16)),
        sa.Column("detection_id", sa.String(64)),
        sa.Column("confirmed_by", sa.String(64)),
        sa.Column("confirmed_at", sa.Double),
        sa.Column("resolved_by", sa.String(64)),
        sa.Column("resolved_at", sa.Double),
        sa.CheckConstraint("status IN ('pending', 'queued', 'sent')", name="ck_hotline_calls_status"),
        sa.UniqueConstraint("ticket", name="uq_hotline_calls_ticket"),
    )
    op.create_index("ix_hotline_calls_status", "hotline_calls", ["status", "called_at"])
    _roles("api_users", ROLES)
    _roles("api_tokens", ROLES)


def downgrade() -> None:
    op.execute("DELETE FROM api_tokens WHERE role = 'inspector'")
    op.execute("DELETE FROM api_users WHERE role = 'inspector'")
    _roles("api_tokens", OLD_ROLES)
    _roles("api_users", OLD_ROLES)
    op.drop_index("ix_hotline_calls_status", "hotline_calls")
    op.drop_table("hotline_calls")
