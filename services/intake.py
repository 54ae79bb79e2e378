"""The poller's step: every email in the source becomes ledger records and stored bytes.

An email is marked done in its source only after all of its attachments are durably
recorded (blob written, job row committed), so a crash mid-email means the email is
fetched again and recorded idempotently, never half-lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.blobs import BlobStore
from services.ledger import JobState, Ledger
from services.logs import bound_contextvars, get_logger
from services.mail import IncomingEmail, MailSource, extract_claimant

log = get_logger(__name__)


@dataclass
class IntakeReport:
    emails: int = 0
    attachments: int = 0
    #: Jobs recorded in ``received`` this time: the ones to OCR next.
    new_jobs: list[str] = field(default_factory=list)


def ingest(source: MailSource, ledger: Ledger, blobs: BlobStore) -> IntakeReport:
    report = IntakeReport()
    for email in source.fetch():
        claimant = extract_claimant(email.subject, email.body_text)
        email_id = ledger.record_email(
            email.source,
            email.source_id,
            email.message_id,
            email.received_at,
            email.sender,
            policy_number=claimant.policy_number,
            member_id=claimant.member_id,
            member_name=claimant.member_name,
        )
        with bound_contextvars(email_id=email_id):
            _record_attachments(email, email_id, ledger, blobs, report)
        source.mark_done(email.source_id)
        report.emails += 1
    return report


def _record_attachments(
    email: IncomingEmail, email_id: str, ledger: Ledger, blobs: BlobStore, report: IntakeReport
) -> None:
    for attachment in email.attachments:
        blob_key = blobs.put(attachment.data)
        job_id, created = ledger.record_attachment(
            email_id,
            attachment.part_index,
            attachment.filename,
            attachment.kind or attachment.detected_type or attachment.declared_type,
            attachment.size,
            attachment.sha256,
            blob_key,
            skip_reason=attachment.skip_reason.value if attachment.skip_reason else None,
        )
        report.attachments += 1
        state = ledger.get_job(job_id).state
        if created and state is JobState.RECEIVED:
            report.new_jobs.append(job_id)
        log.info(
            "attachment recorded",
            job_id=job_id,
            created=created,
            state=str(state),
            size=attachment.size,
            sha256=attachment.sha256[:16],
        )
    log.info(
        "email recorded",
        attachments=len(email.attachments),
        claim_documents=len(email.claim_attachments),
    )
