"""Alembic migrations of the case store; run them with ``gridsentinel.alerts.store.upgrade``."""
