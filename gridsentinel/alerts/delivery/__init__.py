"""Alert delivery: case events to people's systems (webhooks, MQTT, CAP 1.2).

``config`` (``config/receivers.yaml`` models), ``routing`` (which receivers get an event; pure),
``signing`` (HMAC-SHA256 signatures; pure), ``cap`` (CAP 1.2 XML; pure), ``webhook`` (HTTP with
retries, backoff and dead letters; I/O), ``mqtt`` (``gs/v1/alerts/{district}/{street}/{community}/{grid_code}``
at QoS 1; I/O) and ``service`` (:class:`~gridsentinel.alerts.delivery.service.AlertDelivery`, what the case
stage calls).
Only events whose ``notify`` flag is set are delivered; the SSE stream and dashboard get every event.
"""
