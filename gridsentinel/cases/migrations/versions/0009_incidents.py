"""Incidents (issue 17, one incident across categories): tables ``incidents``, ``incident_members`` and
``incident_log``.

- ``incidents``: one row per incident: its family (config/incident_families.yaml), when it was opened and
  last changed, and ``merged_into`` once a case bridged it with an older incident (the older one lives on).
- ``incident_members``: which incident a case belongs to. The case id is the primary key: a case is in at
  most one incident, and two linkers racing for one case collide instead of making two incidents.
- ``incident_log``: the incident's append-only audit log (open, link, merge, dispatch, close), with an
  autoincrement key so that the linker and the API never collide on a sequence number.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("merged_into", sa.String(64)),
    )
    op.create_index("ix_incidents_updated_at", "incidents", ["updated_at"])
    op.create_table(
        "incident_members",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), primary_key=True),
        sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.incident_id"), nullable=False),
        sa.Column("linked_at", sa.Double, nullable=False),
    )
    op.create_index("ix_incident_members_incident_id", "incident_members", ["incident_id"])
    op.create_table(
        "incident_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_incident_log_incident_id", "incident_log", ["incident_id"])


def downgrade() -> None:
    op.drop_table("incident_log")
    op.drop_table("incident_members")
    op.drop_table("incidents")
