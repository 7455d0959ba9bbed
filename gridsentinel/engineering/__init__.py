"""Engineering tools for detector configs: versions, publishing, live switch support, backtest, shadow.

- ``versions``: the SQLite store of detector config versions (author, time, unified diff).
- ``publish``: put a version on the compacted ``gs.config`` topic (key ``detectors`` / ``shadow``).
- ``sources``: history as readings (InfluxDB, CSV incl. NAB files).
- ``backtest``: replay readings through ``DetectionEngine`` and ``apply_detection`` in memory.
- ``report`` / ``html``: the JSON summary and the self-contained HTML report.
- ``shadow``: a candidate config beside the live one, its cases kept in a separate store.
- ``commands``: the CLI (``register_cli``) behind ``gridsentinel config ...`` and ``gridsentinel backtest``.
"""
