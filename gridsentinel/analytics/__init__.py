"""Analytics across cases, cells and weeks: pure logic (no Kafka, MQTT, Faust or database).

- ``grid``: city grid cells from latitude/longitude (equal-area sinusoidal projection, square cells).
- ``civic``: reading the Boston 311 extract and grouping its case reasons into category families.
- ``forecast``: daily counts per cell x family, past-only features, the Poisson gradient-boosting
  forecaster and the two naive baselines.
- ``rolling``: the rolling-origin evaluation (hit rate in the top 5 % / 10 % of cells, Poisson deviance).
"""
