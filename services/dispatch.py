"""The one way domain code queues the next step of a job, without knowing the queue.

Steps, review actions and the admin API are handed a :class:`Dispatcher`; the Celery
implementation lives in ``workers.dispatch``. Queueing is the fast path only: the
ledger is the truth and the sweep re-queues whatever a lost message left behind, so a
caller that cannot reach the broker may carry on (see :func:`queue_next`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.ledger import JobState
from services.logs import get_logger

log = get_logger(__name__)


class DispatchError(Exception):
    """The broker could not take the message (down, or refused it)."""


class Dispatcher(Protocol):
    def poll(self) -> None:
        """Read the mailbox now."""

    def ocr(self, job_ids: Sequence[str]) -> None:
        """OCR these jobs (grouped so one engine call reads several)."""

    def submit(self, job_id: str) -> None:
        """Send a ready claim to NCB."""

    def finalize(self, job_id: str) -> None:
        """Queue a submitted claim's audit row and archive upload, and deliver them."""

    def deliver(self) -> None:
        """Deliver the records outbox (audit rows, archive uploads) now."""


def queue_next(dispatcher: Dispatcher, job_id: str, state: JobState) -> bool:
    """Queue the step that follows ``state`` now; False when the sweep must do it."""
    try:
        if state is JobState.RECEIVED:
            dispatcher.ocr([job_id])
        elif state is JobState.READY:
            dispatcher.submit(job_id)
        elif state is JobState.SUBMITTED:
            dispatcher.finalize(job_id)
        else:
            return False
    except DispatchError as exc:
        log.warning("next step not queued; the sweep will", job_id=job_id, error=str(exc))
        return False
    return True
