"""Fixtures shared by the whole suite."""

pytest_plugins = [
    "tests.support.api_fixtures",
    "tests.support.dovecot",
    "tests.support.google_standin",
    "tests.support.ledger_fixtures",
    "tests.support.ocr_fixtures",
    "tests.support.redis_fixtures",
]
