"""Case store: cases, their audit log, and the applied detection ids.

Revision ID: 0001
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOT_CLOSED = sa.text("status <> 'closed'")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("grid_code", sa.String(15), nullable=False),
        sa.Column("category_type", sa.String(16), nullable=False),
        sa.Column("category_code", sa.String(16), nullable=False),
        sa.Column("category_standard", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("first_seen_at", sa.Double, nullable=False),
        sa.Column("last_seen_at", sa.Double, nullable=False),
        sa.Column("detection_count", sa.Integer, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("kinds", sa.JSON, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("lat", sa.Double),
        sa.Column("lon", sa.Double),
        sa.Column("department", sa.String(64)),
        sa.Column("center", sa.String(32), nullable=False),
        sa.Column("escalation_level", sa.Integer, nullable=False),
        sa.Column("due_at", sa.Double),
        sa.Column("dispatched_at", sa.Double),
        sa.Column("acknowledged_at", sa.Double),
        sa.Column("last_reminded_at", sa.Double),
        sa.Column("closed_at", sa.Double),
        sa.Column("closing_reason", sa.String(16)),
        sa.Column("duplicate_of", sa.String(64)),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("rework_count", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("log_count", sa.Integer, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'dispatched', 'in_progress', 'resolved', 'verified', 'closed')",
            name="ck_cases_status"),
        sa.CheckConstraint(
            "closing_reason IS NULL OR closing_reason IN ('resolved', 'false_alarm', 'duplicate')",
            name="ck_cases_closing_reason"),
    )
    # One active case per (cell, category): the store's guarantee against two workers opening two cases.
    op.create_index("uq_cases_active_cell_category", "cases", ["grid_code", "category_type", "category_code"],
                    unique=True, sqlite_where=_NOT_CLOSED, postgresql_where=_NOT_CLOSED)
    op.create_index("ix_cases_category_cell", "cases",
                    ["category_type", "category_code", "grid_code", "status"])
    op.create_index("ix_cases_due_at", "cases", ["due_at"])
    op.create_index("ix_cases_opened_at", "cases", ["opened_at"])

    op.create_table(
        "case_log",
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )

    op.create_table(
        "applied_detections",
        sa.Column("detection_id", sa.String(255), primary_key=True),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("applied_at", sa.Double, nullable=False),
        sa.Column("observed_at", sa.Double, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("detection", sa.JSON, nullable=False),
    )
    op.create_index("ix_applied_detections_case_id", "applied_detections", ["case_id"])


def downgrade() -> None:
    op.drop_table("applied_detections")
    op.drop_table("case_log")
    op.drop_table("cases")
