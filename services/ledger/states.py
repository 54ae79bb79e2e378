"""Job states and the one table of allowed transitions between them.

Every state change in the ledger is checked against ``TRANSITIONS``; nothing else
decides what may follow what.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    RECEIVED = "received"  # attachment stored, job recorded by the poller
    OCR_PENDING = "ocr_pending"  # an OCR worker has taken it
    EXTRACTED = "extracted"  # fields extracted, routing decision not yet applied
    NEEDS_REVIEW = "needs_review"  # in the exception queue, waiting for a person
    READY = "ready"  # queued for submission to NCB
    SUBMITTING = "submitting"  # a submitter has claimed it and is calling NCB
    SUBMITTED = "submitted"  # NCB gave a claim reference
    DONE = "done"  # archived and audited: finished
    FAILED = "failed"  # a step failed; waits for retry or reject
    REJECTED = "rejected"  # a reviewer decided it is not to be submitted
    DUPLICATE = "duplicate"  # same bytes as an earlier job (see duplicate_of)
    SKIPPED = "skipped"  # not a claim document (e.g. a signature logo)


class Route(StrEnum):
    """Where extraction sends a job: straight to NCB, or to a person first."""

    SUBMIT = "submit"
    REVIEW = "review"


S = JobState

#: Allowed moves. ``failed`` is not an end: it is parked until retried or rejected.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # received -> needs_review: a person must look before any step (an email that cannot
    # be read, an upload that failed, an email with no receipt attached).
    S.RECEIVED: frozenset({S.OCR_PENDING, S.DUPLICATE, S.SKIPPED, S.NEEDS_REVIEW, S.FAILED}),
    # ocr_pending -> ocr_pending: a redelivered OCR task takes the job again.
    S.OCR_PENDING: frozenset({S.OCR_PENDING, S.EXTRACTED, S.FAILED}),
    # extracted is passed through inside save_extraction's transaction (no one ever
    # sees a job resting there); it stays a state so the trail shows OCR vs routing.
    S.EXTRACTED: frozenset({S.NEEDS_REVIEW, S.READY}),
    S.NEEDS_REVIEW: frozenset({S.READY, S.REJECTED, S.FAILED}),
    S.READY: frozenset({S.SUBMITTING, S.FAILED}),
    # submitting -> needs_review: NCB said 400 (the data is wrong; a person fixes it).
    # submitting -> ready: NCB was unreachable or busy; the job goes back in the queue.
    S.SUBMITTING: frozenset({S.SUBMITTED, S.NEEDS_REVIEW, S.READY, S.FAILED}),
    S.SUBMITTED: frozenset({S.DONE, S.FAILED}),
    S.FAILED: frozenset({S.RECEIVED, S.NEEDS_REVIEW, S.READY, S.SUBMITTED, S.REJECTED}),
    S.DONE: frozenset(),
    S.REJECTED: frozenset(),
    S.DUPLICATE: frozenset(),
    S.SKIPPED: frozenset(),
}

#: States in which a job still has work ahead of it without a person (in pipeline order).
WORKING_STATES: tuple[JobState, ...] = (
    S.RECEIVED,
    S.OCR_PENDING,
    S.EXTRACTED,
    S.READY,
    S.SUBMITTING,
    S.SUBMITTED,
)

#: States a job never leaves.
END_STATES: frozenset[JobState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

#: Where ``retry`` sends a failed job, by the state it failed from: back to the last
#: checkpoint whose next step is safe to repeat (OCR is pure; NCB calls carry an
#: idempotency key; a submitted job never goes back before ``submitted``).
RETRY_TARGET: dict[JobState, JobState] = {
    S.RECEIVED: S.RECEIVED,
    S.OCR_PENDING: S.RECEIVED,
    S.NEEDS_REVIEW: S.NEEDS_REVIEW,
    S.READY: S.READY,
    S.SUBMITTING: S.READY,
    S.SUBMITTED: S.SUBMITTED,
}


def can_move(current: JobState, target: JobState) -> bool:
    """True when the table allows ``current -> target``."""
    return target in TRANSITIONS[current]
