"""The one Redis database the test suite uses (loaded by ``tests/conftest.py``).

Every test that needs Redis uses the same database, ``CLAIMS_OCR_TEST_REDIS_URL``
(default ``redis://127.0.0.1:6379/11``), through ``redis_url`` or ``redis_client``.
Never hard-code another database number in a test: point the variable at a free
database instead (e.g. ``CLAIMS_OCR_TEST_REDIS_URL=redis://127.0.0.1:6379/14``) when
another run shares the server.

The database is flushed before and after each test that uses it, so tests never see
each other's keys (and must not run in parallel against the same URL). Those tests are
skipped when Redis does not answer; the server is asked once per session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

REDIS_TEST_URL = os.environ.get("CLAIMS_OCR_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


def _connect() -> redis.Redis:
    return redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2, socket_timeout=5)


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The test Redis URL once the server has answered; skips the test otherwise."""
    client = _connect()
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis does not answer at {REDIS_TEST_URL}: {exc}")
    finally:
        client.close()
    return REDIS_TEST_URL


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    """A client on the test database, empty when the test starts and emptied after it."""
    client = _connect()
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def redis_url(redis_client: redis.Redis) -> str:
    """URL of the test database (empty when the test starts and emptied after it)."""
    return REDIS_TEST_URL
