"""Detectors: pure detection logic (no I/O, no clock, no globals) and, apart, the Faust stage that feeds it."""
