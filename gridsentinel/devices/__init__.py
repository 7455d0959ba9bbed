"""The device registry in the case database: store (devices/store.py), operations with credentials and the
``gs.devices`` feed (devices/registry.py), bulk import/export (devices/bulk.py), CLI (devices/commands.py)."""
