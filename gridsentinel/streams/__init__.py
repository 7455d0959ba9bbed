"""What every worker stage builds on: the stage context and protocol (context.py) and every Faust/aiokafka
workaround with the check of the versions they were tested with (faust_compat.py). The composition root
(gridsentinel/worker/) builds the app from these and the stages; stages import this package, not worker/.
"""
