"""The poller's step: every email in the source becomes ledger records and stored bytes.

An email is marked done in its source only after it is durably recorded (blobs written,
rows committed), so a crash mid-email means the email is fetched again and recorded
idempotently, never half-lost.

One email never blocks the others. Whatever goes wrong with one (it cannot be parsed,
its claimant details or storage raise, the database refuses a value) it is quarantined:
recorded as one review item that stands for the whole email, with a reason code and
its raw bytes kept for a person, and the poll goes on. Only when even that record
cannot be written (the ledger or the blob store is down) is the email left in the
mailbox for the next poll.

Every attachment ends in a known state, and a person sees every email that may hold a
claim nobody can process: failed uploads (empty, undecodable, oversized parts), emails
with no receipt attached, emails whose structure could not be fully read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from services import metrics
from services.blobs import BlobStore
from services.ledger import WHOLE_EMAIL_PART, JobState, Ledger, is_unavailable
from services.logs import bound_contextvars, get_logger
from services.mail import (
    Attachment,
    IncomingEmail,
    MailParseError,
    MailProblem,
    MailSource,
    MailSourceError,
    RawEmail,
    SkipReason,
    extract_claimant,
    parse_email,
)

log = get_logger(__name__)

WHOLE_EMAIL_NAME = "message.eml"
WHOLE_EMAIL_TYPE = "message/rfc822"
#: Policy numbers and member ids longer than this are not identifiers: a wrong one files
#: a claim on someone else, a missing one only sends it to review.
MAX_IDENTIFIER_LENGTH = 64

#: Parts that look like a failed upload: a person asks the member to send again.
FAILED_UPLOADS = frozenset(
    {
        str(SkipReason.EMPTY_ATTACHMENT),
        str(SkipReason.BROKEN_ENCODING),
        str(SkipReason.ATTACHMENT_TOO_LARGE),
    }
)
SKIP_MESSAGES: Mapping[str, str] = {
    SkipReason.TINY_INLINE_IMAGE: "A small inline image (a signature logo or a tracking pixel).",
    SkipReason.IMAGE_TOO_SMALL: "An image with too few pixels to hold a receipt.",
    SkipReason.UNSUPPORTED_IMAGE_TYPE: "An image type the OCR does not read (GIF, WEBP, HEIC).",
    SkipReason.NOT_A_CLAIM_DOCUMENT: "Not a receipt or invoice (a document, text or archive).",
    SkipReason.EMPTY_ATTACHMENT: "The attachment is empty: the upload probably failed.",
    SkipReason.BROKEN_ENCODING: "The attachment's encoding is broken: the upload probably failed.",
    SkipReason.ATTACHMENT_TOO_LARGE: "The attachment is larger than the limit; it was not kept.",
    SkipReason.UNREADABLE_PART: "A part whose content could not be extracted (raw bytes kept).",
}
#: ``claims_attachments_received`` outcome of a new attachment's job, by its first state.
ATTACHMENT_OUTCOMES: Mapping[JobState, str] = {
    JobState.RECEIVED: "job",
    JobState.SKIPPED: "skipped",
    JobState.DUPLICATE: "duplicate",
}
#: ``IncomingEmail.problems`` that mean part of the email may not have been read.
UNREAD_PROBLEMS = frozenset(
    {MailProblem.UNREADABLE_STRUCTURE, MailProblem.TOO_DEEPLY_NESTED, MailProblem.TOO_MANY_PARTS}
)


@dataclass
class IntakeReport:
    emails: int = 0
    attachments: int = 0
    #: Jobs recorded in ``received`` this time: the ones to OCR next.
    new_jobs: list[str] = field(default_factory=list)
    #: Emails recorded as one review item because they could not be read or recorded.
    quarantined: int = 0
    #: Emails not recorded at all (the ledger or blob store failed): fetched again next poll.
    left_for_next_poll: int = 0
    #: Set when the mailbox itself could not be read (or stopped being readable).
    source_error: MailSourceError | None = None


def ingest(
    source: MailSource,
    ledger: Ledger,
    blobs: BlobStore,
    *,
    max_attachment_bytes: int | None = None,
    max_email_bytes: int | None = None,
) -> IntakeReport:
    report = IntakeReport()
    try:
        for raw in source.fetch():
            digest = _digest(source.name, raw)
            with bound_contextvars(email_sha256=digest[:16]):
                intake = _Intake(source.name, ledger, blobs, report, raw, digest)
                if not intake.run(max_attachment_bytes, max_email_bytes):
                    continue
                report.emails += 1
                metrics.record_email_received(source.name)
                try:
                    source.mark_done(raw.source_id)
                except Exception as exc:  # recorded all the same; the next poll finds it
                    log.error("marking the email done failed", error=type(exc).__name__)
    except MailSourceError as exc:
        # The mailbox itself failed (revoked token, server down): what was recorded stays
        # recorded; the health row says what is wrong until a poll succeeds again.
        report.source_error = exc
        log.error("mail source failed", source=source.name, status=exc.status, detail=str(exc))
        _record_sync(ledger, source.name, exc.status, str(exc))
    else:
        _record_sync(ledger, source.name)
    return report


def _record_sync(
    ledger: Ledger, source: str, status: str = "ok", detail: str | None = None
) -> None:
    metrics.record_mail_sync(source, status)
    try:
        ledger.sources.record_sync(source, status, detail)
    except Exception as exc:  # health is for people; never let it undo a poll
        log.error("recording the mail source's health failed", error=type(exc).__name__)


@dataclass
class _Intake:
    """Recording one raw email, with its quarantine when anything goes wrong."""

    source: str
    ledger: Ledger
    blobs: BlobStore
    report: IntakeReport
    raw: RawEmail
    digest: str

    def run(self, max_attachment_bytes: int | None, max_email_bytes: int | None) -> bool:
        """True when the email is recorded (normally or quarantined): mark it done."""
        if max_email_bytes is not None and self.size > max_email_bytes:
            return self.quarantine(
                "email_too_large",
                "The email is larger than the limit; it was not read and its bytes not kept.",
                keep_bytes=False,
            )
        try:
            email = parse_email(
                self.raw.data,
                source=self.source,
                source_id=self.raw.source_id,
                delivered_at=self.raw.delivered_at,
                max_attachment_bytes=max_attachment_bytes,
            )
        except MailParseError as exc:
            return self.quarantine(exc.code, f"The email cannot be read: {exc.message}")
        except Exception as exc:  # the parser must not raise anything else; if it does
            return self.quarantine(
                "unreadable_email", f"Reading the email failed ({type(exc).__name__})."
            )
        try:
            self.record(email)
        except Exception as exc:
            if is_unavailable(exc):
                # The ledger or the blob store is down or dropped the connection: nothing
                # is wrong with the email. Leave it for the next poll, which records it
                # idempotently.
                log.error("ledger or blob store unavailable", error=type(exc).__name__)
                self.report.left_for_next_poll += 1
                return False
            log.exception("recording the email failed", error=type(exc).__name__)
            return self.quarantine(
                "intake_error", f"Recording the email failed ({type(exc).__name__})."
            )
        return True

    def record(self, email: IncomingEmail) -> None:
        claimant = extract_claimant(email.subject, email.body_text)
        email_id = self.ledger.record_email(
            email.source,
            email.source_id,
            email.message_id,
            email.received_at,
            email.sender,
            policy_number=_identifier(claimant.policy_number),
            member_id=_identifier(claimant.member_id),
            member_name=claimant.member_name,
            raw_sha256=self.raw_sha256,
        )
        with bound_contextvars(email_id=email_id):
            for attachment in email.attachments:
                self.record_attachment(email_id, attachment)
            review = _needs_a_person(email)
            if review is not None:
                self.record_whole_email(email_id, *review)
            log.info(
                "email recorded",
                attachments=len(email.attachments),
                claim_documents=len(email.claim_attachments),
                problems=[str(p) for p in email.problems],
                review=review[0] if review else None,
            )

    def record_attachment(self, email_id: str, attachment: Attachment) -> None:
        reason = attachment.skip_reason
        # Bytes over the size limit were not kept (``original_size`` holds their size).
        blob_key = "" if attachment.original_size is not None else self.blobs.put(attachment.data)
        job_id, created = self.ledger.record_attachment(
            email_id,
            attachment.part_index,
            attachment.filename,
            attachment.kind or attachment.detected_type or attachment.declared_type,
            attachment.size,
            attachment.sha256,
            blob_key,
            skip_reason=str(reason) if reason is not None else None,
            reason=SKIP_MESSAGES.get(str(reason), str(reason)) if reason is not None else None,
        )
        self.report.attachments += 1
        state = self.ledger.get_job(job_id).state
        if created:
            metrics.record_attachment(self.source, ATTACHMENT_OUTCOMES.get(state, "job"))
        # Also a job recorded by an earlier poll that was cut off before queueing it.
        if state is JobState.RECEIVED:
            self.report.new_jobs.append(job_id)
        log.info(
            "attachment recorded",
            job_id=job_id,
            created=created,
            state=str(state),
            reason=str(reason) if reason is not None else None,
            size=attachment.size,
            sha256=attachment.sha256[:16],
        )

    def record_whole_email(
        self, email_id: str, code: str, message: str, *, keep_bytes: bool = True
    ) -> str:
        """One review item for the email itself, holding its raw bytes for a person."""
        blob_key = self.blobs.put(self.raw.data) if keep_bytes else ""
        job_id, _ = self.ledger.record_attachment(
            email_id,
            WHOLE_EMAIL_PART,
            WHOLE_EMAIL_NAME,
            WHOLE_EMAIL_TYPE,
            self.size,
            self.digest,
            blob_key,
            review_reason=code,
            reason=message,
        )
        log.info("email sent to review", job_id=job_id, reason=code)
        return job_id

    @property
    def size(self) -> int:
        """The email's size: as downloaded, or as the source reported one it did not fetch."""
        return self.raw.declared_size or len(self.raw.data)

    @property
    def raw_sha256(self) -> str | None:
        """The raw message's digest, when the source handed over the whole message."""
        return self.digest if self.raw.declared_size is None else None

    def quarantine(self, code: str, message: str, *, keep_bytes: bool = True) -> bool:
        """Record the email as one review item; False when even that cannot be written."""
        log.warning("email quarantined", reason=code, size=self.size)
        try:
            email_id = self.ledger.record_email(
                self.source,
                self.raw.source_id,
                f"<{self.digest}@unread.claims-ocr>",
                self.raw.delivered_at,
                None,
                raw_sha256=self.raw_sha256,
            )
            with bound_contextvars(email_id=email_id):
                self.record_whole_email(email_id, code, message, keep_bytes=keep_bytes)
        except Exception as exc:
            log.exception(
                "email not recorded; left in the mailbox for the next poll",
                error=type(exc).__name__,
            )
            self.report.left_for_next_poll += 1
            return False
        self.report.quarantined += 1
        metrics.record_attachment(self.source, "quarantined")
        return True


def _digest(source: str, raw: RawEmail) -> str:
    """sha256 of the raw message; for one the source did not download (over the size
    limit), of its identity instead, so two such emails are never taken for one."""
    if raw.declared_size is None:
        return hashlib.sha256(raw.data).hexdigest()
    identity = f"not-downloaded\0{source}\0{raw.source_id}\0{raw.declared_size}"
    return hashlib.sha256(identity.encode()).hexdigest()


def _needs_a_person(email: IncomingEmail) -> tuple[str, str] | None:
    """``(code, sentence)`` when the email may hold a claim nobody can process yet."""
    unread = sorted(str(p) for p in set(email.problems) & UNREAD_PROBLEMS)
    if unread:
        return (
            unread[0],
            "Part of the email could not be read; what could be read was recorded. "
            "Check the original for a receipt that was missed.",
        )
    failed = sorted({str(a.skip_reason) for a in email.attachments} & FAILED_UPLOADS)
    if failed:
        return (
            "failed_upload",
            f"An attachment looks like a failed upload ({', '.join(failed)}): "
            "ask the member to send it again.",
        )
    if not email.claim_attachments:
        skipped = sorted({str(a.skip_reason) for a in email.attachments})
        return (
            "no_claim_document",
            "No receipt or invoice is attached"
            + (f" (only: {', '.join(skipped)})." if skipped else "."),
        )
    return None


def _identifier(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_IDENTIFIER_LENGTH else None
