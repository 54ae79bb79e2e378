"""Each pipeline step is safe to run twice (real ledger, OCR model, NCB over HTTP).

Celery may deliver a task twice (late acks, a worker lost, the sweep re-queuing);
whatever runs again must not OCR into a settled job, submit a claim twice, or write a
second audit row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.blobs import LocalBlobStore
from services.demo import SAMPLE_INBOX_DIR
from services.demo.ncb_standin import StandinServer
from services.intake import ingest
from services.ledger import JobState, Ledger
from services.mail import MaildirSource
from services.ncb import NcbClient
from services.ocr.onnx_engine import OnnxOcrEngine
from services.records import CsvAuditLog, LocalArchive
from services.records.delivery import deliver_records
from services.recovery import sweep
from services.submission import Outcome, finalize_job, submit_job
from tests.support.ocr_fixtures import recognise

pytestmark = pytest.mark.slow


def _one_sample_email(tmp_path: Path) -> tuple[MaildirSource, LocalBlobStore]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(SAMPLE_INBOX_DIR / "01_clinic_en_subject.eml", inbox)
    return MaildirSource(inbox), LocalBlobStore(tmp_path / "blobs")


def test_every_step_twice_gives_one_claim_one_row_one_archive(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    source, blobs = _one_sample_email(tmp_path)

    # Intake twice: the second time the email is done in its source and nothing is new.
    first = ingest(source, ledger, blobs)
    assert (first.emails, len(first.new_jobs)) == (1, 1)
    assert ingest(source, ledger, blobs).emails == 0
    (job_id,) = first.new_jobs

    report = recognise([job_id], ledger=ledger, blobs=blobs, engine=ocr_engine)
    assert report.ready == [job_id]
    again = recognise([job_id], ledger=ledger, blobs=blobs, engine=ocr_engine)
    assert again.skipped == [job_id] and not again.ready

    audit = CsvAuditLog(tmp_path / "audit.csv")
    archive = LocalArchive(tmp_path / "archive")
    with StandinServer(api_key="k") as ncb:
        client = NcbClient(ncb.url, "k", base_delay_s=0.01, max_delay_s=0.05)
        assert submit_job(job_id, ledger=ledger, ncb=client).outcome is Outcome.SUBMITTED
        assert submit_job(job_id, ledger=ledger, ncb=client).outcome is Outcome.NOT_READY
        # Finalising queues the records once; delivering twice writes them once.
        assert finalize_job(job_id, ledger=ledger)
        assert finalize_job(job_id, ledger=ledger)
        records = dict(ledger=ledger, audit=audit, archive=archive, blobs=blobs)
        assert deliver_records(**records).done == 1
        assert deliver_records(**records).done == 0
        assert not finalize_job(job_id, ledger=ledger)
        claims = ncb.state.claims

    job = ledger.get_job(job_id)
    assert job.state is JobState.DONE
    assert [c["idempotency_key"] for c in claims] == [job_id]
    assert job.ncb_reference == claims[0]["claim_reference"]
    assert [row.job_id for row in audit.rows()] == [job_id]
    assert archive.find(job_id) is not None
    assert not any(
        vars(sweep(ledger, stale_after_s=0, retry_after_s=0, submit_paused=False)).values()
    )


def test_a_claim_not_in_the_configured_currency_goes_to_review(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    """CLAIM_CURRENCY reaches extraction: the same Malaysian receipt that submits in MYR
    goes to a person when claims are paid in euros."""
    source, blobs = _one_sample_email(tmp_path)
    (job_id,) = ingest(source, ledger, blobs).new_jobs

    report = recognise([job_id], ledger=ledger, blobs=blobs, engine=ocr_engine, currency="EUR")

    assert report.needs_review == [job_id]
    codes = [r["code"] for r in ledger.get_job(job_id).reasons or ()]
    assert "foreign_currency" in codes


def test_a_job_that_keeps_killing_its_worker_fails_with_a_reason(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    source, blobs = _one_sample_email(tmp_path)
    (job_id,) = ingest(source, ledger, blobs).new_jobs
    # Three workers took it and died before saving anything.
    for _ in range(3):
        assert ledger.start_ocr(job_id)
    report = recognise([job_id], ledger=ledger, blobs=blobs, engine=ocr_engine)
    assert report.failed == [job_id]
    job = ledger.get_job(job_id)
    assert job.state is JobState.FAILED
    assert job.reason_code == "ocr_attempts_exhausted"
