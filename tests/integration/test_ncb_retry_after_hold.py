"""NCB's Retry-After pauses every submission, however long, up to NCB_MAX_HOLD_S.

Real ledger, real Redis breaker (shared by all workers), real HTTP to the stand-in. A
wait longer than the client sleeps inline used to be dropped: the claim went back to
``ready`` with the breaker closed and was sent again seconds later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from structlog.testing import capture_logs

from services.demo.ncb_standin import StandinServer
from services.ledger import JobState, Ledger
from services.ncb import (
    BreakerState,
    CircuitBreaker,
    NcbClient,
    NcbUnavailable,
    RedisBreakerStore,
)
from services.recovery import sweep
from services.submission import Outcome, submit_job
from tests.support.ledger_helpers import new_job

KEY = "test-key"
SENDABLE = {"total_amount": "150.00", "service_date": "2024-12-15", "invoice_number": "RCP-1"}


def ready_job(ledger: Ledger, invoice: str = "RCP-1") -> str:
    """A job NCB would accept, in ``ready``."""
    job_id = new_job(ledger)
    ledger.start_ocr(job_id)
    ledger.save_extraction(
        job_id,
        fields={**SENDABLE, "invoice_number": invoice},
        field_confidence=dict.fromkeys(SENDABLE, 0.97),
        confidence=0.97,
        route="submit",
        page_count=1,
    )
    return job_id


@pytest.fixture
def standin() -> Iterator[StandinServer]:
    with StandinServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def breaker(redis_client: redis.Redis) -> CircuitBreaker:
    """The breaker every worker shares through Redis."""
    store = RedisBreakerStore(redis_client, prefix=f"test-hold-{uuid.uuid4().hex}")
    return CircuitBreaker(store, threshold=5, cooldown_s=1.0, probe_ttl_s=5.0)


def client(url: str, breaker: CircuitBreaker, **kwargs: float) -> NcbClient:
    """A client that sleeps at most 1 s inline for a Retry-After (NCB_MAX_RETRY_AFTER_S)."""
    options: dict[str, float] = {
        "timeout_s": 2.0,
        "max_attempts": 3,
        "base_delay_s": 0.01,
        "max_delay_s": 0.05,
        "max_retry_after_s": 1.0,
    }
    options.update(kwargs)
    return NcbClient(url, KEY, breaker=breaker, **options)  # type: ignore[arg-type]


def sweep_now(ledger: Ledger, breaker: CircuitBreaker) -> list[str]:
    """The sweep task's submit list, with everything old enough to re-send."""
    paused = breaker.state is BreakerState.OPEN
    found = sweep(ledger, stale_after_s=1200, retry_after_s=0, submit_paused=paused)
    return found.submit


def statuses(standin: StandinServer) -> list[int]:
    return [r["status"] for r in standin.state.requests]


def test_a_long_retry_after_holds_every_submission_until_it_elapses(
    ledger: Ledger, standin: StandinServer, breaker: CircuitBreaker
) -> None:
    job_id, other_id = ready_job(ledger, "RCP-1"), ready_job(ledger, "RCP-2")
    standin.state.rate_limit_next(1, retry_after_s=3)
    with client(standin.url, breaker) as ncb:
        asked_at = time.monotonic()
        first = submit_job(job_id, ledger=ledger, ncb=ncb, max_hold_s=60)
        assert first.outcome is Outcome.DEFERRED
        assert first.retry_after_s == pytest.approx(3, abs=0.01)
        job = ledger.get_job(job_id)
        assert (job.state, job.reason_code) == (JobState.READY, "ncb_retry_after")
        assert breaker.state is BreakerState.OPEN

        # During the pause: the redelivered task, another claim and the sweep send nothing.
        assert submit_job(job_id, ledger=ledger, ncb=ncb).outcome is Outcome.DEFERRED
        assert submit_job(other_id, ledger=ledger, ncb=ncb).outcome is Outcome.DEFERRED
        assert sweep_now(ledger, breaker) == []
        assert statuses(standin) == [429]

        while breaker.state is BreakerState.OPEN:
            time.sleep(0.05)
        assert time.monotonic() - asked_at >= 2.9

        resend = sweep_now(ledger, breaker)
        assert sorted(resend) == sorted([job_id, other_id])
        for queued in resend:
            assert submit_job(queued, ledger=ledger, ncb=ncb).outcome is Outcome.SUBMITTED

    assert statuses(standin) == [429, 201, 201]
    assert sorted(c["idempotency_key"] for c in standin.state.claims) == sorted([job_id, other_id])


def test_a_pause_longer_than_the_cap_is_cut_and_logged_as_an_error(
    ledger: Ledger,
    standin: StandinServer,
    breaker: CircuitBreaker,
) -> None:
    job_id = ready_job(ledger)
    standin.state.rate_limit_next(1, retry_after_s=120)
    with client(standin.url, breaker) as ncb:
        with capture_logs() as logs:
            outcome = submit_job(job_id, ledger=ledger, ncb=ncb, max_hold_s=2)
        assert outcome.outcome is Outcome.DEFERRED and outcome.retry_after_s == 2
        assert 0 < breaker.store.open_remaining(breaker.name) <= 2
        [alert] = [e for e in logs if e["log_level"] == "error"]
        assert "NCB_MAX_HOLD_S" in alert["event"]
        assert (alert["asked_s"], alert["max_hold_s"]) == (120, 2)

        while breaker.state is BreakerState.OPEN:
            time.sleep(0.05)
        assert sweep_now(ledger, breaker) == [job_id]
        assert submit_job(job_id, ledger=ledger, ncb=ncb).outcome is Outcome.SUBMITTED
    assert statuses(standin) == [429, 201]


def test_a_503_retry_after_longer_than_inline_is_handed_back_not_slept(
    standin: StandinServer, breaker: CircuitBreaker
) -> None:
    from tests.integration.test_ncb_client import make_claim

    standin.state.fail_next(503, retry_after_s=120)
    started = time.monotonic()
    with client(standin.url, breaker) as ncb, pytest.raises(NcbUnavailable) as info:
        ncb.submit("job-503-long", make_claim())
    assert time.monotonic() - started < 2
    assert info.value.retry_after_s == 120 and info.value.ncb_asked
    assert statuses(standin) == [503]


def test_a_shorter_hold_never_cuts_a_longer_one(breaker: CircuitBreaker) -> None:
    breaker.hold(30)
    breaker.hold(1)
    assert breaker.store.open_remaining(breaker.name) > 25
