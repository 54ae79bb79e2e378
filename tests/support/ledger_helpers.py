"""Helpers for tests that need jobs in given states (no pytest needed to import).

They go through the public ``Ledger`` API only, so a test that uses them also
checks the path it walks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.ledger import JobState, Ledger

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
FIELDS = {"Claim Amount": "150.00", "Invoice Number": "RCP-1", "Event date": "2024-12-15"}
FIELD_CONFIDENCE = {"Claim Amount": 0.97, "Invoice Number": 0.91, "Event date": 0.88}


def new_email(ledger: Ledger, source_id: str | None = None, **overrides: Any) -> str:
    values: dict[str, Any] = {
        "source": "maildir",
        "source_id": source_id or uuid.uuid4().hex,
        "message_id": f"<{uuid.uuid4().hex}@example.com>",
        "received_at": NOW,
        "sender": "Ann Member <ann.member@example.com>",
        "policy_number": "POL-67890",
        "member_id": "M-12345",
        "member_name": "Ann Member",
    }
    return ledger.record_email(**{**values, **overrides})


def new_job(
    ledger: Ledger,
    *,
    email_id: str | None = None,
    part_index: int = 0,
    sha256: str | None = None,
    skip_reason: str | None = None,
    review_reason: str | None = None,
) -> str:
    job_id, _ = ledger.record_attachment(
        email_id or new_email(ledger),
        part_index,
        "receipt.jpg",
        "image/jpeg",
        1234,
        sha256 or uuid.uuid4().hex * 2,
        f"blobs/{uuid.uuid4().hex}",
        skip_reason=skip_reason,
        review_reason=review_reason,
    )
    return job_id


def extract(
    ledger: Ledger, job_id: str, *, route: str = "submit", confidence: float = 0.95
) -> JobState:
    reasons = [] if route == "submit" else [{"code": "low_confidence", "message": "amount 0.41"}]
    return ledger.save_extraction(
        job_id,
        fields=FIELDS,
        field_confidence=FIELD_CONFIDENCE,
        confidence=confidence,
        route=route,
        reasons=reasons,
        page_count=1,
    )


_PATHS: dict[str, list[Callable[[Ledger, str], object]]] = {
    "received": [],
    "ocr_pending": [Ledger.start_ocr],
    "needs_review": [Ledger.start_ocr, lambda lg, j: extract(lg, j, route="review")],
    "ready": [Ledger.start_ocr, extract],
}
_PATHS["submitting"] = [*_PATHS["ready"], Ledger.begin_submit]
_PATHS["submitted"] = [*_PATHS["submitting"], lambda lg, j: lg.finish_submit(j, "CLM-1")]
_PATHS["done"] = [*_PATHS["submitted"], Ledger.mark_done]
_PATHS["rejected"] = [*_PATHS["needs_review"], lambda lg, j: lg.reject(j, "not ours", "user:t")]


def drive(ledger: Ledger, job_id: str, where: str) -> None:
    """Walk a ``received`` job to ``where``: a state name, or ``failed@<state>``."""
    state, _, failed_from = where.partition("@")
    for step in _PATHS[failed_from or state]:
        step(ledger, job_id)
    if failed_from:
        ledger.fail(job_id, "boom", "step failed", "test")
