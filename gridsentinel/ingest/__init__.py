"""Ingest: the shared event records, topic names, device registry, grid lookup and the InfluxDB sink."""
