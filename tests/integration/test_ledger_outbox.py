"""The records outbox and the mail-source rows: the SQL behind exactly-once records and
the mailbox's labels (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from services.ledger import JobState, Ledger
from services.ledger.outbox import ARCHIVE, AUDIT
from services.ledger.sources import NEVER_SYNCED, OK, outcome_of
from tests.support.ledger_helpers import drive, new_email, new_job

pytestmark = pytest.mark.both_databases


def _submitted(ledger: Ledger, email_id: str | None = None, part_index: int = 0) -> str:
    job_id = new_job(ledger, email_id=email_id, part_index=part_index)
    drive(ledger, job_id, "submitted")
    return job_id


def test_a_job_queues_each_record_once(ledger: Ledger) -> None:
    job_id = _submitted(ledger)
    records = {AUDIT: {"job_id": job_id}, ARCHIVE: {"blob_key": "b"}}
    assert ledger.outbox.enqueue(job_id, records) == 2
    assert ledger.outbox.enqueue(job_id, records) == 0
    assert ledger.outbox.queued_kinds(job_id) == {AUDIT, ARCHIVE}
    assert ledger.outbox.backlog(AUDIT).pending == 1


def test_only_submitted_jobs_have_records(ledger: Ledger) -> None:
    job_id = new_job(ledger)
    with pytest.raises(ValueError, match="only submitted"):
        ledger.outbox.enqueue(job_id, {AUDIT: {}})


def test_leases_give_items_in_order_to_one_deliverer_at_a_time(ledger: Ledger) -> None:
    jobs = [_submitted(ledger) for _ in range(3)]
    for job_id in jobs:
        ledger.outbox.enqueue(job_id, {AUDIT: {"job_id": job_id}})
    first = ledger.outbox.lease(AUDIT, 2, lease_s=60)
    assert [i.job_id for i in first] == jobs[:2]
    assert [i.attempts for i in first] == [1, 1]
    # A second deliverer finds the kind busy: nothing out of order, nothing twice.
    assert ledger.outbox.lease(AUDIT, 10, lease_s=60) == []
    ledger.outbox.delivered([i.id for i in first])
    rest = ledger.outbox.lease(AUDIT, 10, lease_s=60)
    assert [i.job_id for i in rest] == jobs[2:]
    assert ledger.outbox.jobs_delivered(jobs) == jobs[:2]


def test_an_expired_lease_is_taken_again_and_shows_the_earlier_attempt(ledger: Ledger) -> None:
    job_id = _submitted(ledger)
    ledger.outbox.enqueue(job_id, {AUDIT: {}})
    (taken,) = ledger.outbox.lease(AUDIT, 1, lease_s=0)  # its deliverer "died"
    (again,) = ledger.outbox.lease(AUDIT, 1, lease_s=60)
    assert again.id == taken.id and again.attempts == 2


def test_postponed_items_wait_then_come_back(ledger: Ledger) -> None:
    job_id = _submitted(ledger)
    ledger.outbox.enqueue(job_id, {ARCHIVE: {}})
    items = ledger.outbox.lease(ARCHIVE, 5, lease_s=60)
    ledger.outbox.postpone([i.id for i in items], "RecordsUnavailable: down", retry_after_s=3600)
    assert ledger.outbox.lease(ARCHIVE, 5, lease_s=60) == []
    assert not ledger.outbox.has_due()
    assert ledger.outbox.backlog(ARCHIVE).pending == 1
    ledger.outbox.postpone([i.id for i in items], "again", retry_after_s=0)
    assert ledger.outbox.has_due()
    assert len(ledger.outbox.lease(ARCHIVE, 5, lease_s=60)) == 1


def test_cursor_and_health_per_source(ledger: Ledger) -> None:
    sources = ledger.sources
    assert sources.get_cursor("gmail") is None
    assert sources.health("gmail").status == NEVER_SYNCED
    sources.set_cursor("gmail", "12345")
    sources.record_sync("gmail", "auth_revoked", "run claims-ocr google-auth")
    health = sources.health("gmail")
    assert (health.status, health.last_success_at) == ("auth_revoked", None)
    sources.record_sync("gmail")
    health = sources.health("gmail")
    assert health.status == OK and health.last_success_at is not None
    assert sources.get_cursor("gmail") == "12345"
    assert sources.get_cursor("imap:INBOX") is None


def test_outcome_of_an_emails_jobs() -> None:
    S = JobState
    assert outcome_of({S.DONE, S.SKIPPED}) == "processed"
    assert outcome_of({S.DONE, S.NEEDS_REVIEW}) == "needs_review"
    assert outcome_of({S.NEEDS_REVIEW, S.FAILED}) == "failed"
    assert outcome_of({S.DONE, S.READY}) is None
    assert outcome_of(set()) is None


def test_emails_to_mark_follow_their_jobs(ledger: Ledger) -> None:
    email = new_email(ledger, source="gmail", source_id="m1")
    working = new_job(ledger, email_id=email, part_index=0)
    review = new_job(ledger, email_id=email, part_index=1)
    drive(ledger, review, "needs_review")
    assert ledger.sources.to_mark("gmail") == []  # one job still has work ahead
    drive(ledger, working, "done")
    (mark,) = ledger.sources.to_mark("gmail")
    assert (mark.source_id, mark.outcome) == ("m1", "needs_review")
    ledger.sources.marked(email, "needs_review")
    assert ledger.sources.to_mark("gmail") == []
    ledger.reject(review, "not a receipt", "user:ops")  # a person acts: the label follows
    (mark,) = ledger.sources.to_mark("gmail")
    assert mark.outcome == "processed"
    ledger.sources.marked(email, "processed")
    assert ledger.sources.to_mark("gmail") == []
    assert ledger.sources.to_mark("imap") == []


def test_the_same_raw_message_under_a_new_source_id_is_the_same_email(ledger: Ledger) -> None:
    first = new_email(ledger, source="imap", source_id="7:1", raw_sha256="ab" * 32)
    again = new_email(ledger, source="imap", source_id="9:1", raw_sha256="ab" * 32)
    other = new_email(ledger, source="imap", source_id="9:2", raw_sha256="cd" * 32)
    assert again == first and other != first
    view = ledger.get_email(first)
    assert view.sender_masked == "a***@example.com"
