"""The stream worker: the composition root (app.py) that builds the Faust app from settings and the stage
objects passed in, the stage names and their wiring (stages.py, the only module that imports every stage),
the Faust/aiokafka workarounds (faust_compat.py) and the ``gridsentinel worker`` command that runs and
supervises it (command.py, child.py). Stages import from here only the context type they are handed and
faust_compat's helpers.
"""
