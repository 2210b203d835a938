"""Real servers on loopback and forged traffic, shared by ``tests/`` and ``bench/``.

Not part of the installed package: ``web_servers`` (gunicorn and uvicorn on 127.0.0.1),
``redis_server`` (a throwaway redis-server) and ``forge`` (callbacks an attacker can build).
"""
