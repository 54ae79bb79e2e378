"""Each step has its own stale time: an interrupted NCB call is not left for the OCR one's.

A submitter killed mid-call leaves its job ``submitting``; NCB may already hold the
claim, which waits for its audit row and archive until the sweep re-sends it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.config import Settings
from services.ledger import JobState, Ledger
from services.recovery import sweep
from tests.support.ledger_helpers import drive, new_job


def test_a_submitting_job_is_recovered_after_the_submit_stale_time_not_the_ocr_one(
    ledger: Ledger,
) -> None:
    stuck = new_job(ledger)
    drive(ledger, stuck, "submitting")
    received = new_job(ledger)
    five_minutes_on = datetime.now(UTC) + timedelta(minutes=5)  # both are this old

    found = sweep(
        ledger,
        stale_after_s=1200,
        submit_stale_after_s=120,
        retry_after_s=30,
        submit_paused=False,
        now=five_minutes_on,
    )

    assert found.unstuck == [stuck]
    assert found.submit == [stuck]  # re-sent at once, with the same Idempotency-Key
    job = ledger.get_job(stuck)
    assert (job.state, job.reason_code) == (JobState.READY, "interrupted")
    assert found.ocr == []  # the OCR step's stale time has not passed
    assert ledger.get_job(received).state is JobState.RECEIVED

    later = sweep(
        ledger,
        stale_after_s=1200,
        submit_stale_after_s=120,
        retry_after_s=30,
        submit_paused=False,
        now=datetime.now(UTC) + timedelta(minutes=21),
    )
    assert later.ocr == [received]


def test_an_interrupted_job_is_not_resent_while_submissions_are_paused(ledger: Ledger) -> None:
    stuck = new_job(ledger)
    drive(ledger, stuck, "submitting")
    found = sweep(
        ledger,
        stale_after_s=1200,
        submit_stale_after_s=120,
        retry_after_s=30,
        submit_paused=True,
        now=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert found.unstuck == [stuck] and found.submit == []
    assert ledger.get_job(stuck).state is JobState.READY


def test_a_submitted_job_is_finalised_after_the_sweep_interval(ledger: Ledger) -> None:
    done_at_ncb = new_job(ledger)
    drive(ledger, done_at_ncb, "submitted")
    found = sweep(
        ledger,
        stale_after_s=1200,
        submit_stale_after_s=120,
        retry_after_s=30,
        submit_paused=True,
        now=datetime.now(UTC) + timedelta(seconds=31),
    )
    assert found.finalize == [done_at_ncb]


def test_submit_stale_time_defaults_a_minute_past_the_clients_longest_call() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    longest_call = 8 * 15 + 7 * 60  # attempts x timeout, waits at NCB_MAX_RETRY_AFTER_S
    assert s.submit_stale_after == longest_call + 60 == 600
    assert s.submit_stale_after < s.stale_after_s
    quick = Settings(_env_file=None, NCB_TIMEOUT_S=5, NCB_MAX_ATTEMPTS=3)  # type: ignore[call-arg]
    assert quick.submit_stale_after == 3 * 5 + 2 * 60 + 60
    fixed = Settings(_env_file=None, SUBMIT_STALE_AFTER_S=90)  # type: ignore[call-arg]
    assert fixed.submit_stale_after == 90


@pytest.mark.parametrize("value", ["0", "-5"])
def test_submit_stale_time_must_be_positive(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBMIT_STALE_AFTER_S", value)
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]
