"""Errors a user can cause: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """A problem with the user's input (files, config, data) that the user can fix."""


class ConfigError(UserError):
    """An unknown key or an invalid value in the configuration."""


class DataError(UserError):
    """A missing, truncated, corrupt or mismatched data file."""


class NonFiniteLossError(UserError):
    """Training produced a NaN or infinite loss."""
