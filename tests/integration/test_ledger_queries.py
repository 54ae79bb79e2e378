"""Recording, duplicates, review actions, retries and the exception-queue queries."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from services.ledger import (
    EmailNotFound,
    JobState,
    Ledger,
    hash_sender,
)
from services.ledger.models import Email
from tests.support.ledger_helpers import FIELDS, drive, extract, new_email, new_job

pytestmark = pytest.mark.both_databases  # the ledger's SQL: SQLite and PostgreSQL

S = JobState


# -- recording -------------------------------------------------------------------------


def test_record_email_is_idempotent_and_keeps_only_a_sender_hash(ledger: Ledger) -> None:
    first = new_email(ledger, "msg-1", sender="Ann Member <Ann.Member@Example.com>")
    again = new_email(ledger, "msg-1", member_name="someone else")
    other_source = new_email(ledger, "msg-1", source="imap")
    assert first == again != other_source

    email = ledger.get_email(first)
    assert email.sender_hash == hash_sender("ann.member@example.com")
    assert email.member_name == "Ann Member"  # the first recording wins
    with ledger.engine.connect() as conn:
        row = conn.execute(select(Email.__table__).where(Email.id == first)).one()
    assert not any("ann.member" in str(value).lower() for value in row)


def test_received_at_is_kept_as_the_same_instant_in_utc(ledger: Ledger) -> None:
    sent = datetime(2026, 3, 1, 18, 0, tzinfo=timezone(timedelta(hours=8)))
    email = ledger.get_email(new_email(ledger, received_at=sent))
    assert email.received_at == sent
    assert email.received_at is not None and email.received_at.tzinfo == UTC
    assert email.created_at.tzinfo == UTC


def test_record_attachment_is_idempotent_per_email_part(ledger: Ledger) -> None:
    email_id = new_email(ledger)
    args = ("r.jpg", "image/jpeg", 10, "a" * 64, "blobs/a")
    job_id, created = ledger.record_attachment(email_id, 0, *args)
    assert created
    assert ledger.record_attachment(email_id, 0, *args) == (job_id, False)
    second, created = ledger.record_attachment(email_id, 1, "s.png", "image/png", 5, "b" * 64, "k")
    assert created and second != job_id
    assert ledger.get_email(email_id).attachment_count == 2
    assert ledger.list_jobs(email_id=email_id).total == 2


def test_record_attachment_of_unknown_email_raises(ledger: Ledger) -> None:
    with pytest.raises(EmailNotFound):
        ledger.record_attachment("nope", 0, "r.jpg", "image/jpeg", 1, "a" * 64, "k")


def test_same_bytes_again_is_a_duplicate_of_the_original(ledger: Ledger) -> None:
    original = new_job(ledger, sha256="f" * 64)
    copy = ledger.get_job(new_job(ledger, sha256="f" * 64))
    third = ledger.get_job(new_job(ledger, sha256="f" * 64))
    assert (copy.state, copy.duplicate_of, copy.reason_code) == (S.DUPLICATE, original, "duplicate")
    assert third.duplicate_of == original  # always the original, never another duplicate
    assert copy.events[-1].details == {
        "code": "duplicate",
        "message": f"same content as job {original}",
        "duplicate_of": original,
    }


def test_skipped_and_rejected_jobs_are_not_originals(ledger: Ledger) -> None:
    logo = ledger.get_job(new_job(ledger, sha256="1" * 64, skip_reason="tiny_inline_image"))
    assert (logo.state, logo.reason_code) == (S.SKIPPED, "tiny_inline_image")
    assert ledger.get_job(new_job(ledger, sha256="1" * 64)).state is S.RECEIVED

    rejected = new_job(ledger, sha256="2" * 64)
    drive(ledger, rejected, "rejected")
    resent = ledger.get_job(new_job(ledger, sha256="2" * 64))
    assert (resent.state, resent.duplicate_of) == (S.RECEIVED, None)

    # A skip reason wins over duplicate detection.
    again = ledger.get_job(new_job(ledger, sha256="2" * 64, skip_reason="too small"))
    assert (again.state, again.duplicate_of) == (S.SKIPPED, None)


# -- extraction, review, submission ------------------------------------------------------


def test_save_extraction_routes_and_records_why(ledger: Ledger) -> None:
    confident, doubtful = new_job(ledger), new_job(ledger)
    for job_id in (confident, doubtful):
        assert ledger.start_ocr(job_id)
    assert extract(ledger, confident, confidence=0.97) is S.READY
    assert extract(ledger, doubtful, route="review", confidence=0.4) is S.NEEDS_REVIEW

    ready, review = ledger.get_job(confident), ledger.get_job(doubtful)
    assert (ready.fields, ready.confidence, ready.page_count, ready.route) == (
        FIELDS,
        0.97,
        1,
        "submit",
    )
    assert ready.field_confidence and ready.field_confidence["Claim Amount"] == 0.97
    assert (ready.reason_code, ready.reason) == (None, None)
    assert (review.reason_code, review.reason) == ("low_confidence", "amount 0.41")
    assert review.reasons == [{"code": "low_confidence", "message": "amount 0.41"}]
    assert [e.to_state for e in review.events] == [
        S.RECEIVED,
        S.OCR_PENDING,
        S.EXTRACTED,
        S.NEEDS_REVIEW,
    ]


def test_redelivered_ocr_task_takes_the_job_again(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    assert ledger.start_ocr(job_id) and ledger.start_ocr(job_id)
    assert ledger.get_job(job_id).events[-1].details == {"redelivered": True}
    extract(ledger, job_id)
    assert ledger.start_ocr(job_id) is False  # finished work is not taken again


def test_approve_keeps_extracted_fields_and_accumulates_corrections(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "needs_review")
    ledger.approve(job_id, {"Claim Amount": "15.00"}, "user:alice")

    job = ledger.get_job(job_id)
    assert (job.state, job.reason_code) == (S.READY, None)
    assert job.fields == FIELDS
    assert job.effective_fields == {**FIELDS, "Claim Amount": "15.00"}
    assert (job.events[-1].actor, job.events[-1].details) == (
        "user:alice",
        {"corrected_fields": {"Claim Amount": "15.00"}},
    )

    # NCB refuses it; a second reviewer fixes another field.
    assert ledger.begin_submit(job_id)
    ledger.submit_rejected(job_id, "VALIDATION_FAILED", "Policy Number: unknown policy")
    job = ledger.get_job(job_id)
    assert (job.state, job.reason_code, job.reason) == (
        S.NEEDS_REVIEW,
        "VALIDATION_FAILED",
        "Policy Number: unknown policy",
    )
    ledger.approve(job_id, {"Invoice Number": "RCP-2"}, "user:bob")
    job = ledger.get_job(job_id)
    assert job.corrected_fields == {"Claim Amount": "15.00", "Invoice Number": "RCP-2"}


def test_reject_records_the_reviewer_and_reason(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "needs_review")
    ledger.reject(job_id, "not a medical receipt", "user:alice")
    job = ledger.get_job(job_id)
    assert (job.state, job.reason_code, job.reason) == (
        S.REJECTED,
        "rejected",
        "not a medical receipt",
    )
    assert job.events[-1].actor == "user:alice"


def test_submission_happy_path_keeps_the_reference(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "ready")
    assert ledger.begin_submit(job_id)
    ledger.finish_submit(job_id, "CLM-2024-567890")
    ledger.mark_done(job_id)
    job = ledger.get_job(job_id)
    assert (job.state, job.ncb_reference) == (S.DONE, "CLM-2024-567890")
    assert [e.actor for e in job.events[-3:]] == ["submitter"] * 3


# -- failures and retries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed_at", "resumes_at"),
    [
        ("received", S.RECEIVED),
        ("ocr_pending", S.RECEIVED),
        ("needs_review", S.NEEDS_REVIEW),
        ("ready", S.READY),
        ("submitting", S.READY),
        ("submitted", S.SUBMITTED),
    ],
)
def test_retry_resumes_before_the_failed_step(
    ledger: Ledger, failed_at: str, resumes_at: JobState
) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, failed_at)
    ledger.fail(job_id, "archive_error", "Drive 500", "worker:archive")
    failed = ledger.get_job(job_id)
    assert (failed.state, failed.reason_code, failed.reason) == (
        S.FAILED,
        "archive_error",
        "Drive 500",
    )
    assert failed.events[-1].actor == "worker:archive"

    assert ledger.retry(job_id, "user:ops") is resumes_at
    job = ledger.get_job(job_id)
    assert (job.state, job.retry_count, job.reason_code) == (resumes_at, 1, None)


def test_deferred_submission_goes_back_to_the_queue_and_counts(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "ready")
    for attempt in (1, 2):
        assert ledger.begin_submit(job_id)
        ledger.submit_deferred(job_id, "NCB 503")
        job = ledger.get_job(job_id)
        assert (job.state, job.retry_count, job.reason_code) == (
            S.READY,
            attempt,
            "ncb_unavailable",
        )
    assert ledger.begin_submit(job_id)
    ledger.fail(job_id, "ncb_auth", "401", "submitter")
    assert ledger.get_job(job_id).retry_count == 2  # fail keeps the count


# -- queries -------------------------------------------------------------------------------


def _queue(ledger: Ledger) -> dict[str, str]:
    """Six jobs in known states and confidences, created in this order."""
    jobs = {name: new_job(ledger) for name in ("a", "b", "c", "d", "e", "f")}
    for name, conf in (("a", 0.2), ("b", 0.5), ("c", 0.8)):
        drive(ledger, jobs[name], "ocr_pending")
        extract(ledger, jobs[name], route="review", confidence=conf)
    drive(ledger, jobs["d"], "ocr_pending")
    extract(ledger, jobs["d"], confidence=0.95)
    drive(ledger, jobs["e"], "failed@received")
    return jobs  # f stays received, with no confidence


def test_list_jobs_filters(ledger: Ledger) -> None:
    jobs = _queue(ledger)
    ids = lambda page: [j.id for j in page.items]  # noqa: E731

    review = ledger.list_jobs(states=[S.NEEDS_REVIEW])
    assert (ids(review), review.total) == ([jobs["a"], jobs["b"], jobs["c"]], 3)
    assert ids(ledger.list_jobs(states=["failed", "received"])) == [jobs["e"], jobs["f"]]
    assert ids(ledger.list_jobs(reason_code="boom")) == [jobs["e"]]
    assert ids(ledger.list_jobs(min_confidence=0.5, max_confidence=0.8)) == [jobs["b"], jobs["c"]]
    assert ids(ledger.list_jobs(email_id=ledger.get_job(jobs["d"]).email_id)) == [jobs["d"]]
    assert ledger.list_jobs(states=[S.DONE]) == ledger.list_jobs(states=[S.DONE], offset=3)
    assert ledger.list_jobs(states=[S.DONE]).total == 0


def test_list_jobs_by_creation_time(ledger: Ledger) -> None:
    first = new_job(ledger)
    between = datetime.now(UTC)
    second = new_job(ledger)
    assert [j.id for j in ledger.list_jobs(created_from=between).items] == [second]
    assert [j.id for j in ledger.list_jobs(created_to=between).items] == [first]
    later = between + timedelta(hours=1)
    assert ledger.list_jobs(created_from=later).total == 0


def test_list_jobs_sorts_and_pages(ledger: Ledger) -> None:
    jobs = _queue(ledger)
    order = lambda sort: [j.id for j in ledger.list_jobs(sort=sort).items]  # noqa: E731

    by_name = [jobs[n] for n in "abcdef"]
    assert order("created_at") == by_name
    assert order("-created_at") == by_name[::-1]
    # jobs without a confidence (e, f) come last both ways
    assert order("confidence")[:4] == [jobs[n] for n in "abcd"]
    assert order("-confidence")[:4] == [jobs[n] for n in "dcba"]
    assert set(order("confidence")[4:]) == {jobs["e"], jobs["f"]}

    pages = [ledger.list_jobs(limit=4, offset=o) for o in (0, 4, 8)]
    assert [len(p.items) for p in pages] == [4, 2, 0]
    assert {p.total for p in pages} == {6}
    assert [j.id for p in pages for j in p.items] == by_name

    with pytest.raises(ValueError, match="sort"):
        ledger.list_jobs(sort="member_name")
    with pytest.raises(ValueError):
        ledger.list_jobs(limit=0)


def test_get_job_has_email_and_full_trail(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "done")
    job = ledger.get_job(job_id)
    assert job.email.policy_number == "POL-67890"
    assert job.email.member_name == "Ann Member"
    assert [e.to_state for e in job.events] == [
        S.RECEIVED,
        S.OCR_PENDING,
        S.EXTRACTED,
        S.READY,
        S.SUBMITTING,
        S.SUBMITTED,
        S.DONE,
    ]
    assert [e.at for e in job.events] == sorted(e.at for e in job.events)
    assert job.updated_at == job.events[-1].at


def test_views_are_frozen_and_never_print_personal_data(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    drive(ledger, job_id, "needs_review")
    ledger.approve(job_id, {"Claim Amount": "99.99"}, "user:alice")
    job = ledger.get_job(job_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = S.DONE  # type: ignore[misc]
    text = repr(job) + repr(ledger.list_jobs())
    for secret in ("Ann Member", "POL-67890", "M-12345", "150.00", "99.99", "receipt.jpg"):
        assert secret not in text
    assert job_id in text


def test_jobs_in_counts_and_summary(ledger: Ledger) -> None:
    jobs = _queue(ledger)
    assert ledger.jobs_in([S.NEEDS_REVIEW]) == [jobs["a"], jobs["b"], jobs["c"]]
    assert ledger.jobs_in(["ready", "received"]) == [jobs["d"], jobs["f"]]
    assert ledger.jobs_in([S.READY], updated_before=datetime.now(UTC)) == [jobs["d"]]
    assert ledger.jobs_in([S.READY], updated_before=datetime.now(UTC) - timedelta(hours=1)) == []

    counts = ledger.counts()
    assert set(counts) == set(JobState)
    assert (counts[S.NEEDS_REVIEW], counts[S.READY], counts[S.FAILED], counts[S.DONE]) == (
        3,
        1,
        1,
        0,
    )

    since = datetime.now(UTC)
    new_job(ledger, sha256=ledger.get_job(jobs["d"]).sha256)
    total, recent = ledger.summary(), ledger.summary(since=since)
    assert (total.emails, total.attachments, total.by_state[S.DUPLICATE]) == (7, 7, 1)
    assert (recent.emails, recent.attachments, recent.by_state[S.DUPLICATE]) == (1, 1, 1)
