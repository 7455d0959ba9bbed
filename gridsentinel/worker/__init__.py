"""The stream worker: the composition root (app.py) that builds the Faust app from settings and the stage
objects passed in, the stage names and their wiring (stages.py, the only module that imports every stage),
and the ``gridsentinel worker`` command that runs and supervises it (command.py, child.py). Nothing imports
this package but the CLI, the demo and the benchmarks; stages build on gridsentinel/streams/ (their context
type and the Faust/aiokafka workarounds).
"""
