"""GridSentinel: a city's sensors and street cameras turned into grid-management cases."""

__version__ = "0.1.0"
