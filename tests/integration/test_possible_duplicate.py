"""The same receipt claimed twice goes to a person as ``possible_duplicate``.

Byte-identical resends are ``duplicate`` at intake; these are other bytes with the same
claim (another photo of the receipt, a forward from a second address), found by the
claim fingerprint the ledger keeps on each job (``services.claim_fingerprint``). On
SQLite and PostgreSQL: the lookup, the lock that orders concurrent saves, and the
migration are SQL.
"""

from __future__ import annotations

import email
import io
import shutil
import threading
from collections.abc import Iterator, Mapping
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import redis
from PIL import Image
from sqlalchemy import text

from services.blobs import LocalBlobStore
from services.claim_fingerprint import claim_fingerprint
from services.config import get_settings
from services.demo import SAMPLE_INBOX_DIR
from services.demo.ncb_standin import StandinServer
from services.intake import ingest
from services.ledger import InvalidTransition, JobState, Ledger
from services.ledger.migrate import downgrade
from services.mail import MaildirSource
from services.ncb import NcbClient
from services.ocr.onnx_engine import OnnxOcrEngine
from services.submission import Outcome, submit_job
from tests.support.api_fixtures import Api
from tests.support.ledger_helpers import new_email, new_job
from tests.support.ocr_fixtures import recognise
from workers import cli

pytestmark = pytest.mark.both_databases

S = JobState
CLAIM = {
    "total_amount": "90.80",
    "service_date": "2022-01-29",
    "provider_name": "Kota Medical Clinic",
    "provider_address": None,
    "invoice_number": "T618-01734",
    "tax_amount": "0.00",
    "currency": "MYR",
}
CONFIDENCE = dict.fromkeys(CLAIM, 0.97)
EXIF_ORIENTATION = 0x0112


def _taken(ledger: Ledger) -> str:
    """A job an OCR worker has taken (``ocr_pending``)."""
    job_id = new_job(ledger)
    assert ledger.start_ocr(job_id)
    return job_id


def _save(
    ledger: Ledger,
    job_id: str,
    fields: Mapping[str, str | None] = CLAIM,
    *,
    route: str = "submit",
) -> JobState:
    """Save fields the way recognition does: with the claim's fingerprint."""
    reasons = [] if route == "submit" else [{"code": "low_confidence", "message": "total 0.41"}]
    return ledger.save_extraction(
        job_id,
        fields=fields,
        field_confidence=CONFIDENCE,
        confidence=0.97,
        route=route,
        reasons=reasons,
        page_count=1,
        fingerprints=claim_fingerprint(fields),
    )


def _claim(ledger: Ledger, fields: Mapping[str, str | None] = CLAIM, **kwargs: Any) -> str:
    job_id = _taken(ledger)
    _save(ledger, job_id, fields, **kwargs)
    return job_id


def _flagged_as_duplicate_of(ledger: Ledger, job_id: str) -> str | None:
    """The job a ``possible_duplicate`` job names (checking how it is shown), else None."""
    job = ledger.get_job(job_id)
    codes = [r["code"] for r in job.reasons or ()]
    if "possible_duplicate" not in codes:
        return None
    assert job.state is S.NEEDS_REVIEW
    assert job.reason_code == "possible_duplicate" and codes[0] == "possible_duplicate"
    earlier = job.events[-1].details["possible_duplicate_of"]  # type: ignore[index]
    assert job.reason and f"job {earlier}" in job.reason
    assert job.reasons and job.reasons[0]["message"].startswith(
        f"May be the same receipt as job {earlier}:"
    )
    return str(earlier)


# -- matching --------------------------------------------------------------------------


def test_the_second_claim_of_a_receipt_goes_to_review_naming_the_first(ledger: Ledger) -> None:
    first = _claim(ledger)
    assert ledger.get_job(first).state is S.READY
    assert _flagged_as_duplicate_of(ledger, first) is None

    second = _taken(ledger)
    assert _save(ledger, second) is S.NEEDS_REVIEW
    assert _flagged_as_duplicate_of(ledger, second) == first
    job = ledger.get_job(second)
    assert job.route == "review" and job.fields == CLAIM  # what OCR read is kept
    assert "same invoice number, amount and date" in (job.reason or "")
    assert "Kota" not in (job.reason or "") and "90.80" not in (job.reason or "")  # ids only


@pytest.mark.parametrize(
    "change",
    [
        {"provider_name": "KOTA MEDICAL CLINIC SDN. BHD."},
        {"provider_name": "Kota Medical Cli"},  # OCR cut the name short
        {"provider_name": None},  # or missed it
        {"invoice_number": "t618 01734", "total_amount": "RM 90.8"},
    ],
)
def test_the_same_receipt_read_slightly_differently_still_matches(
    ledger: Ledger, change: dict[str, str | None]
) -> None:
    first = _claim(ledger)
    assert _flagged_as_duplicate_of(ledger, _claim(ledger, {**CLAIM, **change})) == first


@pytest.mark.parametrize(
    "change",
    [
        {"invoice_number": "T618-01735"},  # another receipt, same day, same amount
        {"total_amount": "90.81"},
        {"service_date": "2022-01-30"},
        {"provider_name": "Green Leaf Pharmacy"},  # same number at another provider
        {"total_amount": None},
    ],
)
def test_a_different_claim_is_not_flagged(ledger: Ledger, change: dict[str, str | None]) -> None:
    _claim(ledger)
    other = _claim(ledger, {**CLAIM, **change})
    assert _flagged_as_duplicate_of(ledger, other) is None


def test_without_an_invoice_number_provider_amount_and_date_must_agree(ledger: Ledger) -> None:
    first = _claim(ledger)
    no_invoice = {**CLAIM, "invoice_number": None}
    assert _flagged_as_duplicate_of(ledger, _claim(ledger, no_invoice)) == first
    # Missing on the earlier one works the same way.
    earlier = _claim(ledger, {**no_invoice, "service_date": "2023-05-01"})
    later = _claim(ledger, {**CLAIM, "service_date": "2023-05-01"})
    assert _flagged_as_duplicate_of(ledger, later) == earlier
    # The loose key wants the whole provider name: a cut name is not enough there.
    cut = {**no_invoice, "provider_name": "Kota Medical Cli"}
    assert _flagged_as_duplicate_of(ledger, _claim(ledger, cut)) is None


def test_two_invoice_numbers_are_two_receipts_even_with_the_same_provider(ledger: Ledger) -> None:
    _claim(ledger)
    other = _claim(ledger, {**CLAIM, "invoice_number": "T618-01799"})
    assert _flagged_as_duplicate_of(ledger, other) is None


def test_a_review_item_is_flagged_too_with_its_own_reasons_kept(ledger: Ledger) -> None:
    first = _claim(ledger)
    second = _claim(ledger, route="review")
    assert _flagged_as_duplicate_of(ledger, second) == first
    job = ledger.get_job(second)
    assert [r["code"] for r in job.reasons or ()] == ["possible_duplicate", "low_confidence"]


def test_the_oldest_live_claim_is_named(ledger: Ledger) -> None:
    first = _claim(ledger)
    second = _claim(ledger)
    third = _claim(ledger)
    assert _flagged_as_duplicate_of(ledger, second) == first
    assert _flagged_as_duplicate_of(ledger, third) == first


@pytest.mark.parametrize("state", ["needs_review", "submitted", "done", "failed"])
def test_an_earlier_claim_counts_in_every_live_state(ledger: Ledger, state: str) -> None:
    first = _claim(ledger, route="review" if state == "needs_review" else "submit")
    if state in ("submitted", "done"):
        assert ledger.begin_submit(first)
        ledger.finish_submit(first, "CLM-1")
    if state == "done":
        ledger.mark_done(first)
    if state == "failed":
        ledger.fail(first, "boom", "a later step failed", "test")  # retry sends it on
    assert ledger.get_job(first).state is S(state)
    assert _flagged_as_duplicate_of(ledger, _claim(ledger)) == first


def test_a_rejected_earlier_claim_does_not_count(ledger: Ledger) -> None:
    first = _claim(ledger, route="review")
    ledger.reject(first, "not ours", "user:alice")
    second = _claim(ledger)
    assert ledger.get_job(second).state is S.READY
    assert ledger.find_possible_duplicate(second, claim_fingerprint(CLAIM)) is None


def test_a_job_never_matches_itself(ledger: Ledger) -> None:
    """A redelivered task: two workers took the job, both read it, the second save loses."""
    job_id = _taken(ledger)
    assert ledger.start_ocr(job_id)  # taken again (redelivery)
    assert _save(ledger, job_id) is S.READY
    with pytest.raises(InvalidTransition):
        _save(ledger, job_id)  # recognition counts this as skipped
    assert ledger.find_possible_duplicate(job_id, claim_fingerprint(CLAIM)) is None
    assert ledger.get_job(job_id).state is S.READY
    assert _flagged_as_duplicate_of(ledger, job_id) is None


def test_saves_without_fingerprints_are_not_checked(ledger: Ledger) -> None:
    _claim(ledger)
    job_id = _taken(ledger)
    ledger.save_extraction(
        job_id,
        fields=CLAIM,
        field_confidence=CONFIDENCE,
        confidence=0.97,
        route="submit",
        page_count=1,
    )
    assert ledger.get_job(job_id).state is S.READY


def test_the_lookup_uses_the_fingerprint_indexes(ledger: Ledger, ledger_backend: str) -> None:
    if ledger_backend != "sqlite":
        pytest.skip("PostgreSQL's planner scans a table this small whatever its indexes")
    fingerprint = claim_fingerprint(CLAIM)
    with ledger.engine.connect() as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE (fingerprint_strict = :s"
                    " OR (fingerprint_loose = :l AND fingerprint_strict IS NULL)) AND id != 'x'"
                ),
                {"s": fingerprint.strict, "l": fingerprint.loose},
            )
        )
    assert "ix_jobs_fingerprint_strict" in plan and "ix_jobs_fingerprint_loose" in plan


# -- concurrency -----------------------------------------------------------------------


def test_photos_saved_at_once_by_several_workers_let_one_through(ledger: Ledger) -> None:
    """The check and the save are one transaction behind a lock on the claim's keys."""
    jobs = [_taken(ledger) for _ in range(6)]
    barrier = threading.Barrier(len(jobs))
    states: dict[str, JobState] = {}
    errors: list[BaseException] = []

    def save(job_id: str) -> None:
        try:
            barrier.wait()
            states[job_id] = _save(ledger, job_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(j,)) for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    (winner,) = [j for j, s in states.items() if s is S.READY]
    assert _flagged_as_duplicate_of(ledger, winner) is None
    # Each later save names the oldest (by arrival) of the jobs saved before it.
    views = {j: ledger.get_job(j) for j in jobs}
    saved = {j: next(e.id for e in v.events if e.to_state is S.EXTRACTED) for j, v in views.items()}
    for job_id in jobs:
        if job_id != winner:
            before = [j for j in jobs if saved[j] < saved[job_id]]
            oldest = min(before, key=lambda j: (views[j].created_at, j))
            assert _flagged_as_duplicate_of(ledger, job_id) == oldest


# -- reviewers can still approve -------------------------------------------------------


@pytest.fixture
def broker(redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test Redis database as the broker ``review approve`` queues the submission on."""
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    return redis_url


@pytest.fixture
def ncb() -> Iterator[NcbClient]:
    with StandinServer(api_key="k") as server:
        yield NcbClient(server.url, "k", base_delay_s=0.01, max_delay_s=0.05)


def test_approving_a_possible_duplicate_on_the_command_line_submits_it(
    ledger: Ledger, broker: str, ncb: NcbClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _claim(ledger)  # the earlier claim waits in ready (not yet at NCB)
    second = _claim(ledger)
    assert _flagged_as_duplicate_of(ledger, second)
    monkeypatch.setenv("DATABASE_URL", ledger.url)
    get_settings.cache_clear()
    try:
        assert cli.main(["review", "approve", second, "--by", "alice"]) == 0
    finally:
        get_settings.cache_clear()
    assert ledger.get_job(second).state is S.READY
    assert submit_job(second, ledger=ledger, ncb=ncb).outcome is Outcome.SUBMITTED
    assert ledger.get_job(second).state is S.SUBMITTED


def test_approving_a_possible_duplicate_through_the_api_submits_it(
    api: Api, ncb: NcbClient
) -> None:
    _claim(api.ledger)
    second = _claim(api.ledger)
    assert _flagged_as_duplicate_of(api.ledger, second)
    listed = api.get("/api/v1/exceptions", "viewer", params={"reason_code": "possible_duplicate"})
    assert second in [item["id"] for item in listed.json()["items"]]
    response = api.post(f"/api/v1/exceptions/{second}/approve")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "ready"
    assert api.dispatcher.calls == [("submit", (second,))]
    assert submit_job(second, ledger=api.ledger, ncb=ncb).outcome is Outcome.SUBMITTED


# -- the migration ---------------------------------------------------------------------


def test_upgrading_fingerprints_existing_jobs_and_downgrading_keeps_them(ledger: Ledger) -> None:
    extracted = _claim(ledger)
    no_invoice = _claim(ledger, {**CLAIM, "invoice_number": None, "total_amount": "12.00"})
    waiting = new_job(ledger)  # nothing read yet
    with ledger.engine.begin() as conn:  # as a job saved before 0004 would be
        conn.execute(text("UPDATE jobs SET fingerprint_strict = NULL, fingerprint_loose = NULL"))

    downgrade(ledger.engine, "0003")
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM jobs")).scalar_one() == 3
    ledger.migrate()

    expected = {
        extracted: claim_fingerprint(CLAIM),
        no_invoice: claim_fingerprint({**CLAIM, "invoice_number": None, "total_amount": "12.00"}),
    }
    with ledger.engine.connect() as conn:
        rows = dict(
            (row[0], (row[1], row[2]))
            for row in conn.execute(
                text("SELECT id, fingerprint_strict, fingerprint_loose FROM jobs")
            )
        )
    assert rows[waiting] == (None, None)
    for job_id, fingerprint in expected.items():
        assert rows[job_id] == (fingerprint.strict, fingerprint.loose)
    assert rows[no_invoice][0] is None and rows[no_invoice][1] is not None
    # And the backfilled keys are found: the same receipt again is flagged.
    assert _flagged_as_duplicate_of(ledger, _claim(ledger)) == extracted


# -- end to end: real OCR, intake and recognition --------------------------------------


def _sample_message() -> EmailMessage:
    raw = (SAMPLE_INBOX_DIR / "01_clinic_en_subject.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _photographed_again(data: bytes) -> bytes:
    """The same receipt stored sideways with EXIF orientation 6 and re-encoded: other bytes."""
    image = Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def _forwarded_photo_email() -> bytes:
    """The sample clinic email again, from another address, with the receipt re-shot."""
    message = _sample_message()
    (part,) = message.iter_attachments()
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    again = _photographed_again(data)
    assert again != data
    part.set_content(again, maintype="image", subtype="jpeg", filename="receipt.jpg")
    message.replace_header("Message-ID", "<again.20240602@claims-ocr.example>")
    message.replace_header("From", "Spouse <spouse@example.com>")
    return message.as_bytes()


def test_another_photo_of_a_receipt_in_the_same_batch_goes_to_review(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(SAMPLE_INBOX_DIR / "01_clinic_en_subject.eml", inbox / "a.eml")
    (inbox / "b.eml").write_bytes(_forwarded_photo_email())
    shutil.copy2(SAMPLE_INBOX_DIR / "02_pharmacy_ms_body.eml", inbox / "c.eml")
    blobs = LocalBlobStore(tmp_path / "blobs")
    intake = ingest(MaildirSource(inbox), ledger, blobs)
    assert intake.emails == 3
    by_message = {
        ledger.get_email(ledger.get_job(j).email_id).message_id or "": j for j in intake.new_jobs
    }
    assert len(by_message) == 3  # other bytes: no sha256 duplicate
    first, again, other = (
        by_message[f"<{name}@claims-ocr.example>"]
        for name in ("sample-01.20240601", "again.20240602", "sample-02.20240601")
    )

    report = recognise([first, again, other], ledger=ledger, blobs=blobs, engine=ocr_engine)
    assert not report.failed and not report.skipped
    assert ledger.get_job(first).fields == ledger.get_job(again).fields  # same claim read
    assert first in report.ready  # routes as before
    assert _flagged_as_duplicate_of(ledger, first) is None
    assert again in report.needs_review
    assert _flagged_as_duplicate_of(ledger, again) == first
    assert _flagged_as_duplicate_of(ledger, other) is None

    # A redelivered task for the same jobs changes nothing and flags no one.
    repeat = recognise([first, again], ledger=ledger, blobs=blobs, engine=ocr_engine)
    assert sorted(repeat.skipped) == sorted([first, again])
    assert ledger.get_job(first).state is S.READY
    assert _flagged_as_duplicate_of(ledger, first) is None


def test_a_second_photo_read_by_a_later_task_is_flagged(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    """The earlier claim already submitted, the second photo arrives in another task."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    message = _sample_message()
    (part,) = message.iter_attachments()
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    jobs = []
    for index, content in enumerate((data, _photographed_again(data))):
        key = blobs.put(content)
        job_id, _ = ledger.record_attachment(
            new_email(ledger, policy_number="POL-58213"),
            0,
            "receipt.jpg",
            "image/jpeg",
            len(content),
            key,
            key,
        )
        jobs.append(job_id)
        report = recognise([job_id], ledger=ledger, blobs=blobs, engine=ocr_engine)
        if index == 0:
            assert report.ready == [job_id]
            assert ledger.begin_submit(job_id)
            ledger.finish_submit(job_id, "CLM-1")
    assert _flagged_as_duplicate_of(ledger, jobs[1]) == jobs[0]
