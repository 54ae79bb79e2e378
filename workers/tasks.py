"""Celery tasks: thin wrappers that take ids, call one domain step each, queue the next.

Every task is safe to run twice. Each reads this process's resources (built once per
worker process, see ``workers.worker``) and hands them to its step.
"""

from __future__ import annotations

from celery import shared_task

from services import metrics
from services.intake import ingest
from services.logs import get_logger
from services.mail import MailSourceError
from services.mailbox_outcomes import mark_outcomes
from services.ncb import BreakerState
from services.recognition import recognise_jobs, should_split
from services.records.delivery import DeliveryReport, deliver_records
from services.recovery import sweep as find_stalled
from services.submission import Outcome, finalize_job, submit_job
from workers.wiring import Resources, process_resources

log = get_logger(__name__)


@shared_task(name="claims.poll")
def poll() -> dict[str, int]:
    r = process_resources()
    try:
        source = r.mail_source
    except MailSourceError as exc:  # e.g. no Google token yet: say so where on-call looks
        log.error("mail source cannot start", status=exc.status, detail=str(exc))
        r.ledger.sources.record_sync(r.settings.mail_source, exc.status, str(exc))
        metrics.record_mail_sync(r.settings.mail_source, exc.status)
        return {"emails": 0, "attachments": 0}
    report = ingest(
        source,
        r.ledger,
        r.blobs,
        max_attachment_bytes=r.settings.max_attachment_bytes,
        max_email_bytes=r.settings.max_email_bytes,
    )
    r.dispatcher.ocr(report.new_jobs)
    marked = mark_outcomes(source, r.ledger)
    log.info(
        "mailbox polled",
        outcomes_marked=marked,
        source_error=report.source_error.status if report.source_error else None,
        emails=report.emails,
        attachments=report.attachments,
        new_jobs=len(report.new_jobs),
        quarantined=report.quarantined,
        left_for_next_poll=report.left_for_next_poll,
    )
    return {"emails": report.emails, "attachments": report.attachments}


@shared_task(name="claims.ocr")
def ocr(job_ids: list[str]) -> None:
    r = process_resources()
    s = r.settings
    if should_split(r.ledger, job_ids):
        log.info("batch taken before: split into single jobs", jobs=len(job_ids))
        for job_id in job_ids:
            r.dispatcher.ocr([job_id])
        return
    try:
        report = recognise_jobs(
            job_ids,
            ledger=r.ledger,
            blobs=r.blobs,
            engine=r.ocr_engine,
            limits=r.page_limits,
            threshold=s.ocr_high_confidence_threshold,
            max_attempts=s.max_ocr_attempts,
            member_id_as_policy=s.ncb_member_id_as_policy,
            currency=s.claim_currency,
        )
    except Exception as exc:
        if len(job_ids) > 1:
            # Do not let one document's failure sink its batch-mates: retry one by one.
            log.exception("OCR batch failed; re-queued one job at a time", jobs=len(job_ids))
            for job_id in job_ids:
                r.dispatcher.ocr([job_id])
            return
        log.exception("OCR failed", job_id=job_ids[0])
        r.ledger.fail(
            job_ids[0],
            "ocr_error",
            f"OCR failed with {type(exc).__name__}; see the OCR worker log. Retry once fixed.",
            "worker:ocr",
        )
        return
    for job_id in report.ready:
        r.dispatcher.submit(job_id)


@shared_task(name="claims.submit")
def submit(job_id: str) -> str:
    r = process_resources()
    result = submit_job(
        job_id,
        ledger=r.ledger,
        ncb=r.ncb,
        member_id_as_policy=r.settings.ncb_member_id_as_policy,
        max_hold_s=r.settings.ncb_max_hold_s,  # NCB's Retry-After pauses every worker
    )
    if result.outcome is Outcome.SUBMITTED:
        r.dispatcher.finalize(job_id)
    elif result.outcome is Outcome.AUTH_FAILED:
        # Hold every submission (all workers share the breaker) until a person fixes
        # the credentials; the sweep retries one after the pause.
        r.breaker.hold(r.settings.ncb_auth_pause_s)
    return result.outcome.value


@shared_task(name="claims.finalize")
def finalize(job_id: str) -> bool:
    r = process_resources()
    queued = finalize_job(job_id, ledger=r.ledger)
    _deliver(r)
    return queued


@shared_task(name="claims.deliver")
def deliver() -> dict[str, int]:
    return vars(_deliver(process_resources()))


def _deliver(r: Resources) -> DeliveryReport:
    # A destination that failed is tried again on the next sweep, not an hour later.
    return deliver_records(
        r.ledger,
        audit=r.audit_log,
        archive=r.archive,
        blobs=r.blobs,
        retry_after_s=r.settings.sweep_interval_s,
    )


@shared_task(name="claims.sweep")
def sweep() -> dict[str, int]:
    r = process_resources()
    s = r.settings
    found = find_stalled(
        r.ledger,
        stale_after_s=s.stale_after_s,
        submit_stale_after_s=s.submit_stale_after,
        retry_after_s=s.sweep_interval_s,
        submit_paused=r.breaker.state is BreakerState.OPEN,
    )
    r.dispatcher.ocr(found.ocr)
    for job_id in found.submit:
        r.dispatcher.submit(job_id)
    for job_id in found.finalize:
        r.dispatcher.finalize(job_id)
    if r.ledger.outbox.has_due():
        r.dispatcher.deliver()
    # Labels follow the jobs within a sweep, not a poll interval (a person's approval).
    try:
        mark_outcomes(r.mail_source, r.ledger)
    except MailSourceError as exc:  # the poll records the source's health
        log.warning("email outcomes not marked", status=exc.status)
    counts = {name: len(ids) for name, ids in vars(found).items()}
    if any(counts.values()):
        log.info("sweep re-queued stalled work", **counts)
    return counts
