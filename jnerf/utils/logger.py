"""One logger for the project: readable lines on the console and the same lines in the run's log file."""
import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname).1s %(message)s"


class _CurrentStdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (notebooks and test runners swap it after start-up)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def get_logger(log_file=None, level=logging.INFO):
    """The 'jnerf' logger; with ``log_file`` it also appends there (once per file)."""
    logger = logging.getLogger("jnerf")
    logger.setLevel(level)
    if not any(getattr(h, "_jnerf_console", False) for h in logger.handlers):
        handler = _CurrentStdoutHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        handler._jnerf_console = True
        logger.addHandler(handler)
    if log_file:
        path = os.path.abspath(log_file)
        if not any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter(_FORMAT, "%Y-%m-%d %H:%M:%S"))
            logger.addHandler(handler)
    logger.propagate = False
    return logger


def log_to_files(level, message):
    """Write ``message`` to the jnerf logger's files only (the console got it another way, e.g. on stderr)."""
    record = logging.LogRecord("jnerf", level, __file__, 0, message, None, None)
    for handler in logging.getLogger("jnerf").handlers:
        if getattr(handler, "baseFilename", None):
            handler.handle(record)
