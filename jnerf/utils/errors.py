"""Errors that mean "the input is wrong", not "jnerf is wrong": the command line prints them as one line, without a
traceback (set JNERF_DEBUG=1 to see one), and logs them in the run's log file."""

__all__ = ["UserError", "ConfigFileError", "ConfigValueError", "DeviceError", "RunLockedError", "TrainingDiverged",
           "user_errors"]


class UserError(Exception):
    """A fault in the user's input or environment; the message names the file or key and what was expected."""


class ConfigFileError(UserError):
    """A config file that cannot be read (syntax error, missing base, an exception while executing it)."""


class ConfigValueError(UserError, ValueError):
    """A config value of the wrong type or range."""


class DeviceError(UserError, RuntimeError):
    """The requested compute device is not usable here."""


class RunLockedError(UserError):
    """Another live process is writing to the same run folder."""


class TrainingDiverged(UserError):
    """The loss or the weights became NaN/inf and could not be recovered from a checkpoint."""


def user_errors():
    """Every exception class the command line reports as one line: ours, a misspelt key, bad scene data, a bad
    value (ValueError, which the constructors raise for a bad config value), a missing file or a failed write."""
    from jnerf.utils.registry import ConfigKeyError
    return (UserError, ConfigKeyError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError,
            NotADirectoryError)
