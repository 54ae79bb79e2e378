"""The NCB client against the stand-in over real HTTP: every row of the contract."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from services.demo.ncb_standin import StandinServer
from services.ncb import (
    CircuitBreaker,
    ClaimRejected,
    ClaimSubmission,
    NcbAuthError,
    NcbClient,
    NcbContract,
    NcbUnavailable,
)
from services.ncb.contract import DEFAULT_TZ

KEY = "test-key"


def make_claim(invoice: str = "RCP-2024-001234", **overrides: object) -> ClaimSubmission:
    fields: dict[str, object] = {
        "event_date": date(2024, 12, 15),
        "amount": Decimal("150.00"),
        "invoice_number": invoice,
        "policy_number": "POL-67890",
        "source_email_id": "18c2f0a",
        "source_filename": "receipt_001.jpg",
        "extraction_confidence": 0.94,
        "submitted_at": datetime(2024, 12, 18, 10, 42, tzinfo=DEFAULT_TZ),
    }
    fields.update(overrides)
    return ClaimSubmission(**fields)  # type: ignore[arg-type]


@pytest.fixture
def standin() -> Iterator[StandinServer]:
    with StandinServer(api_key=KEY) as server:
        yield server


def fast_client(url: str, **kwargs: object) -> NcbClient:
    options: dict[str, object] = {
        "timeout_s": 2.0,
        "max_attempts": 4,
        "base_delay_s": 0.01,
        "max_delay_s": 0.05,
        "breaker": CircuitBreaker(threshold=50, cooldown_s=1.0),
    }
    options.update(kwargs)
    return NcbClient(url, KEY, **options)  # type: ignore[arg-type]


@pytest.fixture
def client(standin: StandinServer) -> Iterator[NcbClient]:
    with fast_client(standin.url) as c:
        yield c


def test_accepted_201_sends_the_contract_exactly(standin: StandinServer, client: NcbClient):
    result = client.submit("job-1", make_claim())

    assert result.status_code == 201
    assert result.claim_reference.startswith("CLM-")
    assert not result.replayed and not result.duplicate
    [claim] = standin.state.claims
    assert claim["claim_reference"] == result.claim_reference
    assert claim["body"] == {
        "Event date": "2024-12-15",
        "Submission Date": "2024-12-18T10:42:00+08:00",
        "Claim Amount": 150.0,
        "Invoice Number": "RCP-2024-001234",
        "Policy Number": "POL-67890",
        "source_email_id": "18c2f0a",
        "source_filename": "receipt_001.jpg",
        "extraction_confidence": 0.94,
    }
    headers = claim["headers"]
    assert headers["authorization_ok"] is True
    assert headers["idempotency_key"] == "job-1"
    assert headers["request_id"] == result.request_id
    assert headers["content_type"] == "application/json"


def test_submission_date_defaults_to_kuala_lumpur_now(standin: StandinServer, client: NcbClient):
    claim = make_claim()
    default = ClaimSubmission(**{**claim.__dict__, "submitted_at": datetime.now(DEFAULT_TZ)})
    fresh = ClaimSubmission(**{k: v for k, v in claim.__dict__.items() if k != "submitted_at"})
    assert fresh.submitted_at.utcoffset() == timedelta(hours=8)
    assert abs(fresh.submitted_at - default.submitted_at) < timedelta(seconds=5)
    client.submit("job-tz", fresh)
    assert standin.state.claims[0]["body"]["Submission Date"].endswith("+08:00")


def test_replay_returns_200_with_the_same_reference(standin: StandinServer, client: NcbClient):
    first = client.submit("job-1", make_claim())
    again = client.submit("job-1", make_claim())

    assert again.status_code == 200 and again.replayed
    assert again.claim_reference == first.claim_reference
    assert len(standin.state.claims) == 1
    assert len(standin.state.requests) == 2


def test_validation_400_is_a_permanent_rejection_with_ncb_reason(
    standin: StandinServer, client: NcbClient
):
    # The stand-in, like NCB, refuses an event after the submission date.
    claim = make_claim(event_date=date(2024, 12, 20))

    with pytest.raises(ClaimRejected) as info:
        client.submit("job-400", claim)

    assert info.value.status_code == 400
    assert info.value.code == "VALIDATION_FAILED"
    assert info.value.details == {"field": "Event date", "reason": "is after the submission date"}
    assert len(standin.state.requests) == 1  # not retried
    assert standin.state.claims == []


def test_wrong_key_raises_auth_error(standin: StandinServer):
    with NcbClient(standin.url, "wrong-key") as c, pytest.raises(NcbAuthError) as info:
        c.submit("job-401", make_claim())
    assert info.value.status_code == 401 and info.value.code == "UNAUTHORIZED"
    assert len(standin.state.requests) == 1  # not retried
    assert standin.state.claims == []


@pytest.mark.parametrize("key", ["", " padded "])
def test_empty_key_is_a_configuration_error(key: str):
    with pytest.raises(ValueError, match="API key"):
        NcbClient("http://127.0.0.1:9", key)


def test_forbidden_403_raises_auth_error(standin: StandinServer, client: NcbClient):
    standin.state.fail_next(403)
    with pytest.raises(NcbAuthError) as info:
        client.submit("job-403", make_claim())
    assert info.value.status_code == 403


def test_duplicate_under_another_key_is_409_with_the_existing_reference(
    standin: StandinServer, client: NcbClient
):
    first = client.submit("job-a", make_claim())
    dup = client.submit("job-b", make_claim())

    assert dup.status_code == 409 and dup.duplicate
    assert dup.claim_reference == first.claim_reference
    assert len(standin.state.claims) == 1
    # A different amount is a different claim.
    other = client.submit("job-c", make_claim(amount=Decimal("151.00")))
    assert other.status_code == 201
    assert other.claim_reference != first.claim_reference


def test_429_waits_at_least_retry_after(standin: StandinServer, client: NcbClient):
    standin.state.rate_limit_next(1, retry_after_s=1)

    started = time.monotonic()
    result = client.submit("job-429", make_claim())
    elapsed = time.monotonic() - started

    assert result.status_code == 201
    assert elapsed >= 1.0
    assert [r["status"] for r in standin.state.requests] == [429, 201]


def test_429_longer_than_we_hold_a_worker_goes_back_to_the_queue(standin: StandinServer):
    standin.state.rate_limit_next(1, retry_after_s=120)
    with fast_client(standin.url, max_retry_after_s=30) as c:
        started = time.monotonic()
        with pytest.raises(NcbUnavailable) as info:
            c.submit("job-429-long", make_claim())
    assert time.monotonic() - started < 1.0
    assert info.value.retry_after_s == 120
    assert len(standin.state.requests) == 1


def test_503_burst_then_recovery_creates_exactly_one_claim(
    standin: StandinServer, client: NcbClient
):
    standin.state.fail_next(503, count=3)

    result = client.submit("job-503", make_claim())

    assert result.status_code == 201 and result.attempts == 4
    requests = standin.state.requests
    assert [r["status"] for r in requests] == [503, 503, 503, 201]
    assert {r["headers"]["idempotency_key"] for r in requests} == {"job-503"}
    request_ids = [r["headers"]["request_id"] for r in requests]
    assert len(set(request_ids)) == 4 and all(request_ids)
    assert len(standin.state.claims) == 1


def test_dropped_connections_are_retried(standin: StandinServer, client: NcbClient):
    standin.state.drop_next(2)
    result = client.submit("job-drop", make_claim())
    assert result.status_code == 201 and result.attempts == 3
    assert len(standin.state.claims) == 1


def test_persistent_5xx_exhausts_bounded_attempts(standin: StandinServer, client: NcbClient):
    standin.state.fail_next(500, count=10)
    with pytest.raises(NcbUnavailable) as info:
        client.submit("job-500", make_claim())
    assert "HTTP 500" in info.value.reason
    assert len(standin.state.requests) == client.max_attempts
    assert info.value.retry_after_s > 0


def test_timeout_is_transient_and_the_retry_replays(standin: StandinServer):
    standin.state.set_latency(0.6)
    with fast_client(standin.url, timeout_s=0.15, max_attempts=2) as c:
        started = time.monotonic()
        with pytest.raises(NcbUnavailable) as info:
            c.submit("job-slow", make_claim())
        assert "timeout" in info.value.reason
        assert time.monotonic() - started < 1.0  # two short timeouts, not the latency

        # The slow attempts still reached NCB; idempotency keeps it to one claim.
        standin.state.set_latency(0)
        deadline = time.monotonic() + 3
        while not standin.state.claims and time.monotonic() < deadline:
            time.sleep(0.05)
        result = c.submit("job-slow", make_claim())
    assert result.status_code == 200 and result.replayed
    assert len(standin.state.claims) == 1


def test_connection_refused_then_back_up(standin: StandinServer, client: NcbClient):
    standin.stop()
    with pytest.raises(NcbUnavailable) as info:
        client.submit("job-down", make_claim())
    assert "ConnectError" in info.value.reason
    assert not client.health()

    standin.start()  # same port, same memory
    assert client.health()
    result = client.submit("job-down", make_claim())
    assert result.status_code == 201
    assert len(standin.state.claims) == 1


def test_custom_field_names_reach_the_tenant(tmp_path):
    contract = NcbContract(
        submit_path="/api/v2/claims",
        fields={"event_date": "ServiceDate", "policy_number": "MemberId"},
        reference_key="ref",
    )
    with StandinServer(api_key=KEY, contract=contract) as server:
        with fast_client(server.url, contract=contract) as c:
            result = c.submit("job-custom", make_claim())
        body = server.state.claims[0]["body"]
    assert result.status_code == 201 and result.claim_reference.startswith("CLM-")
    assert body["ServiceDate"] == "2024-12-15" and body["MemberId"] == "POL-67890"
    assert "Event date" not in body and "Policy Number" not in body


def test_claim_submission_refuses_bad_values():
    with pytest.raises(ValueError, match="timezone-aware"):
        make_claim(submitted_at=datetime(2024, 12, 18, 10, 42))
    with pytest.raises(ValueError, match="two decimal places"):
        make_claim(amount=Decimal("1.005"))
    with pytest.raises(TypeError):
        make_claim(amount=150.0)
    with pytest.raises(ValueError):
        make_claim(extraction_confidence=1.5)
    with pytest.raises(ValueError):
        NcbContract(fields={"no_such_attribute": "X"})


def test_logs_carry_ids_but_no_claim_data(
    standin: StandinServer, client: NcbClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("DEBUG")
    standin.state.fail_next(503)
    client.submit("job-log", make_claim(amount=Decimal("987.65")))
    text = caplog.text
    assert "job-log" in text and "attempt=2" in text and "status=201" in text
    for secret in ("987.65", "POL-67890", "RCP-2024-001234", KEY):
        assert secret not in text


def test_health_against_a_live_standin(standin: StandinServer, client: NcbClient):
    assert client.health()
    assert httpx.get(standin.url + "/health").json() == {"status": "ok"}
