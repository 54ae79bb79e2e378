"""The ledger: the one place that records what happened to every email and attachment.

Each public method runs in one transaction and appends a ``JobEvent`` for every state
change in that same transaction. A state change is a compare-and-set
(``UPDATE jobs ... WHERE id = ? AND state = ?``), so when two workers race on a job
exactly one wins; the other gets ``False`` from a claim method (``start_ocr``,
``begin_submit``) or ``InvalidTransition`` / ``StaleState`` from the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parseaddr
from functools import cached_property
from types import TracebackType
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Update,
    and_,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from services import metrics
from services.claim_fingerprint import ClaimFingerprint
from services.ledger import migrate as migrations
from services.ledger.apikeys import ApiKeys
from services.ledger.engine import WRITE_OPTION, create_db_engine
from services.ledger.errors import (
    EmailNotFound,
    InvalidTransition,
    JobNotFound,
    StaleState,
)
from services.ledger.models import (
    NOT_ORIGINAL_STATES,
    WHOLE_EMAIL_PART,
    Base,
    Email,
    Job,
    JobEvent,
    utcnow,
)
from services.ledger.outbox import RecordOutbox
from services.ledger.sources import MailSources
from services.ledger.states import RETRY_TARGET, JobState, Route, can_move
from services.ledger.views import EmailView, JobPage, JobSummary, JobView, LedgerSummary

log = logging.getLogger(__name__)
T = TypeVar("T")
S = JobState

#: ``list_jobs`` sort keys; prefix with "-" for descending.
SORT_COLUMNS = {
    "created_at": Job.created_at,
    "updated_at": Job.updated_at,
    "confidence": Job.confidence,
    "retry_count": Job.retry_count,
    "state": Job.state,
    "reason_code": Job.reason_code,
}


#: Reason code of a claim that matches an earlier live job's fingerprint.
POSSIBLE_DUPLICATE = "possible_duplicate"
#: ``pg_advisory_xact_lock(space, key)`` space of claim-fingerprint locks ("clai"); the
#: two-key form never conflicts with the migration's one-key lock.
FINGERPRINT_LOCK_SPACE = 0x636C6169
_MATCHED_ON = {
    "strict": "same invoice number, amount and date",
    "loose": "same provider, amount and date (an invoice number is missing)",
}


def hash_sender(address: str) -> str:
    """sha256 of the normalised address, so logs and stats can group senders safely."""
    _, addr = parseaddr(address)
    return hashlib.sha256((addr or address).strip().lower().encode()).hexdigest()


def mask_sender(address: str) -> str:
    """``a***@example.com``: enough for an auditor to tell senders apart, not the address."""
    _, addr = parseaddr(address)
    local, at, domain = (addr or address).strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain.lower()}"


def _new_id() -> str:
    return str(uuid.uuid4())


def _updated(session: Session, statement: Update) -> CursorResult[Any]:
    """Run an UPDATE; its result is a CursorResult (with ``rowcount``), which
    ``Session.execute`` types only as ``Result``."""
    return cast("CursorResult[Any]", session.execute(statement))


def _normalise_reasons(reasons: Iterable[Any]) -> list[dict[str, str]]:
    """Accept ``{"code", "message"}`` mappings or objects with those attributes."""
    out = []
    for r in reasons:
        code, message = (r["code"], r["message"]) if isinstance(r, Mapping) else (r.code, r.message)
        out.append({"code": str(code), "message": str(message)})
    return out


class Ledger:
    """Jobs, emails and their event trail in SQLite or PostgreSQL.

    Create one per process (after a Celery prefork fork, not before): it owns a
    connection pool.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self._reading = sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._writing = sessionmaker(writer, expire_on_commit=False)

    @cached_property
    def sources(self) -> MailSources:
        """Mail sources' cursors and health, and the outcome each email shows."""
        return MailSources(self)

    @cached_property
    def outbox(self) -> RecordOutbox:
        """Audit rows and archive uploads owed for finished jobs."""
        return RecordOutbox(self)

    @cached_property
    def apikeys(self) -> ApiKeys:
        """The admin API's keys (only hashes of their secrets are kept)."""
        return ApiKeys(self)

    def migrate(self) -> None:
        """Create or upgrade the schema (``alembic upgrade head``); safe to call every start."""
        migrations.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writing() as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._reading() as session, session.begin():
            yield session

    def _write_retrying_conflict(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in a write transaction, once more if a unique constraint fired.

        A conflict means a concurrent writer inserted the same row first; the second
        run finds that row and returns it, which is what makes recording idempotent.
        """
        try:
            with self._write() as session:
                return work(session)
        except IntegrityError:
            log.debug("concurrent insert hit a unique constraint; reading the winner's row")
            with self._write() as session:
                return work(session)

    def _move(
        self,
        session: Session,
        job_id: str,
        target: JobState,
        actor: str,
        *,
        expect: Iterable[JobState] | None = None,
        reason_code: str | None = None,
        reason: str | None = None,
        values: Mapping[str, Any] | None = None,
        details: dict[str, Any] | None = None,
    ) -> JobState:
        """Compare-and-set the job's state to ``target`` and append the event.

        ``expect`` narrows the states this caller may move from (within the table).
        ``reason_code``/``reason`` always describe the new state, so they are cleared
        by a move that does not give them. Returns the state moved from.
        """
        current = session.scalar(select(Job.state).where(Job.id == job_id))
        if current is None:
            raise JobNotFound(job_id)
        if (expect is not None and current not in set(expect)) or not can_move(current, target):
            raise InvalidTransition(job_id, current, target)
        now = utcnow()
        result = _updated(
            session,
            update(Job)
            .where(Job.id == job_id, Job.state == current)
            .values(
                state=target, updated_at=now, reason_code=reason_code, reason=reason, **values or {}
            )
            .execution_options(synchronize_session=False),
        )
        if result.rowcount != 1:
            log.debug("job %s: lost the race for %s -> %s", job_id, current, target)
            raise StaleState(job_id, current, target)
        session.add(
            JobEvent(
                job_id=job_id,
                at=now,
                from_state=current,
                to_state=target,
                actor=actor,
                details=details,
            )
        )
        log.debug("job %s: %s -> %s by %s", job_id, current, target, actor)
        # Counted once the transaction commits: a move rolled back never happened.
        moves: list[tuple[str, str]] | None = session.info.get("metrics_moves")
        if moves is None:
            moves = session.info["metrics_moves"] = []
            event.listen(
                session,
                "after_commit",
                lambda s: metrics.record_transitions(s.info.pop("metrics_moves", ())),
                once=True,
            )
        moves.append((str(current), str(target)))
        return current

    # -- recording (poller) -------------------------------------------------------

    def record_email(
        self,
        source: str,
        source_id: str,
        message_id: str | None,
        received_at: datetime | None,
        sender: str | None,
        policy_number: str | None = None,
        member_id: str | None = None,
        member_name: str | None = None,
        *,
        raw_sha256: str | None = None,
    ) -> str:
        """Record an email once; the same ``(source, source_id)`` returns the existing id.

        So does the same raw message (``raw_sha256``) seen again in the same source under
        another id (an IMAP folder rebuilt with a new UIDVALIDITY): its jobs are then the
        existing ones, not a second set. Only a hash and a masked form of ``sender`` are
        kept. Strings longer than their column are cut with a marker (see :func:`fit`),
        the same on every database.
        """
        source, source_id = fit(Email, "source", source), fit(Email, "source_id", source_id)
        message_id = fit_optional(Email, "message_id", message_id)
        policy_number = fit_optional(Email, "policy_number", policy_number)
        member_id = fit_optional(Email, "member_id", member_id)
        member_name = fit_optional(Email, "member_name", member_name)

        def work(session: Session) -> str:
            existing = session.scalar(
                select(Email.id).where(Email.source == source, Email.source_id == source_id)
            )
            if existing is None and raw_sha256 is not None:
                existing = session.scalar(
                    select(Email.id)
                    .where(Email.source == source, Email.raw_sha256 == raw_sha256)
                    .order_by(Email.created_at)
                    .limit(1)
                )
                if existing is not None:
                    log.info("email %s seen again under a new source id", existing)
            if existing is not None:
                return existing
            email = Email(
                id=_new_id(),
                source=source,
                source_id=source_id,
                message_id=message_id,
                received_at=received_at,
                sender_hash=hash_sender(sender) if sender else None,
                sender_masked=fit(Email, "sender_masked", mask_sender(sender)) if sender else None,
                raw_sha256=raw_sha256,
                policy_number=policy_number,
                member_id=member_id,
                member_name=member_name,
                attachment_count=0,
                created_at=utcnow(),
            )
            session.add(email)
            session.flush()
            return email.id

        return self._write_retrying_conflict(work)

    def record_attachment(
        self,
        email_id: str,
        part_index: int,
        filename: str | None,
        content_type: str | None,
        size_bytes: int,
        sha256: str,
        blob_key: str,
        skip_reason: str | None = None,
        *,
        review_reason: str | None = None,
        reason: str | None = None,
        actor: str = "poller",
    ) -> tuple[str, bool]:
        """Record one attachment as a job; returns ``(job_id, created)``.

        Idempotent on ``(email_id, part_index)``. With ``skip_reason`` (a code) the job
        goes straight to ``skipped`` with that code; when a live job (not duplicate,
        skipped or rejected) already has the same ``sha256``, it goes to ``duplicate``
        pointing at it; with ``review_reason`` (a code) it goes to ``needs_review`` for a
        person. ``reason`` is the sentence for people. Otherwise it is ``received``.
        """
        filename = fit_optional(Job, "filename", filename)
        content_type = fit_optional(Job, "content_type", content_type)

        def work(session: Session) -> tuple[str, bool]:
            existing = session.scalar(
                select(Job.id).where(Job.email_id == email_id, Job.part_index == part_index)
            )
            if existing is not None:
                return existing, False
            bumped = _updated(
                session,
                update(Email)
                .where(Email.id == email_id)
                .values(attachment_count=Email.attachment_count + 1)
                .execution_options(synchronize_session=False),
            )
            if bumped.rowcount != 1:
                raise EmailNotFound(email_id)

            original = None
            if skip_reason is None:
                original = session.scalar(
                    select(Job.id).where(
                        Job.sha256 == sha256, Job.state.not_in(NOT_ORIGINAL_STATES)
                    )
                )
            code: str | None
            message: str | None
            if skip_reason is not None:
                state, code, message = S.SKIPPED, skip_reason, reason or skip_reason
            elif original is not None:
                state, code, message = S.DUPLICATE, "duplicate", f"same content as job {original}"
            elif review_reason is not None:
                state, code, message = S.NEEDS_REVIEW, review_reason, reason or review_reason
            else:
                state, code, message = S.RECEIVED, None, None

            now = utcnow()
            received = session.scalar(
                select(func.coalesce(Email.received_at, Email.created_at)).where(
                    Email.id == email_id
                )
            )
            job = Job(
                id=_new_id(),
                email_id=email_id,
                part_index=part_index,
                filename=filename,
                content_type=content_type,
                size_bytes=size_bytes,
                sha256=sha256,
                blob_key=blob_key,
                state=state,
                reason_code=code,
                reason=message,
                reasons=[{"code": code, "message": message}]
                if state is S.NEEDS_REVIEW and code and message
                else None,
                retry_count=0,
                duplicate_of=original,
                received_at=received,
                created_at=now,
                updated_at=now,
            )
            session.add(job)
            session.flush()  # the job row before its events (foreign key)
            # Every trail starts at "received", even when the job is settled at once.
            trail: list[tuple[JobState | None, JobState, dict[str, Any] | None]] = [
                (None, S.RECEIVED, None)
            ]
            if state is not S.RECEIVED:
                assert can_move(S.RECEIVED, state)
                details = {"code": code, "message": message, "duplicate_of": original}
                trail.append((S.RECEIVED, state, details))
            session.add_all(
                JobEvent(job_id=job.id, at=now, from_state=a, to_state=b, actor=actor, details=d)
                for a, b, d in trail
            )
            log.info(
                "job recorded",
                extra={
                    "job_id": job.id,
                    "state": str(state),
                    "email_id": email_id,
                    "part": part_index,
                },
            )
            return job.id, True

        return self._write_retrying_conflict(work)

    # -- OCR worker ---------------------------------------------------------------

    def start_ocr(self, job_id: str, *, actor: str = "worker:ocr") -> bool:
        """Take a job for OCR. True also when it is already ``ocr_pending`` (redelivery)."""
        try:
            with self._write() as session:
                previous_state = session.scalar(select(Job.state).where(Job.id == job_id))
                details = {"redelivered": True} if previous_state is S.OCR_PENDING else None
                self._move(
                    session,
                    job_id,
                    S.OCR_PENDING,
                    actor,
                    expect={S.RECEIVED, S.OCR_PENDING},
                    details=details,
                )
        except InvalidTransition:
            return False
        return True

    def save_extraction(
        self,
        job_id: str,
        *,
        fields: Mapping[str, str | None],
        field_confidence: Mapping[str, float],
        confidence: float,
        route: Route | str,
        reasons: Sequence[Any] = (),
        page_count: int,
        actor: str = "worker:ocr",
        field_evidence: Mapping[str, Any] | None = None,
        fingerprints: ClaimFingerprint | None = None,
    ) -> JobState:
        """Store OCR results and route the job: ``ocr_pending -> extracted -> ready|needs_review``.

        ``route`` is ``"submit"`` or ``"review"``; ``reasons`` are ``{code, message}``
        items explaining the decision. ``field_evidence`` says per field where on which
        page it was read (``{"page", "polygon", "text", "page_width", "page_height"}``),
        so a reviewer can see it on the page image. Returns the new state.

        ``fingerprints`` (``services.claim_fingerprint``) are stored on the job, and when
        another live job has a matching claim (:meth:`find_possible_duplicate`) this one
        goes to ``needs_review`` whatever ``route`` says, ``possible_duplicate`` first
        among its reasons, naming that job: a person decides whether to pay it twice.

        The check runs in this write transaction, after a lock on the claim's keys
        (PostgreSQL: a transaction-scoped advisory lock per key; SQLite's ``BEGIN
        IMMEDIATE`` already admits one writer at a time). So of two photos of one receipt
        saved at once, in one batch or by two workers, the second to save waits for the
        first to commit and then sees it; a check before the save, or after it, would
        leave a window in which both go to NCB. The job never matches itself, so a
        redelivered task cannot flag its own job.
        """
        route = Route(route)
        reason_list = _normalise_reasons(reasons)
        with self._write() as session:
            earlier = None
            if fingerprints:
                self._lock_claim(session, fingerprints)
                earlier = _possible_duplicate(session, job_id, fingerprints)
            if earlier is not None:
                route = Route.REVIEW
                why = f"May be the same receipt as job {earlier[0]}: {_MATCHED_ON[earlier[1]]}."
                reason_list.insert(0, {"code": POSSIBLE_DUPLICATE, "message": why})
            target = S.READY if route is Route.SUBMIT else S.NEEDS_REVIEW
            keys = {}
            if fingerprints is not None:
                keys = {
                    "fingerprint_strict": fingerprints.strict,
                    "fingerprint_loose": fingerprints.loose,
                }
            self._move(
                session,
                job_id,
                S.EXTRACTED,
                actor,
                expect={S.OCR_PENDING},
                values={
                    "fields": dict(fields),
                    "field_confidence": dict(field_confidence),
                    "confidence": confidence,
                    "route": route.value,
                    "reasons": reason_list,
                    "page_count": page_count,
                    "field_evidence": dict(field_evidence) if field_evidence is not None else None,
                    **keys,
                },
                details={"confidence": confidence, "page_count": page_count},
            )
            code = message = None
            if target is S.NEEDS_REVIEW:
                code = reason_list[0]["code"] if reason_list else "review"
                message = "; ".join(r["message"] for r in reason_list) or None
            details: dict[str, Any] = {
                "route": route.value,
                "codes": [r["code"] for r in reason_list],
            }
            if earlier is not None:
                details["possible_duplicate_of"] = earlier[0]
            self._move(
                session,
                job_id,
                target,
                actor,
                reason_code=code,
                reason=message,
                details=details,
            )
        if earlier is not None:
            log.info("job %s: possible duplicate of job %s (%s key)", job_id, *earlier)
        return target

    def find_possible_duplicate(self, job_id: str, fingerprints: ClaimFingerprint) -> str | None:
        """The oldest other live job whose claim matches ``fingerprints``, or None.

        Live: any state but ``rejected``, ``duplicate`` and ``skipped``. ``failed``
        counts: a failed job with fingerprints got past OCR and broke at a later step,
        and ``retry`` sends it on towards NCB (or it is there already). Matching (see
        ``services.claim_fingerprint``): the strict key (invoice number + amount + date)
        with providers equal or one containing the other; or, when either claim has no
        invoice number, the loose key (amount + date + provider). One probe of each key's
        index. ``save_extraction`` runs the same check inside its write transaction.
        """
        with self._read() as session:
            found = _possible_duplicate(session, job_id, fingerprints)
        return found[0] if found else None

    def _lock_claim(self, session: Session, fingerprints: ClaimFingerprint) -> None:
        """Serialise writers of the same claim keys until commit (PostgreSQL only).

        Keys are locked in sorted order, so two writers never wait on each other in a
        cycle; unrelated keys that share a lock slot only wait, never mismatch.
        """
        if self.engine.dialect.name != "postgresql":
            return  # SQLite: BEGIN IMMEDIATE already holds the one write lock
        for key in sorted({k for k in (fingerprints.strict, fingerprints.loose) if k}):
            session.execute(
                text(
                    "SELECT pg_advisory_xact_lock(CAST(:space AS integer), CAST(:key AS integer))"
                ),
                {"space": FINGERPRINT_LOCK_SPACE, "key": int(key[:8], 16) - 2**31},
            )

    # -- submitter ----------------------------------------------------------------

    def begin_submit(self, job_id: str, *, actor: str = "submitter") -> bool:
        """Claim a ``ready`` job for submission; False when another worker has it (or it moved)."""
        try:
            with self._write() as session:
                self._move(session, job_id, S.SUBMITTING, actor, expect={S.READY})
        except InvalidTransition:
            return False
        return True

    def finish_submit(self, job_id: str, ncb_reference: str, *, actor: str = "submitter") -> None:
        """NCB accepted the claim (201, or 200/409 for one it already had)."""
        with self._write() as session:
            self._move(
                session,
                job_id,
                S.SUBMITTED,
                actor,
                expect={S.SUBMITTING},
                values={"ncb_reference": ncb_reference},
                details={"ncb_reference": ncb_reference},
            )

    def submit_rejected(
        self,
        job_id: str,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        actor: str = "submitter",
    ) -> None:
        """NCB refused the data (400): send the job to a person with NCB's reason."""
        with self._write() as session:
            self._move(
                session,
                job_id,
                S.NEEDS_REVIEW,
                actor,
                expect={S.SUBMITTING},
                reason_code=code,
                reason=message,
                details={"code": code, "message": message, "ncb": dict(details or {})},
            )

    def submit_deferred(
        self, job_id: str, reason: str, *, code: str = "ncb_unavailable", actor: str = "submitter"
    ) -> None:
        """NCB was down or busy: put the job back in the queue and count the attempt."""
        with self._write() as session:
            self._move(
                session,
                job_id,
                S.READY,
                actor,
                expect={S.SUBMITTING},
                reason_code=code,
                reason=reason,
                values={"retry_count": Job.retry_count + 1},
                details={"code": code, "message": reason},
            )

    def mark_done(self, job_id: str, *, actor: str = "submitter") -> None:
        """Everything after submission (archive, audit row) is finished."""
        with self._write() as session:
            self._move(session, job_id, S.DONE, actor, expect={S.SUBMITTED})

    # -- failures -----------------------------------------------------------------

    def fail(self, job_id: str, code: str, message: str, actor: str) -> None:
        """Park a job in ``failed`` from any state that allows it; ``retry_count`` is kept."""
        with self._write() as session:
            self._move(
                session,
                job_id,
                S.FAILED,
                actor,
                reason_code=code,
                reason=message,
                details={"code": code, "message": message},
            )

    def retry(self, job_id: str, actor: str) -> JobState:
        """Send a failed job back to the checkpoint before the step that failed.

        Returns the new state, which tells the caller which task to enqueue
        (``received``: OCR; ``ready``: submit; ``submitted``: archive/audit;
        ``needs_review``: nothing, a person has it).
        """
        with self._write() as session:
            failed_from = session.scalar(
                select(JobEvent.from_state)
                .where(JobEvent.job_id == job_id, JobEvent.to_state == S.FAILED)
                .order_by(JobEvent.id.desc())
                .limit(1)
            )
            target = (
                S.RECEIVED if failed_from is None else RETRY_TARGET.get(failed_from, S.RECEIVED)
            )
            self._move(
                session,
                job_id,
                target,
                actor,
                expect={S.FAILED},
                values={"retry_count": Job.retry_count + 1},
            )
        return target

    # -- exception queue (reviewers) ----------------------------------------------

    def approve(self, job_id: str, corrected_fields: Mapping[str, str | None], actor: str) -> None:
        """A reviewer accepts the job, with corrections: ``needs_review -> ready``.

        ``fields`` keeps what OCR read; corrections accumulate in ``corrected_fields``
        (a later approval adds to earlier ones), and ``JobSummary.effective_fields``
        is the merge the submitter sends.
        """
        with self._write() as session:
            earlier = session.scalar(select(Job.corrected_fields).where(Job.id == job_id))
            merged = {**(earlier or {}), **corrected_fields}
            self._move(
                session,
                job_id,
                S.READY,
                actor,
                expect={S.NEEDS_REVIEW},
                values={"corrected_fields": merged},
                details={"corrected_fields": dict(corrected_fields)},
            )

    def reject(self, job_id: str, reason: str, actor: str, *, code: str = "rejected") -> None:
        """A reviewer decides the job is not to be submitted (from review or from failed)."""
        with self._write() as session:
            self._move(
                session,
                job_id,
                S.REJECTED,
                actor,
                expect={S.NEEDS_REVIEW, S.FAILED},
                reason_code=code,
                reason=reason,
                details={"code": code, "message": reason},
            )

    # -- queries ------------------------------------------------------------------

    def get_job(self, job_id: str) -> JobView:
        """One job with its email and its event trail."""
        with self._read() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise JobNotFound(job_id)
            email = session.get_one(Email, job.email_id)
            events = session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            ).all()
            return JobView.of_full(job, email, list(events))

    def get_email(self, email_id: str) -> EmailView:
        with self._read() as session:
            email = session.get(Email, email_id)
            if email is None:
                raise EmailNotFound(email_id)
            return EmailView.of(email)

    def list_jobs(
        self,
        states: Iterable[JobState | str] | None = None,
        reason_code: str | None = None,
        email_id: str | None = None,
        min_confidence: float | None = None,
        max_confidence: float | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        sort: str = "created_at",
        limit: int = 50,
        offset: int = 0,
        *,
        received_from: datetime | None = None,
        received_to: datetime | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """Filter, sort and page jobs (the exception queue is ``states=["needs_review"]``).

        ``created_from`` is inclusive, ``created_to`` exclusive; so are ``received_from``
        and ``received_to``, which filter on when the email arrived: its ``received_at``
        (the Date header), or when we recorded it (``emails.created_at``) for an email
        without one, so an undated email is still found by date (kept on the job as
        ``jobs.received_at``, indexed). Sort keys are those of
        ``SORT_COLUMNS``, "-" first for descending; empty values sort last either way,
        ties by id.

        Two ways to page: ``offset`` (the CLI), or ``cursor`` (from :func:`job_cursor`
        of the previous page's last item), which resumes right after that item, so a
        deep page costs what the first does and rows inserted meanwhile cause no gaps
        or repeats. A cursor belongs to its sort key (``ValueError`` otherwise).
        """
        column = SORT_COLUMNS.get(sort.removeprefix("-"))
        if column is None:
            raise ValueError(f"unknown sort key {sort!r}; use one of {sorted(SORT_COLUMNS)}")
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        descending = sort.startswith("-")

        query = select(Job)
        if states is not None:
            query = query.where(Job.state.in_([JobState(s) for s in states]))
        if reason_code is not None:
            query = query.where(Job.reason_code == reason_code)
        if email_id is not None:
            query = query.where(Job.email_id == email_id)
        if min_confidence is not None:
            query = query.where(Job.confidence >= min_confidence)
        if max_confidence is not None:
            query = query.where(Job.confidence <= max_confidence)
        if created_from is not None:
            query = query.where(Job.created_at >= created_from)
        if created_to is not None:
            query = query.where(Job.created_at < created_to)
        if received_from is not None:
            query = query.where(Job.received_at >= _as_utc(received_from))
        if received_to is not None:
            query = query.where(Job.received_at < _as_utc(received_to))

        with self._read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            if cursor is not None:
                query = query.where(_after_cursor(sort, column, descending, cursor))
            order = column.desc() if descending else column.asc()
            rows = session.scalars(
                query.order_by(order.nulls_last(), Job.id).limit(limit).offset(offset)
            ).all()
            return JobPage(items=tuple(JobSummary.of(r) for r in rows), total=total)

    def jobs_in(
        self, states: Iterable[JobState | str], *, updated_before: datetime | None = None
    ) -> list[str]:
        """Ids of jobs in ``states``, oldest first.

        ``updated_before`` finds jobs stuck in a state (e.g. ``submitting`` after a
        worker died mid-call) so a sweeper can ``fail`` or defer them.
        """
        query = select(Job.id).where(Job.state.in_([JobState(s) for s in states]))
        if updated_before is not None:
            query = query.where(Job.updated_at < updated_before)
        with self._read() as session:
            return list(session.scalars(query.order_by(Job.created_at, Job.id)))

    def counts(self) -> dict[JobState, int]:
        """Jobs per state, every state present (zero when none)."""
        with self._read() as session:
            rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
        found = {state: n for state, n in rows}
        return {state: found.get(state, 0) for state in JobState}

    def summary(self, since: datetime | None = None) -> LedgerSummary:
        """Emails, attachments and jobs per state, all time or recorded since ``since``.

        ``by_state`` counts every job, those that stand for a whole email included;
        ``attachments`` counts the jobs of attachments only.
        """
        emails = select(func.count()).select_from(Email)
        jobs = select(Job.state, func.count()).group_by(Job.state)
        parts = select(func.count()).select_from(Job).where(Job.part_index != WHOLE_EMAIL_PART)
        if since is not None:
            emails = emails.where(Email.created_at >= since)
            jobs = jobs.where(Job.created_at >= since)
            parts = parts.where(Job.created_at >= since)
        with self._read() as session:
            n_emails = session.scalar(emails) or 0
            n_parts = session.scalar(parts) or 0
            found = {state: n for state, n in session.execute(jobs).all()}
        by_state = {state: found.get(state, 0) for state in JobState}
        return LedgerSummary(emails=n_emails, attachments=n_parts, by_state=by_state)


def _possible_duplicate(
    session: Session, job_id: str, fingerprints: ClaimFingerprint
) -> tuple[str, str] | None:
    """``(job id, "strict" | "loose")`` of the oldest other live job with a matching claim.

    A loose match counts only when one claim has no invoice number; as the loose key
    needs amount and date, a job with a loose key and no strict key is one without.
    """
    strict, loose = fingerprints.strict, fingerprints.loose
    terms: list[ColumnElement[bool]] = []
    if strict is not None:
        terms.append(Job.fingerprint_strict == strict)
    if loose is not None:
        terms.append(
            Job.fingerprint_loose == loose
            if strict is None
            else and_(Job.fingerprint_loose == loose, Job.fingerprint_strict.is_(None))
        )
    if not terms:
        return None
    rows = session.execute(
        select(Job.id, Job.fingerprint_strict, Job.fields)
        .where(or_(*terms), Job.id != job_id, Job.state.not_in(NOT_ORIGINAL_STATES))
        .order_by(Job.created_at, Job.id)
    ).all()
    for other_id, other_strict, fields in rows:
        if strict is not None and other_strict == strict:
            provider = fields.get("provider_name") if isinstance(fields, dict) else None
            if fingerprints.same_provider(provider):
                return other_id, "strict"
        elif strict is None or other_strict is None:
            return other_id, "loose"
    return None


def _as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as the columns do."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def job_cursor(sort: str, job: JobSummary) -> str:
    """The opaque cursor that resumes ``list_jobs(sort=sort)`` right after ``job``."""
    value = getattr(job, sort.removeprefix("-"))
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, JobState):
        value = value.value
    raw = json.dumps({"s": sort, "v": value, "i": job.id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after_cursor(sort: str, column: Any, descending: bool, cursor: str) -> ColumnElement[bool]:
    """Rows after the cursor's (value, id) in ``ORDER BY column [DESC] NULLS LAST, id``.

    Written as ``column >= v AND (column > v OR id > i)`` so the range uses an index on
    the sort column; rows whose value is NULL come after every value.
    """
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, dict) or raw.get("s") != sort or not isinstance(raw["i"], str):
            raise ValueError
        value, after_id = raw["v"], raw["i"]
        if value is not None and sort.removeprefix("-").endswith("_at"):
            value = datetime.fromisoformat(value)
        elif value is not None and not isinstance(value, int | float | str):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValueError("the cursor is not valid for this sort order") from None
    if value is None:
        return and_(column.is_(None), Job.id > after_id)
    beyond = column < value if descending else column > value
    within = column <= value if descending else column >= value
    after: ColumnElement[bool] = and_(within, or_(beyond, Job.id > after_id))
    # "OR column IS NULL" only where NULLs can be: it keeps the planner off the index.
    return or_(after, column.is_(None)) if Job.__table__.c[column.key].nullable else after


#: Marks a value cut to fit its column.
CUT_MARKER = "…"


def fit(model: type[Base], column: str, value: str) -> str:
    """``value`` cut to the length of ``model.column`` (ending in :data:`CUT_MARKER`).

    The same value then fits on every database: SQLite would store it whole and
    PostgreSQL refuse it, and one refused insert would stop a whole poll.
    """
    length = getattr(model.__table__.c[column].type, "length", None)
    if length is None or len(value) <= length:
        return value
    return value[: length - len(CUT_MARKER)] + CUT_MARKER


def fit_optional(model: type[Base], column: str, value: str | None) -> str | None:
    return None if value is None else fit(model, column, value)
