"""The district simulator behind ``gridsentinel simulate`` (docs/simulator.md).

``scenario`` writes the script (signals, incidents, ground truth; pure), ``clock`` maps it onto real
time, ``footage`` renders camera frames, ``publisher`` plays it over MQTT as the devices themselves.
"""

from gridsentinel.simulator.command import add_arguments, run

__all__ = ["add_arguments", "run"]
