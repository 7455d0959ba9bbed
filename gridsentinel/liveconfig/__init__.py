"""Live config for every config kind: the registry of kinds and what applies each in a running process.

- ``kinds``: :data:`~gridsentinel.liveconfig.kinds.KINDS`, name -> file, validator (the config's own
  pydantic model; problems name file, key path, value and the fix), what its apply affects.
- ``appliers``: how a worker (frames stage, case stage, alert delivery, the live catalogue) and the API
  swap in a new version: build it completely, then swap one reference; a bad version is rejected.

The versioned path itself (store, publish, CLI, API) is engineering/'s, generalised by kind; this package
sits above it and above alerts/ because the receivers validator and applier need alerts/.
"""
