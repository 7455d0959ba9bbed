"""The stream worker: the composition root that builds the Faust app from settings and the stages asked
for, and the ``gridsentinel worker`` command that runs and supervises it. The only package that imports
every stage; no stage imports it back except for the context type it is handed.
"""
