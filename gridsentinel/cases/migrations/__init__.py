"""Alembic migrations of the case store; run them with ``gridsentinel.cases.store.upgrade``."""
