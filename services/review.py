"""The exception queue's actions: approve with corrections, reject, retry.

Corrections are checked here (an amount NCB can take, a real date) so a reviewer's typo
fails at once with a clear message, not later as an NCB 400. After an action the next
step is queued at once when the broker answers; otherwise the next sweep picks it up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from services.extraction import FIELD_NAMES
from services.ledger import JobState, Ledger

log = logging.getLogger(__name__)


class CorrectionError(ValueError):
    """A reviewer's correction that cannot be submitted as given."""


def normalise_corrections(corrections: Mapping[str, str | None]) -> dict[str, str | None]:
    unknown = sorted(set(corrections) - set(FIELD_NAMES))
    if unknown:
        raise CorrectionError(f"Unknown field(s): {', '.join(unknown)}.")
    clean: dict[str, str | None] = {}
    for name, value in corrections.items():
        value = value.strip() if isinstance(value, str) else value
        if value and name in ("total_amount", "tax_amount"):
            try:
                amount = Decimal(value.replace(",", "").removeprefix("RM").strip())
            except InvalidOperation:
                raise CorrectionError(f"{name} must be a number like 12.50.") from None
            if amount < 0 or amount != amount.quantize(Decimal("0.01")):
                raise CorrectionError(f"{name} must be positive with at most 2 decimals.")
            value = f"{amount:.2f}"
        elif value and name == "service_date":
            try:
                value = date.fromisoformat(value).isoformat()
            except ValueError:
                raise CorrectionError("service_date must be a date like 2024-12-25.") from None
        clean[name] = value or None
    return clean


def approve(ledger: Ledger, job_id: str, corrections: Mapping[str, str | None], actor: str) -> None:
    ledger.approve(job_id, normalise_corrections(corrections), actor)
    _queue_next(job_id, JobState.READY)


def reject(ledger: Ledger, job_id: str, reason: str, actor: str) -> None:
    if not reason.strip():
        raise CorrectionError("A rejection needs a reason.")
    ledger.reject(job_id, reason.strip(), actor)


def retry(ledger: Ledger, job_id: str, actor: str) -> JobState:
    state = ledger.retry(job_id, actor)
    _queue_next(job_id, state)
    return state


def _queue_next(job_id: str, state: JobState) -> None:
    """Best effort: queue the job's next task now; the sweep is the fallback."""
    task = {
        JobState.RECEIVED: ("claims.ocr", [[job_id]], "ocr"),
        JobState.READY: ("claims.submit", [job_id], "submit"),
        JobState.SUBMITTED: ("claims.finalize", [job_id], "submit"),
    }.get(state)
    if task is None:
        return
    from services.runner import redis_answers
    from workers.app import app, broker_url

    if broker_url().startswith("redis") and not redis_answers(broker_url()):
        log.info("job %s: broker not reachable; the next sweep queues it", job_id)
        return
    name, args, queue = task
    app.send_task(name, args=args, queue=queue)
