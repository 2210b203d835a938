"""gunicorn settings for the example app: loopback only, a few threaded workers."""

import os

bind = os.environ.get("WECOM_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WECOM_WORKERS", "2"))
worker_class = "gthread"
threads = 4
timeout = 30
accesslog = "-"
