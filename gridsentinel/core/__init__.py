"""What every part shares and nothing above it owns: the event records (Reading, Frame, Detection,
DeadLetter), the metric table, unit-grid codes and the grid map, the device registry, and the Kafka
topic names with the one place topics are created or deleted. Imports nothing else of gridsentinel's
but ``errors``, ``ordered`` and ``settings``.
"""
