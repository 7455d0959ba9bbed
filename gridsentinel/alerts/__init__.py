"""Alerts: delivery of case events to dispatch centers (webhooks, MQTT, CAP), by route and receiver.

The cases themselves (dedup, workflow, due times, categories, the store) are in ``gridsentinel.cases``;
this package only takes the case events that stage publishes and delivers them. See docs/alerts.md.
"""
