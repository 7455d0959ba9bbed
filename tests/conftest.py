"""Shared pytest setup: integration tests get the real stack, started once per session."""
