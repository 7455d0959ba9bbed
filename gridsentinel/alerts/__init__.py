"""Alerts: dedup against existing cases, the case lifecycle, due times, escalation and delivery.

Modules (pure unless noted): ``grid`` (grid codes, escalation ladder, neighbours), ``case`` (case model,
state machine, audit log), ``calendar`` (working-hours deadlines), ``categories`` (category catalogue,
kind mapping, routing; YAML config), ``events`` (case events for ``gs.case-events``, alert policy),
``dedup`` (the four dedup rules, ``apply_detection``), ``workflow`` (transitions with due times,
escalation, reminders), ``store_protocol`` (the store interface), ``memory_store`` (in-memory store),
``store`` (SQL store, I/O) with its Alembic ``migrations``. See docs/cases.md.
"""
