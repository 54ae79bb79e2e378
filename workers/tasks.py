"""Celery tasks: thin wrappers that read the ledger and call one service step each.

Every task takes ids, not data, and is safe to run twice.
"""

from __future__ import annotations

import logging

from celery.utils.log import get_task_logger

from services.config import get_settings
from services.intake import ingest
from services.ledger import JobState
from services.recognition import recognise_jobs
from services.recovery import sweep as find_stalled
from services.submission import Outcome, finalize_job, submit_job
from workers import context
from workers.app import app

log: logging.Logger = get_task_logger(__name__)


def enqueue_ocr(job_ids: list[str]) -> None:
    """Send jobs to OCR in groups, so one model call reads pages of several jobs."""
    size = get_settings().ocr_batch_size
    for start in range(0, len(job_ids), size):
        ocr.delay(job_ids[start : start + size])


@app.task(name="claims.poll")
def poll() -> dict[str, int]:
    report = ingest(context.mail_source(), context.ledger(), context.blobs())
    enqueue_ocr(report.new_jobs)
    log.info(
        "poll: %d emails, %d attachments, %d new jobs",
        report.emails,
        report.attachments,
        len(report.new_jobs),
    )
    return {"emails": report.emails, "attachments": report.attachments}


@app.task(name="claims.ocr")
def ocr(job_ids: list[str]) -> None:
    settings = get_settings()
    ledger = context.ledger()
    if len(job_ids) > 1 and any(
        ledger.get_job(job_id).state is JobState.OCR_PENDING for job_id in job_ids
    ):
        # Part of this batch was taken before (its worker died, or the sweep re-sent
        # it): split it, so a document that kills its worker fails alone instead of
        # taking its batch-mates with it.
        for job_id in job_ids:
            ocr.delay([job_id])
        return
    try:
        report = recognise_jobs(
            job_ids,
            ledger=ledger,
            blobs=context.blobs(),
            engine=context.engine(),
            limits=context.page_limits(),
            threshold=settings.ocr_high_confidence_threshold,
            max_attempts=settings.max_ocr_attempts,
            member_id_as_policy=settings.ncb_member_id_as_policy,
        )
    except Exception as exc:
        if len(job_ids) > 1:
            # Do not let one document's failure sink its batch-mates: retry one by one.
            log.exception("OCR batch of %d jobs failed; re-queued one by one", len(job_ids))
            for job_id in job_ids:
                ocr.delay([job_id])
            return
        log.exception("OCR of job %s failed", job_ids[0])
        ledger.fail(
            job_ids[0],
            "ocr_error",
            f"OCR failed with {type(exc).__name__}; see the OCR worker log. Retry once fixed.",
            "worker:ocr",
        )
        return
    for job_id in report.ready:
        submit.delay(job_id)


@app.task(name="claims.submit")
def submit(job_id: str) -> str:
    settings = get_settings()
    result = submit_job(
        job_id,
        ledger=context.ledger(),
        ncb=context.ncb(),
        member_id_as_policy=settings.ncb_member_id_as_policy,
    )
    if result.outcome is Outcome.SUBMITTED:
        finalize.delay(job_id)
    elif result.outcome is Outcome.AUTH_FAILED:
        # Hold every submission (all workers share the breaker) until a person fixes
        # the credentials; the sweep retries one after the pause.
        breaker = context.breaker()
        breaker.store.open(breaker.name, settings.ncb_auth_pause_s)
    return result.outcome.value


@app.task(name="claims.finalize")
def finalize(job_id: str) -> bool:
    return finalize_job(
        job_id,
        ledger=context.ledger(),
        blobs=context.blobs(),
        audit=context.audit_log(),
        archive=context.archive(),
    )


@app.task(name="claims.sweep")
def sweep() -> dict[str, int]:
    settings = get_settings()
    found = find_stalled(
        context.ledger(),
        stale_after_s=settings.stale_after_s,
        retry_after_s=settings.sweep_interval_s,
        submit_paused=context.breaker().state == "open",
    )
    enqueue_ocr(found.ocr)
    for job_id in found.submit:
        submit.delay(job_id)
    for job_id in found.finalize:
        finalize.delay(job_id)
    counts = {name: len(ids) for name, ids in vars(found).items()}
    if any(counts.values()):
        log.info("sweep: %s", counts)
    return counts
