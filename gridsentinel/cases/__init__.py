"""Cases: dedup of detections into cases, the case workflow and its time limits, categories and routes, the
case store and its migrations, and the cases stage of the worker. Delivery of case events is in ``alerts``."""
