"""The circuit breaker: both stores, alone and in front of the stand-in over HTTP."""

from __future__ import annotations

import time
import uuid
from datetime import date
from decimal import Decimal

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.demo.ncb_standin import StandinServer
from services.ncb import (
    CircuitBreaker,
    CircuitOpen,
    ClaimSubmission,
    MemoryBreakerStore,
    NcbClient,
    NcbUnavailable,
    RedisBreakerStore,
)
from services.ncb.breaker import BreakerStore

KEY = "test-key"
COOLDOWN = 0.3


def make_claim() -> ClaimSubmission:
    return ClaimSubmission(
        event_date=date(2024, 12, 15),
        amount=Decimal("150.00"),
        invoice_number="RCP-1",
        policy_number="POL-1",
        source_email_id="mail-1",
        source_filename="r.jpg",
        extraction_confidence=0.95,
    )


@pytest.fixture
def prefix() -> str:
    return f"test-breaker-{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> BreakerStore:
    if request.param == "memory":
        return MemoryBreakerStore()
    client = request.getfixturevalue("redis_client")
    return RedisBreakerStore(client, prefix=request.getfixturevalue("prefix"))


def test_closed_open_half_open_closed(store: BreakerStore):
    breaker = CircuitBreaker(store, threshold=2, cooldown_s=COOLDOWN, probe_ttl_s=5)
    assert breaker.state == "closed"
    assert breaker.before_call() is False
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"

    with pytest.raises(CircuitOpen) as info:
        breaker.before_call()
    assert 0 < info.value.remaining_s <= COOLDOWN

    time.sleep(COOLDOWN + 0.05)
    assert breaker.state == "half-open"
    assert breaker.before_call() is True  # the one probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # everyone else waits for the probe

    breaker.record_failure()  # the probe failed: open again for a full cool-down
    assert breaker.state == "open"
    time.sleep(COOLDOWN + 0.05)
    assert breaker.before_call() is True
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.before_call() is False


def test_success_resets_the_consecutive_count(store: BreakerStore):
    breaker = CircuitBreaker(store, threshold=2, cooldown_s=COOLDOWN)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_a_dead_prober_frees_the_slot_after_its_ttl(store: BreakerStore):
    breaker = CircuitBreaker(store, threshold=1, cooldown_s=0.1, probe_ttl_s=0.2)
    breaker.record_failure()
    time.sleep(0.15)
    assert breaker.before_call() is True  # this prober never reports back
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    time.sleep(0.25)
    assert breaker.before_call() is True


def test_redis_keys_carry_ttls(redis_client: redis.Redis, prefix: str):
    breaker = CircuitBreaker(
        RedisBreakerStore(redis_client, prefix=prefix), threshold=1, cooldown_s=COOLDOWN
    )
    breaker.record_failure()
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    assert keys
    assert all(redis_client.pttl(k) > 0 for k in keys)


def test_unreachable_redis_fails_open():
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    breaker = CircuitBreaker(RedisBreakerStore(dead), threshold=1, cooldown_s=10)
    breaker.record_failure()
    assert breaker.before_call() is False  # no state, no blocking


def _client(url: str, breaker: CircuitBreaker) -> NcbClient:
    return NcbClient(
        url,
        KEY,
        timeout_s=1,
        max_attempts=1,
        base_delay_s=0.01,
        max_delay_s=0.02,
        breaker=breaker,
    )


def test_client_fails_fast_while_open_then_half_opens(store: BreakerStore):
    breaker = CircuitBreaker(store, threshold=2, cooldown_s=COOLDOWN, probe_ttl_s=5)
    with StandinServer(api_key=KEY) as standin, _client(standin.url, breaker) as client:
        standin.state.fail_next(503, count=100)
        for job in ("job-1", "job-2"):
            with pytest.raises(NcbUnavailable, match="HTTP 503"):
                client.submit(job, make_claim())
        assert len(standin.state.requests) == 2

        started = time.monotonic()
        with pytest.raises(NcbUnavailable) as info:
            client.submit("job-3", make_claim())
        assert info.value.reason == "circuit open"
        assert 0 < info.value.retry_after_s <= COOLDOWN
        assert time.monotonic() - started < 0.1
        assert len(standin.state.requests) == 2  # NCB was not called

        time.sleep(COOLDOWN + 0.05)  # half-open; the probe still fails
        with pytest.raises(NcbUnavailable, match="HTTP 503"):
            client.submit("job-3", make_claim())
        assert len(standin.state.requests) == 3
        assert breaker.state == "open"

        standin.state.clear_faults()
        time.sleep(COOLDOWN + 0.05)  # half-open; NCB is back
        result = client.submit("job-3", make_claim())
        assert result.status_code == 201
        assert breaker.state == "closed"


def test_breaker_is_shared_between_workers_through_redis(redis_url: str, prefix: str):
    def worker_breaker() -> CircuitBreaker:
        # Each worker process has its own connection; only Redis is shared.
        own = redis.Redis.from_url(redis_url)
        return CircuitBreaker(RedisBreakerStore(own, prefix=prefix), threshold=2, cooldown_s=5)

    with StandinServer(api_key=KEY) as standin:
        standin.stop()  # connection refused
        with (
            _client(standin.url, worker_breaker()) as a,
            _client(standin.url, worker_breaker()) as b,
        ):
            for job in ("job-1", "job-2"):
                with pytest.raises(NcbUnavailable, match="ConnectError"):
                    a.submit(job, make_claim())
            standin.start()
            with pytest.raises(NcbUnavailable) as info:
                b.submit("job-3", make_claim())  # b never failed itself
            assert info.value.reason == "circuit open"
            assert standin.state.requests == []
