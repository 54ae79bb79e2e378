"""Find work that stalled, so nothing waits forever for a message that was lost.

The broker is the fast path; the ledger is the truth. Each sweep looks for jobs that sit
in a working state longer than they should and says what to do with them. Every action
it proposes is safe to repeat (the steps are idempotent and state changes are
compare-and-set), so a sweep that races a live worker does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.ledger import JobState, Ledger


@dataclass
class Sweep:
    ocr: list[str] = field(default_factory=list)  # received or ocr_pending too long
    submit: list[str] = field(default_factory=list)  # ready: (re)send to NCB
    finalize: list[str] = field(default_factory=list)  # submitted, not yet archived/audited
    unstuck: list[str] = field(default_factory=list)  # submitting too long: back to ready


def sweep(
    ledger: Ledger,
    *,
    stale_after_s: float,
    retry_after_s: float,
    submit_paused: bool,
    submit_stale_after_s: float | None = None,
    now: datetime | None = None,
) -> Sweep:
    """What to re-queue now.

    Each step has its own stale time: ``stale_after_s`` for the OCR step (received,
    ocr_pending: a batch may take minutes), ``submit_stale_after_s`` for ``submitting``
    (one NCB call; default ``stale_after_s``), ``retry_after_s`` for ``ready`` and
    ``submitted`` jobs, whose next step is queued as soon as they get there. Nothing is
    (re)sent to NCB while ``submit_paused`` (the breaker is open, e.g. NCB's Retry-After).
    """
    now = now or datetime.now(UTC)
    stale = now - timedelta(seconds=stale_after_s)
    submit_stale = now - timedelta(
        seconds=stale_after_s if submit_stale_after_s is None else submit_stale_after_s
    )
    settled = now - timedelta(seconds=retry_after_s)
    result = Sweep()
    result.ocr = ledger.jobs_in([JobState.RECEIVED, JobState.OCR_PENDING], updated_before=stale)
    for job_id in ledger.jobs_in([JobState.SUBMITTING], updated_before=submit_stale):
        # The submitter died mid-call; NCB may hold the claim, and the retry's
        # Idempotency-Key makes NCB answer with the same reference.
        ledger.submit_deferred(job_id, "The submission was interrupted.", code="interrupted")
        result.unstuck.append(job_id)
    if not submit_paused:
        waiting = ledger.jobs_in([JobState.READY], updated_before=settled)
        # Re-send the interrupted ones now: NCB may already hold them, awaiting the audit.
        result.submit = [*result.unstuck, *(j for j in waiting if j not in result.unstuck)]
    result.finalize = ledger.jobs_in([JobState.SUBMITTED], updated_before=settled)
    return result
