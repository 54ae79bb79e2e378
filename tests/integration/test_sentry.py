"""Sentry: the real sentry-sdk, a DSN pointing at a local stand-in that records envelopes.

An exception inside a real HTTP request to the admin API (whose JSON body, query string,
cookie and headers hold a member's name, policy number, amount, email address and
address, all also in local variables) and one inside a Celery task body arrive tagged
with the release and environment, and none of the planted values is anywhere in the
bytes sent. Off (nothing sent, nothing set up) without SENTRY_DSN.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from celery import Celery
from fastapi import Request
from limits.storage import MemoryStorage

from services.api.app import create_app
from services.api.ratelimit import RateLimiter
from services.blobs import LocalBlobStore
from services.config import Settings
from services.ledger import Ledger
from services.sentry import init_sentry, release, scrub_event, scrub_text
from services.threaded_server import ThreadedServer
from tests.support.api_fixtures import RecordingDispatcher
from tests.support.sentry_standin import SentryStandin

MEMBER = "Nurul Aisyah binti Kamarudin"
POLICY = "PLC-2024-778812"
AMOUNT = "1,234.56"
EMAIL = "nurul.aisyah@example.com"
ADDRESS = "12 Jalan Ampang Hilir, 55000 Kuala Lumpur"
PLANTED = (MEMBER, POLICY, AMOUNT, "1234.56", EMAIL, ADDRESS, "Nurul", "Ampang")
JOB_ID = "550e8400-e29b-41d4-a716-446655440000"


def assert_nothing_planted(raw: bytes) -> None:
    for value in PLANTED:
        assert value.encode() not in raw, f"{value!r} reached Sentry"
        assert value.lower().encode() not in raw.lower(), f"{value!r} reached Sentry"


@pytest.fixture
def standin() -> Iterator[SentryStandin]:
    with SentryStandin() as server:
        yield server
    sentry_sdk.init()  # no DSN: the global client stops sending


def sentry_settings(dsn: str, **extra: Any) -> Settings:
    return Settings(
        SENTRY_DSN=dsn,
        CLAIMS_OCR_ENV="demo",
        REDIS_URL="redis://127.0.0.1:1/0",
        **extra,
    )


def wait_for_events(standin: SentryStandin, count: int = 1) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    deadline = time.monotonic() + 5
    while len(standin.events()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return standin.events()


def test_an_api_crash_arrives_tagged_and_without_claim_data(
    standin: SentryStandin, tmp_path: Path
) -> None:
    settings = sentry_settings(standin.dsn, SENTRY_ENVIRONMENT="staging")
    assert init_sentry(settings, "api")
    options = sentry_sdk.get_client().options
    assert not options["send_default_pii"] and not options["include_local_variables"]
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    app = create_app(
        ledger=ledger,
        blobs=LocalBlobStore(tmp_path / "blobs"),
        dispatcher=RecordingDispatcher(),
        settings=settings,
        rate_limiter=RateLimiter("1000/minute", MemoryStorage()),
    )

    async def file_claim(request: Request) -> None:
        claim = await request.json()
        member, address = claim["member_name"], claim["address"]  # locals: never sent
        raise ValueError(
            f"cannot file the claim of {claim['email']} under {claim['policy_number']} "
            f"for RM {claim['amount']} ({len(member) + len(address)})"
        )

    app.add_api_route("/crash", file_claim, methods=["POST"])
    body = {
        "member_name": MEMBER,
        "policy_number": POLICY,
        "amount": AMOUNT,
        "email": EMAIL,
        "address": ADDRESS,
    }
    with ThreadedServer(app) as server:
        response = httpx.post(
            f"{server.url}/crash",
            params={"member": MEMBER, "email": EMAIL},
            json=body,
            headers={"Cookie": f"member={MEMBER}", "X-Claimant": EMAIL, "X-Request-ID": "req-1"},
            timeout=10,
        )
    assert response.status_code == 500
    events = wait_for_events(standin)
    ledger.close()

    [event] = [e for e in events if e.get("exception")]
    assert event["release"] == release()
    assert event["environment"] == "staging"
    assert event["tags"]["component"] == "api"
    exc = event["exception"]["values"][-1]
    assert exc["type"] == "ValueError"
    assert "[email]" in exc["value"] and "[number]" in exc["value"]
    assert any(f.get("function") == "file_claim" for f in exc["stacktrace"]["frames"])
    assert event["request"]["method"] == "POST"
    assert event["request"]["headers"]["x-request-id"] == "req-1"
    assert_nothing_planted(standin.raw)


def test_a_celery_task_failure_arrives_tagged_and_without_claim_data(
    standin: SentryStandin,
) -> None:
    assert init_sentry(sentry_settings(standin.dsn), "worker")
    app = Celery("sentry-test", broker="memory://")
    app.conf.task_always_eager = True

    @app.task(name="claims.submit")
    def submit(job_id: str, claim: dict[str, str]) -> None:
        member, address = claim["member_name"], claim["address"]  # locals: never sent
        raise RuntimeError(
            f"job {job_id}: NCB refused {claim['policy_number']} of {claim['email']} "
            f"amount {claim['amount']} ({len(member) + len(address)})"
        )

    claim = {
        "member_name": MEMBER,
        "policy_number": POLICY,
        "amount": AMOUNT,
        "email": EMAIL,
        "address": ADDRESS,
    }
    result = submit.delay(JOB_ID, claim)
    assert result.failed()
    events = wait_for_events(standin)

    [event] = [e for e in events if e.get("exception")]
    assert event["release"] == release()
    assert event["environment"] == "demo"  # SENTRY_ENVIRONMENT unset: CLAIMS_OCR_ENV
    assert event["tags"]["component"] == "worker"
    assert event["transaction"] == "claims.submit"
    value = event["exception"]["values"][-1]["value"]
    assert JOB_ID in value  # ids stay: they are how on-call finds the job
    assert event["extra"] == {"celery-job": {"task_name": "claims.submit"}}
    assert_nothing_planted(standin.raw)


def test_off_without_a_dsn() -> None:
    assert not init_sentry(Settings(CLAIMS_OCR_ENV="demo"), "api")


def test_scrubbing_keeps_ids_and_drops_the_rest() -> None:
    text = f"job {JOB_ID} email {EMAIL} policy {POLICY} amount RM {AMOUNT} sha {'ab' * 16}"
    scrubbed = scrub_text(text)
    assert JOB_ID in scrubbed and "ab" * 16 in scrubbed
    for value in (EMAIL, POLICY, AMOUNT):
        assert value not in scrubbed
    event = {
        "message": f"for {EMAIL}",
        "user": {"email": EMAIL},
        "extra": {"job_id": JOB_ID, "member_name": MEMBER, "nested": {"address": ADDRESS}},
        "contexts": {"claim": {"amount": AMOUNT, "email_id": "e1"}},
        "request": {"url": f"http://h/x?member={MEMBER}", "data": {"a": MEMBER}},
        "breadcrumbs": {"values": [{"message": f"to {EMAIL}", "data": {"body": MEMBER}}]},
        "something_new": MEMBER,
    }
    out = scrub_event(event)
    assert out["extra"] == {"job_id": JOB_ID}
    assert out["contexts"] == {"claim": {"email_id": "e1"}}
    assert out["request"] == {"url": "http://h/x"}
    assert "user" not in out and "something_new" not in out
    assert MEMBER not in str(out) and EMAIL not in str(out)
