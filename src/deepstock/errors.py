"""Exceptions that the CLI turns into one-line messages (no traceback)."""


class DeepstockError(Exception):
    """Base class for user-facing errors: bad config, bad input file, bad option."""


class ConfigError(DeepstockError, ValueError):
    """A configuration or hyper-parameter value is invalid; the message names the field."""


class DataError(DeepstockError):
    """A dataset file is missing, unreadable or does not match what was asked for."""
