"""Alerts: dedup against existing cases, the case lifecycle, due times, escalation and delivery."""
