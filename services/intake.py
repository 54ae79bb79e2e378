"""The poller's step: every email in the source becomes ledger records and stored bytes.

An email is marked done in its source only after all of its attachments are durably
recorded (blob written, job row committed), so a crash mid-email means the email is
fetched again and recorded idempotently, never half-lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from services.blobs import BlobStore
from services.ledger import JobState, Ledger
from services.mail import MailSource, extract_claimant

log = logging.getLogger(__name__)


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
            if created and ledger.get_job(job_id).state is JobState.RECEIVED:
                report.new_jobs.append(job_id)
        source.mark_done(email.source_id)
        report.emails += 1
        log.info(
            "email %s recorded: %d attachments, %d claim documents",
            email_id,
            len(email.attachments),
            len(email.claim_attachments),
        )
    return report
