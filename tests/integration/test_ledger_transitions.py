"""Every allowed transition through the Ledger API, every refused one, and races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.ledger import TRANSITIONS, InvalidTransition, JobNotFound, JobState, Ledger
from tests.support.ledger_helpers import drive, extract, new_email, new_job

pytestmark = pytest.mark.both_databases  # the ledger's SQL: SQLite and PostgreSQL

S = JobState
Action = Callable[[Ledger, str], object]


def _same_bytes_as(lg: Ledger, job_id: str, skip_reason: str | None = None) -> str:
    return new_job(lg, sha256=lg.get_job(job_id).sha256, skip_reason=skip_reason)


def _fail(lg: Ledger, job_id: str) -> None:
    lg.fail(job_id, "ocr_error", "engine crashed", "worker:ocr")


# Edges taken when a job is recorded: the new job is settled at once.
CREATED_AS = {
    (S.RECEIVED, S.DUPLICATE): "duplicate",
    (S.RECEIVED, S.SKIPPED): "skipped",
    (S.RECEIVED, S.NEEDS_REVIEW): "review_on_arrival",
}

# (from, to) -> (where the job starts, the call that moves it).
EDGES: dict[tuple[JobState, JobState], tuple[str, Action]] = {
    (S.RECEIVED, S.OCR_PENDING): ("received", Ledger.start_ocr),
    (S.RECEIVED, S.FAILED): ("received", _fail),
    (S.OCR_PENDING, S.OCR_PENDING): ("ocr_pending", Ledger.start_ocr),
    (S.OCR_PENDING, S.EXTRACTED): ("ocr_pending", extract),
    (S.OCR_PENDING, S.FAILED): ("ocr_pending", _fail),
    (S.EXTRACTED, S.READY): ("ocr_pending", extract),
    (S.EXTRACTED, S.NEEDS_REVIEW): ("ocr_pending", lambda lg, j: extract(lg, j, route="review")),
    (S.NEEDS_REVIEW, S.READY): ("needs_review", lambda lg, j: lg.approve(j, {}, "user:alice")),
    (S.NEEDS_REVIEW, S.REJECTED): ("needs_review", lambda lg, j: lg.reject(j, "no", "user:bo")),
    (S.NEEDS_REVIEW, S.FAILED): ("needs_review", _fail),
    (S.READY, S.SUBMITTING): ("ready", Ledger.begin_submit),
    (S.READY, S.FAILED): ("ready", _fail),
    (S.SUBMITTING, S.SUBMITTED): ("submitting", lambda lg, j: lg.finish_submit(j, "CLM-9")),
    (S.SUBMITTING, S.NEEDS_REVIEW): (
        "submitting",
        lambda lg, j: lg.submit_rejected(j, "VALIDATION_FAILED", "Policy Number unknown"),
    ),
    (S.SUBMITTING, S.READY): ("submitting", lambda lg, j: lg.submit_deferred(j, "NCB 503")),
    (S.SUBMITTING, S.FAILED): ("submitting", _fail),
    (S.SUBMITTED, S.DONE): ("submitted", Ledger.mark_done),
    (S.SUBMITTED, S.FAILED): ("submitted", _fail),
    (S.FAILED, S.RECEIVED): ("failed@ocr_pending", lambda lg, j: lg.retry(j, "user:ops")),
    (S.FAILED, S.NEEDS_REVIEW): ("failed@needs_review", lambda lg, j: lg.retry(j, "user:ops")),
    (S.FAILED, S.READY): ("failed@submitting", lambda lg, j: lg.retry(j, "user:ops")),
    (S.FAILED, S.SUBMITTED): ("failed@submitted", lambda lg, j: lg.retry(j, "user:ops")),
    (S.FAILED, S.REJECTED): ("failed@received", lambda lg, j: lg.reject(j, "junk", "user:ops")),
}

# What each API method may move a job from; anything else must be refused.
ALLOWED_FROM: dict[str, set[JobState]] = {
    "start_ocr": {S.RECEIVED, S.OCR_PENDING},
    "save_extraction": {S.OCR_PENDING},
    "begin_submit": {S.READY},
    "finish_submit": {S.SUBMITTING},
    "submit_rejected": {S.SUBMITTING},
    "submit_deferred": {S.SUBMITTING},
    "mark_done": {S.SUBMITTED},
    "fail": {s for s in JobState if S.FAILED in TRANSITIONS[s]},
    "retry": {S.FAILED},
    "approve": {S.NEEDS_REVIEW},
    "reject": {S.NEEDS_REVIEW, S.FAILED},
}
CALLS: dict[str, Action] = {
    "start_ocr": Ledger.start_ocr,
    "save_extraction": extract,
    "begin_submit": Ledger.begin_submit,
    "finish_submit": lambda lg, j: lg.finish_submit(j, "CLM-1"),
    "submit_rejected": lambda lg, j: lg.submit_rejected(j, "VALIDATION_FAILED", "bad"),
    "submit_deferred": lambda lg, j: lg.submit_deferred(j, "503"),
    "mark_done": Ledger.mark_done,
    "fail": _fail,
    "retry": lambda lg, j: lg.retry(j, "user:ops"),
    "approve": lambda lg, j: lg.approve(j, {}, "user:ops"),
    "reject": lambda lg, j: lg.reject(j, "no", "user:ops"),
}
RESTING = [
    "received",
    "ocr_pending",
    "needs_review",
    "ready",
    "submitting",
    "submitted",
    "done",
    "rejected",
    "failed@received",
    "duplicate",
    "skipped",
]


def test_every_table_edge_has_a_case() -> None:
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert set(EDGES) | set(CREATED_AS) == table


@pytest.mark.parametrize("edge", list(EDGES), ids=lambda e: f"{e[0]}->{e[1]}")
def test_allowed_transition_is_recorded(
    shared_ledger: Ledger,
    edge: tuple[JobState, JobState],
) -> None:
    start, action = EDGES[edge]
    job_id = new_job(shared_ledger)
    drive(shared_ledger, job_id, start)
    before = len(shared_ledger.get_job(job_id).events)

    action(shared_ledger, job_id)

    job = shared_ledger.get_job(job_id)
    new_events = job.events[before:]
    assert edge in [(e.from_state, e.to_state) for e in new_events]
    assert all(e.actor for e in new_events)
    if edge[1] is not S.EXTRACTED:  # extracted is passed through to ready/needs_review
        assert job.state is edge[1]


@pytest.mark.parametrize("edge", list(CREATED_AS), ids=lambda e: f"{e[0]}->{e[1]}")
def test_jobs_settled_when_recorded_have_a_full_trail(
    shared_ledger: Ledger, edge: tuple[JobState, JobState]
) -> None:
    job = shared_ledger.get_job(_make(shared_ledger, CREATED_AS[edge]))
    assert job.state is edge[1]
    assert [(e.from_state, e.to_state) for e in job.events] == [(None, S.RECEIVED), edge]
    assert {e.actor for e in job.events} == {"poller"}


def _make(ledger: Ledger, where: str) -> str:
    if where in ("duplicate", "skipped"):
        skip = "tiny_inline_image" if where == "skipped" else None
        return _same_bytes_as(ledger, new_job(ledger), skip_reason=skip)
    if where == "review_on_arrival":  # e.g. an empty upload: a person asks for it again
        return new_job(ledger, review_reason="empty_attachment")
    job_id = new_job(ledger)
    drive(ledger, job_id, where)
    return job_id


@pytest.mark.parametrize("where", RESTING)
def test_refused_transitions_change_nothing(shared_ledger: Ledger, where: str) -> None:
    job_id = _make(shared_ledger, where)  # refusals change nothing, so one job serves all
    before = shared_ledger.get_job(job_id)
    refused = [name for name, allowed in ALLOWED_FROM.items() if before.state not in allowed]
    assert refused
    for name in refused:
        if name in ("start_ocr", "begin_submit"):  # claims answer False instead of raising
            assert CALLS[name](shared_ledger, job_id) is False, name
        else:
            with pytest.raises(InvalidTransition) as error:
                CALLS[name](shared_ledger, job_id)
            assert error.value.current == before.state
        assert shared_ledger.get_job(job_id) == before, name  # same row, same events


def test_unknown_job_raises_not_found(shared_ledger: Ledger) -> None:
    with pytest.raises(JobNotFound):
        shared_ledger.fail("no-such-job", "x", "y", "test")
    with pytest.raises(JobNotFound):
        shared_ledger.get_job("no-such-job")
    with pytest.raises(JobNotFound):  # a claim answers False only for a job that exists
        shared_ledger.begin_submit("no-such-job")


def _race(n: int, call: Callable[[], object]) -> list[object]:
    """Run ``call`` in ``n`` threads released together; results or raised exceptions."""
    barrier = threading.Barrier(n)

    def one() -> object:
        barrier.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


def test_begin_submit_race_has_exactly_one_winner(shared_ledger: Ledger) -> None:
    for _ in range(5):
        job_id = new_job(shared_ledger)
        drive(shared_ledger, job_id, "ready")
        results = _race(6, lambda j=job_id: shared_ledger.begin_submit(j))
        assert sorted(results, key=str) == [False] * 5 + [True]
        events = shared_ledger.get_job(job_id).events
        assert [e.to_state for e in events].count(S.SUBMITTING) == 1


def test_two_reviewers_approving_at_once_one_wins(shared_ledger: Ledger) -> None:
    job_id = new_job(shared_ledger)
    drive(shared_ledger, job_id, "needs_review")
    results = _race(4, lambda: shared_ledger.approve(job_id, {"Claim Amount": "1.00"}, "user:x"))
    assert results.count(None) == 1
    assert all(isinstance(r, InvalidTransition) for r in results if r is not None)
    assert [e.to_state for e in shared_ledger.get_job(job_id).events].count(S.READY) == 1


def test_concurrent_recording_makes_one_job_and_one_original(shared_ledger: Ledger) -> None:
    email_id = new_email(shared_ledger)
    same_part = _race(
        4,
        lambda: shared_ledger.record_attachment(
            email_id, 3, "r.pdf", "application/pdf", 10, "c" * 64, "blobs/c"
        ),
    )
    assert {r[0] for r in same_part} and len({r[0] for r in same_part}) == 1  # type: ignore[index]
    assert sorted(r[1] for r in same_part) == [False, False, False, True]  # type: ignore[index]

    # The same bytes arriving in four emails at once: one original, three duplicates of it.
    emails = [new_email(shared_ledger) for _ in range(4)]
    it = iter(emails)
    lock = threading.Lock()

    def record() -> str:
        with lock:
            mine = next(it)
        return new_job(shared_ledger, email_id=mine, sha256="d" * 64)

    jobs = [shared_ledger.get_job(j) for j in _race(4, record)]  # type: ignore[arg-type]
    originals = [j for j in jobs if j.state is S.RECEIVED]
    assert len(originals) == 1
    assert {j.duplicate_of for j in jobs if j.state is S.DUPLICATE} == {originals[0].id}
