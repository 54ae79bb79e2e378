"""The exception queue's actions: approve with corrections, reject, retry.

Corrections are checked here (an amount NCB can take, a real date) so a reviewer's typo
fails at once with a clear message, not later as an NCB 400. After an action the next
step is queued through the dispatcher it is handed; when the broker does not answer,
the next sweep picks it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation

from services.dispatch import Dispatcher, queue_next
from services.extraction import FIELD_NAMES
from services.ledger import JobState, Ledger


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
            if not amount.is_finite() or amount < 0 or amount.adjusted() >= 12:
                raise CorrectionError(f"{name} must be a positive amount below 10^12.")
            if amount != amount.quantize(Decimal("0.01")):
                raise CorrectionError(f"{name} must be positive with at most 2 decimals.")
            value = f"{amount:.2f}"
        elif value and name == "service_date":
            try:
                value = date.fromisoformat(value).isoformat()
            except ValueError:
                raise CorrectionError("service_date must be a date like 2024-12-25.") from None
        clean[name] = value or None
    return clean


def approve(
    ledger: Ledger,
    dispatcher: Dispatcher,
    job_id: str,
    corrections: Mapping[str, str | None],
    actor: str,
) -> None:
    ledger.approve(job_id, normalise_corrections(corrections), actor)
    queue_next(dispatcher, job_id, JobState.READY)


def reject(ledger: Ledger, job_id: str, reason: str, actor: str) -> None:
    if not reason.strip():
        raise CorrectionError("A rejection needs a reason.")
    ledger.reject(job_id, reason.strip(), actor)


def retry(ledger: Ledger, dispatcher: Dispatcher, job_id: str, actor: str) -> JobState:
    state = ledger.retry(job_id, actor)
    queue_next(dispatcher, job_id, state)
    return state
