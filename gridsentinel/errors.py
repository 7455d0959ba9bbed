"""The project's exception root. Bad input from outside is data (a dead letter), not an exception."""


class GridSentinelError(Exception):
    """Root of every error GridSentinel raises on purpose; the CLI prints it without a traceback."""


class ConfigError(GridSentinelError):
    """A config file is missing or invalid; the message names the file, key path, value and expectation."""


class ServiceError(GridSentinelError):
    """A service of the local stack could not be installed, started or reached."""
