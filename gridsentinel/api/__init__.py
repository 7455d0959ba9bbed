"""The HTTP API (FastAPI): cases, their event stream, devices, the grid map, Open311, health, metrics.

Build it with :func:`gridsentinel.api.app.create_app`; serve it with :func:`gridsentinel.api.app.run_api`.
Routes, roles and the error shape: docs/api.md.
"""
