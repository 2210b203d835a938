"""gunicorn settings for the example app: loopback only, a few threaded workers.

Logging: flask_wecom logs on the ``flask_wecom`` logger (refusals at WARNING, handler
failures at ERROR, token fetches and the long connection at INFO). ``logconfig_dict`` below
routes it, and the app's own ``example_app`` logger, into gunicorn's error log with the time,
the level and the worker's pid, in gunicorn's own line format::

    [2026-12-04 10:00:00 +0800] [4242] [WARNING] flask_wecom: refused POST wecom from ...

``WECOM_ERRORLOG`` names a file for that log (default ``-``, standard error). gunicorn's own
loggers keep their handlers; ``accesslog`` goes to standard output.
"""

import os

bind = os.environ.get("WECOM_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WECOM_WORKERS", "2"))
worker_class = "gthread"
threads = 4
timeout = 30
accesslog = "-"
errorlog = os.environ.get("WECOM_ERRORLOG", "-")
loglevel = "info"

_handler = (
    {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    if errorlog == "-"
    else {"class": "logging.handlers.WatchedFileHandler", "filename": errorlog}
)
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "gunicorn_error": {
            # gunicorn's error-log format (glogging.Logger.error_fmt), plus the logger name.
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        }
    },
    "handlers": {"error_log": {**_handler, "formatter": "gunicorn_error"}},
    # Everything else that propagates to the root (third-party libraries) at WARNING.
    "root": {"level": "WARNING", "handlers": ["error_log"]},
    "loggers": {
        "flask_wecom": {"level": "INFO"},
        "example_app": {"level": "INFO"},
    },
}
