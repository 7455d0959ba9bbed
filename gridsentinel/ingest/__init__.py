"""The ingest stage: readings from Kafka written to InfluxDB, with the retry/refusal policy of the writer."""
