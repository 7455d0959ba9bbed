"""Centers and hand-over (issue 16): users belong to a center (and a department user to a department);
cases remember the center they started at, the assisting departments of a joint dispatch, refusals, a
pending four-eyes request, and a headline that follows the case's current state.

- ``api_users.center``: the user's center id (``street:320582110``; NULL = the whole city, as before);
  ``api_users.department``: the department a ``department`` user works for.
- The role check of ``api_users`` / ``api_tokens`` gains ``supervisor`` and ``department``.
- ``cases.home_center``: the center the case started at (hand-back returns it there; backfilled from
  ``center`` at the case's first level); ``assisting_departments`` (JSON list); ``refusal_count``,
  ``refused_at``; ``pending_action`` (JSON: a false alarm waiting for its second user); ``headline``
  (the latest detection's message at the case's severity; backfilled from ``title``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ROLES = "('viewer', 'dispatcher', 'engineer', 'admin', 'citizen')"
ROLES = "('viewer', 'dispatcher', 'supervisor', 'engineer', 'admin', 'citizen', 'department')"


def _roles(table: str, roles: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table(table, recreate="auto") as batch:
        batch.drop_constraint(f"ck_{table}_role", type_="check")
        batch.create_check_constraint(f"ck_{table}_role", f"role IN {roles}")


def upgrade() -> None:
    with op.batch_alter_table("api_users") as batch:
        batch.add_column(sa.Column("center", sa.String(32)))
        batch.add_column(sa.Column("department", sa.String(64)))
    _roles("api_users", ROLES)
    _roles("api_tokens", ROLES)
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("home_center", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("assisting_departments", sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("refusal_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("refused_at", sa.Double))
        batch.add_column(sa.Column("pending_action", sa.JSON))
        batch.add_column(sa.Column("headline", sa.Text, nullable=False, server_default=""))
    op.execute("UPDATE cases SET headline = title, home_center = center WHERE escalation_level = 0")
    op.execute("UPDATE cases SET headline = title WHERE escalation_level <> 0")
    op.create_index("ix_cases_center", "cases", ["center"])


def downgrade() -> None:
    op.drop_index("ix_cases_center", "cases")
    with op.batch_alter_table("cases") as batch:
        for column in ("headline", "pending_action", "refused_at", "refusal_count", "assisting_departments",
                       "home_center"):
            batch.drop_column(column)
    _roles("api_tokens", OLD_ROLES)
    _roles("api_users", OLD_ROLES)
    with op.batch_alter_table("api_users") as batch:
        batch.drop_column("department")
        batch.drop_column("center")
