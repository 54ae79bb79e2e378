"""The OCR worker's step: a batch of jobs -> one engine call -> fields routed in the ledger.

``services.claim_reader`` turns bytes into claim fields; this step adds the ledger
around it: which jobs to take, attempts, claim rules, and where each job goes next.

Safe to run twice: a job already past OCR is left alone, and one taken again after a
worker died counts an attempt; past ``max_attempts`` (a page that keeps killing its
worker) it fails with a clear reason instead of looping forever. A batch any of whose
jobs was taken before is split (:func:`should_split`), so such a document fails alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from services import metrics
from services.blobs import BlobStore
from services.claim_fingerprint import claim_fingerprint
from services.claim_reader import DocumentResult, read_documents
from services.extraction import ClaimExtraction, Reason
from services.ledger import InvalidTransition, JobState, JobView, Ledger, StaleState
from services.logs import bound_contextvars, get_logger
from services.ocr.engine import OcrEngine
from services.ocr.pages import PageLimits

log = get_logger(__name__)

ACTOR = "worker:ocr"


@dataclass
class RecognitionReport:
    ready: list[str] = field(default_factory=list)
    needs_review: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def ocr_attempts(job: JobView) -> int:
    """How many times a worker has taken this job for OCR (from the event trail)."""
    return sum(1 for e in job.events if e.to_state is JobState.OCR_PENDING)


def should_split(ledger: Ledger, job_ids: Sequence[str]) -> bool:
    """A batch part of which was taken before (its worker died, or the sweep re-sent it)
    is split into single jobs, so a document that kills its worker fails alone instead of
    taking its batch-mates with it."""
    return len(job_ids) > 1 and any(
        ledger.get_job(job_id).state is JobState.OCR_PENDING for job_id in job_ids
    )


def policy_number(job: JobView, *, member_id_as_policy: bool) -> str | None:
    """The number NCB files the claim under: from the email, not the receipt."""
    email = job.email
    return email.policy_number or (email.member_id if member_id_as_policy else None)


def apply_claim_rules(extraction: ClaimExtraction, policy_number: str | None) -> ClaimExtraction:
    """What NCB needs beyond a confident receipt: a policy number (from the email, not
    the receipt) and an invoice number. Without them the claim goes to a person."""
    missing = []
    if not policy_number:
        missing.append(
            Reason("missing_policy_number", "The email gives no policy number, which NCB needs.")
        )
    if not extraction.fields.get("invoice_number"):
        missing.append(Reason("missing_invoice_number", "No invoice or receipt number was found."))
    if not missing:
        return extraction
    return replace(extraction, route="review", reasons=[*extraction.reasons, *missing])


def recognise_jobs(
    job_ids: Sequence[str],
    *,
    ledger: Ledger,
    blobs: BlobStore,
    engine: OcrEngine,
    limits: PageLimits,
    threshold: float,
    max_attempts: int,
    member_id_as_policy: bool = False,
    currency: str = "MYR",
) -> RecognitionReport:
    report = RecognitionReport()
    documents: list[tuple[str, bytes]] = []
    taken: dict[str, JobView] = {}
    for job_id in job_ids:
        if not ledger.start_ocr(job_id, actor=ACTOR):
            report.skipped.append(job_id)  # already past OCR: a repeated task
            continue
        job = taken[job_id] = ledger.get_job(job_id)
        attempts = ocr_attempts(job)
        if attempts > max_attempts:
            log.warning("ocr attempts exhausted", job_id=job_id, attempts=attempts - 1)
            ledger.fail(
                job_id,
                "ocr_attempts_exhausted",
                f"OCR was started {attempts - 1} times without finishing (the worker died "
                "each time); the document is set aside for a person.",
                ACTOR,
            )
            report.failed.append(job_id)
            continue
        try:
            documents.append((job_id, blobs.get(job.blob_key)))
        except (OSError, KeyError):
            log.error("attachment bytes missing", job_id=job_id, email_id=job.email_id)
            ledger.fail(job_id, "blob_missing", "The stored attachment bytes are missing.", ACTOR)
            report.failed.append(job_id)

    started = time.perf_counter()
    results = read_documents(
        engine, documents, limits=limits, threshold=threshold, currency=currency
    )
    if documents:
        pages = sum(r.page_count for r in results)
        metrics.record_ocr_batch(engine.name, pages, time.perf_counter() - started)
    for result in results:
        with bound_contextvars(job_id=result.key, email_id=taken[result.key].email_id):
            _record(result, taken[result.key], ledger, report, member_id_as_policy)
    return report


def _record(
    result: DocumentResult,
    job: JobView,
    ledger: Ledger,
    report: RecognitionReport,
    member_id_as_policy: bool,
) -> None:
    """Save one document's result: failed with its reason, or fields routed onward.

    The claim's fingerprint goes with the fields, so a claim matching another live
    job's (the same receipt photographed again, or forwarded from a second address) is
    sent to a person as ``possible_duplicate`` instead of being paid twice (a claim
    already routed to review is flagged too). The ledger checks inside the save's own transaction
    (``Ledger.save_extraction``), not here before it: two photos of one receipt saved at
    once by two workers must not both see "no earlier claim".
    """
    if result.error_code is not None:
        reason = result.extraction.reasons[0]
        log.info("document unreadable", reason=reason.code, pages=result.page_count)
        ledger.fail(result.key, reason.code, reason.message, ACTOR)
        report.failed.append(result.key)
        return
    policy = policy_number(job, member_id_as_policy=member_id_as_policy)
    extraction = apply_claim_rules(result.extraction, policy)
    fingerprint = claim_fingerprint(extraction.fields)
    try:
        state = ledger.save_extraction(
            result.key,
            fields=extraction.fields,
            field_confidence=extraction.field_confidence,
            confidence=extraction.confidence,
            route=extraction.route,
            reasons=[{"code": r.code, "message": r.message} for r in extraction.reasons],
            page_count=result.page_count,
            actor=ACTOR,
            field_evidence=extraction.evidence_json(),
            fingerprints=fingerprint,
        )
    except (StaleState, InvalidTransition):
        report.skipped.append(result.key)  # a redelivered twin finished it first
        return
    (report.ready if state is JobState.READY else report.needs_review).append(result.key)
    route, codes = extraction.route, [r.code for r in extraction.reasons]
    if state is JobState.NEEDS_REVIEW and fingerprint:
        # The ledger may have added possible_duplicate: count and log what it stored.
        route = "review"
        codes = [r["code"] for r in ledger.get_job(result.key).reasons or ()]
    metrics.record_confidence(extraction.field_confidence, extraction.confidence)
    metrics.record_route(route, codes)
    log.info(
        "document read",
        pages=result.page_count,
        ocr_seconds=round(result.ocr_seconds, 3),
        confidence=round(extraction.confidence, 3),
        state=str(state),
        reasons=codes,
    )
