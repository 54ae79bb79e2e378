"""The submitter's steps: send a ready claim to NCB, then audit and archive it.

Each step is safe to repeat. The NCB call carries the job id as its Idempotency-Key, so
a claim re-sent after a crash is answered with the reference NCB already gave; the
audit log keeps one row per job and the archive checks "already archived?" first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from services import metrics
from services.ledger import JobState, Ledger
from services.ledger.outbox import ARCHIVE, AUDIT
from services.logs import bind_contextvars, get_logger
from services.ncb import (
    CircuitBreaker,
    ClaimRejected,
    ClaimSubmission,
    NcbAuthError,
    NcbClient,
    NcbUnavailable,
)
from services.recognition import policy_number
from services.records import AuditRow
from services.records.delivery import archive_payload, audit_payload

log = get_logger(__name__)

ACTOR = "submitter"
#: Default cap on a pause NCB's Retry-After may impose (``NCB_MAX_HOLD_S``).
MAX_HOLD_S = 3600.0


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    NOT_READY = "not_ready"  # another worker has it, or it already moved on
    REJECTED = "rejected"  # NCB (or our own check) refused the data: back to review
    DEFERRED = "deferred"  # NCB unavailable: back in the queue
    AUTH_FAILED = "auth_failed"  # credentials refused: stop submitting, alert


@dataclass(frozen=True)
class SubmissionOutcome:
    outcome: Outcome
    retry_after_s: float | None = None


def build_claim(ledger: Ledger, job_id: str, *, member_id_as_policy: bool) -> ClaimSubmission:
    """The claim NCB receives, from the job's effective (reviewed) fields and its email.

    Raises ``ValueError`` with a sentence for ops when a field cannot be sent.
    """
    job = ledger.get_job(job_id)
    bind_contextvars(email_id=job.email_id)
    fields = job.effective_fields
    policy = policy_number(job, member_id_as_policy=member_id_as_policy)
    try:
        amount = Decimal(str(fields.get("total_amount") or ""))
    except InvalidOperation:
        raise ValueError("The total amount is missing or not a number.") from None
    try:
        event_date = date.fromisoformat(str(fields.get("service_date") or ""))
    except ValueError:
        raise ValueError("The service date is missing or not a YYYY-MM-DD date.") from None
    if not policy:
        raise ValueError("The claim has no policy number.")
    return ClaimSubmission(
        event_date=event_date,
        amount=amount,
        invoice_number=fields.get("invoice_number") or "",
        policy_number=policy,
        source_email_id=job.email.message_id or job.email_id,
        source_filename=job.filename or "",
        extraction_confidence=float(job.confidence or 0.0),
    )


def hold_submissions(breaker: CircuitBreaker, asked_s: float, *, max_hold_s: float) -> float:
    """Pause every worker's NCB calls for the wait NCB asked for, up to ``max_hold_s``.

    The breaker is shared through Redis, so the pause holds for all workers and the
    sweep (which re-sends nothing while it is open). A request longer than the cap is
    cut and logged as an error: that line is the alert. Returns the seconds held.
    """
    held = min(asked_s, max_hold_s)
    if asked_s > max_hold_s:
        log.error(
            "NCB asked for a pause longer than NCB_MAX_HOLD_S; holding for the cap",
            asked_s=round(asked_s, 1),
            max_hold_s=max_hold_s,
        )
    if held > 0:
        breaker.hold(held)
    return held


def submit_job(
    job_id: str,
    *,
    ledger: Ledger,
    ncb: NcbClient,
    member_id_as_policy: bool = False,
    max_hold_s: float = MAX_HOLD_S,
) -> SubmissionOutcome:
    """Send one ready claim to NCB and record the decision.

    When NCB asks to wait (``Retry-After``), every submission is paused through the
    client's shared breaker (see :func:`hold_submissions`), not only this claim.
    """
    if not ledger.begin_submit(job_id, actor=ACTOR):
        metrics.record_ncb_submission("not_ready")
        return SubmissionOutcome(Outcome.NOT_READY)
    try:
        claim = build_claim(ledger, job_id, member_id_as_policy=member_id_as_policy)
    except (ValueError, TypeError) as exc:
        log.info("claim not sendable", reason="invalid_claim")
        ledger.submit_rejected(job_id, "invalid_claim", str(exc), actor=ACTOR)
        metrics.record_ncb_submission("rejected")
        return SubmissionOutcome(Outcome.REJECTED)
    try:
        result = ncb.submit(job_id, claim)
    except ClaimRejected as exc:
        log.info("NCB rejected the claim", code=exc.code, status=exc.status_code)
        ledger.submit_rejected(
            job_id,
            f"ncb_{exc.code.lower()}" if exc.code else "ncb_rejected",
            f"NCB refused the claim: {exc.message}",
            details=exc.details,
            actor=ACTOR,
        )
        metrics.record_ncb_submission("rejected")
        return SubmissionOutcome(Outcome.REJECTED)
    except NcbAuthError as exc:
        ledger.submit_deferred(
            job_id, f"NCB refused our credentials ({exc.status_code}).", code="ncb_auth_failed"
        )
        log.error("NCB refused our credentials: submissions stop", status=exc.status_code)
        metrics.record_ncb_submission("auth_failed")
        return SubmissionOutcome(Outcome.AUTH_FAILED)
    except NcbUnavailable as exc:
        if exc.ncb_asked:
            held = hold_submissions(ncb.breaker, exc.retry_after_s, max_hold_s=max_hold_s)
            log.info("NCB asked to wait: claim deferred", retry_after_s=exc.retry_after_s)
            ledger.submit_deferred(
                job_id,
                f"NCB asked to wait {exc.retry_after_s:.0f}s ({exc.reason}); "
                f"all submissions held for {held:.0f}s.",
                code="ncb_retry_after",
            )
            metrics.record_ncb_submission("deferred")  # NCB itself asked us to wait
            return SubmissionOutcome(Outcome.DEFERRED, held)
        log.info("NCB unavailable: claim deferred", retry_after_s=exc.retry_after_s)
        ledger.submit_deferred(job_id, f"NCB unavailable: {exc.reason}")
        metrics.record_ncb_submission("unavailable")  # down, failing or circuit open
        return SubmissionOutcome(Outcome.DEFERRED, exc.retry_after_s)
    ledger.finish_submit(job_id, result.claim_reference, actor=ACTOR)
    log.info("claim submitted", request_id=result.request_id, attempts=result.attempts)
    metrics.record_ncb_submission("submitted")
    return SubmissionOutcome(Outcome.SUBMITTED)


def finalize_job(job_id: str, *, ledger: Ledger) -> bool:
    """Queue the audit row and the archive upload a submitted job owes (the outbox).

    Delivery (``services.records.delivery``) writes them and then marks the job done.
    Repeating this is harmless: a job's records are queued once. False when the job is
    not ``submitted`` (already done, or never submitted).
    """
    job = ledger.get_job(job_id)
    bind_contextvars(email_id=job.email_id)
    if job.state is not JobState.SUBMITTED:
        return False
    received_at = job.email.received_at or job.created_at
    fields = job.effective_fields
    submitted_at = next(e.at for e in reversed(job.events) if e.to_state is JobState.SUBMITTED)
    # Who decided it goes to NCB: the reviewer who approved it, else the pipeline.
    approver = next(
        (
            e.actor
            for e in job.events
            if e.from_state is JobState.NEEDS_REVIEW and e.to_state is JobState.READY
        ),
        "system",
    )
    amount, service_date = fields.get("total_amount"), fields.get("service_date")
    tax = fields.get("tax_amount")
    row = AuditRow(
        job_id=job_id,
        email_id=job.email_id,
        received_at=received_at,
        sender=job.email.sender_masked,
        attachment=job.filename,
        route="submitted",
        state=str(JobState.DONE),
        actor=approver,
        submitted_at=submitted_at,
        ncb_reference=job.ncb_reference,
        amount=_decimal(amount),
        tax_amount=_decimal(tax),
        service_date=date.fromisoformat(service_date) if service_date else None,
        invoice_number=fields.get("invoice_number"),
        provider=fields.get("provider_name"),
        policy_number=job.email.policy_number,
        confidence=job.confidence,
    )
    new = ledger.outbox.enqueue(
        job_id,
        {
            AUDIT: audit_payload(row),
            ARCHIVE: archive_payload(
                filename=job.filename or "attachment",
                blob_key=job.blob_key,
                received_at=received_at,
                email_id=job.email_id,
            ),
        },
    )
    if new:  # the first finalize after NCB accepted the claim (a repeat queues nothing)
        metrics.record_received_to_submitted(received_at, submitted_at)
    log.info("claim records queued", new=new)
    return True


def _decimal(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value else None
    except InvalidOperation:
        return None
