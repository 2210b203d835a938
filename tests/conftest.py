"""Shared fixtures. Fixture modules live in tests/support/ and are loaded here."""

pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.redis_cluster",
    "tests.support.redis_sentinel",
    "tests.support.fake_wecom_api",
]
