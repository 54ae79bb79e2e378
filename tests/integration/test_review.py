"""The exception queue's actions and the ``claims-ocr review`` commands."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
import redis

from services.config import Settings, get_settings
from services.dispatch import Dispatcher
from services.ledger import JobState, Ledger
from services.review import CorrectionError, approve, normalise_corrections, reject, retry
from tests.support.ledger_helpers import drive, new_job
from workers import cli
from workers.wiring import Resources


@pytest.fixture
def broker(
    redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> redis.Redis:
    """The test Redis database, as the broker the review actions queue their next task on."""
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    return redis_client


@pytest.fixture
def dispatcher(broker: redis.Redis, redis_url: str) -> Iterator[Dispatcher]:
    """The Celery dispatcher the wiring builds, on the test broker."""
    resources = Resources(Settings(CELERY_BROKER_URL=redis_url))
    yield resources.dispatcher
    resources.close()


def _queued(client: redis.Redis, queue: str) -> list[dict]:
    messages = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    return [{"task": m["headers"]["task"], "args": m["headers"]["argsrepr"]} for m in messages]


def test_corrections_are_checked_and_normalised() -> None:
    clean = normalise_corrections(
        {"total_amount": "RM 1,234.5", "service_date": " 2024-12-25 ", "invoice_number": ""}
    )
    assert clean == {
        "total_amount": "1234.50",
        "service_date": "2024-12-25",
        "invoice_number": None,
    }
    for bad in (
        {"total_amount": "twelve"},
        {"total_amount": "12.345"},
        {"service_date": "25/12/2024"},
        {"policy": "x"},
    ):
        with pytest.raises(CorrectionError):
            normalise_corrections(bad)


def test_approve_with_corrections_queues_the_submission(
    ledger: Ledger, broker, dispatcher: Dispatcher
) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "needs_review")
    approve(ledger, dispatcher, job_id, {"total_amount": "12.50"}, "user:alice")
    job = ledger.get_job(job_id)
    assert job.state is JobState.READY
    assert job.effective_fields["total_amount"] == "12.50"
    assert job.events[-1].actor == "user:alice"
    assert _queued(broker, "submit") == [{"task": "claims.submit", "args": repr([job_id])}]


def test_reject_needs_a_reason_and_retry_requeues_ocr(
    ledger: Ledger, broker, dispatcher: Dispatcher
) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "needs_review")
    with pytest.raises(CorrectionError):
        reject(ledger, job_id, "  ", "user:bob")
    reject(ledger, job_id, "Not a medical receipt", "user:bob")
    assert ledger.get_job(job_id).state is JobState.REJECTED

    failed = new_job(ledger)
    drive(ledger, failed, "failed@ocr_pending")
    assert retry(ledger, dispatcher, failed, "user:bob") is JobState.RECEIVED
    assert _queued(broker, "ocr") == [{"task": "claims.ocr", "args": repr([[failed]])}]


def test_an_approval_stands_when_the_broker_is_down(ledger: Ledger) -> None:
    """The ledger is the truth: the approval is recorded and the sweep queues it later."""
    resources = Resources(Settings(CELERY_BROKER_URL="redis://127.0.0.1:1/0"))
    job_id = new_job(ledger)
    drive(ledger, job_id, "needs_review")
    started = time.monotonic()
    try:
        approve(ledger, resources.dispatcher, job_id, {}, "user:alice")
    finally:
        resources.close()
    assert time.monotonic() - started < 10
    assert ledger.get_job(job_id).state is JobState.READY


def test_review_commands(
    ledger: Ledger, broker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("DATABASE_URL", ledger.url)
    get_settings.cache_clear()
    job_id = new_job(ledger)
    drive(ledger, job_id, "needs_review")
    try:
        assert cli.main(["review", "list", "--json"]) == 0
        (line,) = capsys.readouterr().out.splitlines()
        assert json.loads(line)["id"] == job_id
        assert cli.main(["review", "show", job_id]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "needs_review"
        assert cli.main(["review", "approve", job_id, "--set", "total_amount=abc"]) == 1
        assert "total_amount" in capsys.readouterr().out
        assert (
            cli.main(["review", "approve", job_id, "--set", "total_amount=9.90", "--by", "cy"]) == 0
        )
        assert ledger.get_job(job_id).corrected_fields == {"total_amount": "9.90"}
        assert cli.main(["review", "reject", job_id, "--reason", "late"]) == 1  # ready now
        assert cli.main(["review", "show", "no-such-job"]) == 1
    finally:
        get_settings.cache_clear()
    assert os.environ["DATABASE_URL"] == ledger.url
