"""One logger for the project: readable lines on the console and the same lines in the run's log file."""
import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname).1s %(message)s"


def get_logger(log_file=None, level=logging.INFO):
    """The 'jnerf' logger; with ``log_file`` it also appends there (once per file)."""
    logger = logging.getLogger("jnerf")
    logger.setLevel(level)
    if not any(getattr(h, "_jnerf_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
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
