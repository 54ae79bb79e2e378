"""Plain, frozen read models the ledger returns.

Queries hand back these instead of ORM objects so nothing is bound to a closed
session. Fields that can carry personal data are left out of ``repr`` so that
logging a view never logs PHI.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from services.ledger.models import Email, Job, JobEvent
from services.ledger.states import JobState


def _columns(view: type, row: Any) -> dict[str, Any]:
    """The row's value for each field of ``view`` (views mirror their table's columns)."""
    return {f.name: getattr(row, f.name) for f in fields(view)}


@dataclass(frozen=True)
class EmailView:
    id: str
    source: str
    source_id: str
    message_id: str | None
    received_at: datetime | None
    sender_hash: str | None
    policy_number: str | None = field(repr=False)
    member_id: str | None = field(repr=False)
    member_name: str | None = field(repr=False)
    attachment_count: int
    created_at: datetime
    sender_masked: str | None = field(default=None, repr=False)
    source_outcome: str | None = None

    @classmethod
    def of(cls, row: Email) -> EmailView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class EventView:
    id: int
    job_id: str
    at: datetime
    from_state: JobState | None
    to_state: JobState
    actor: str
    details: dict[str, Any] | None = field(repr=False)

    @classmethod
    def of(cls, row: JobEvent) -> EventView:
        return cls(**_columns(cls, row))


@dataclass(frozen=True)
class JobSummary:
    """Every column of a job but its field evidence (``JobView``); what ``list_jobs`` returns."""

    id: str
    email_id: str
    part_index: int
    filename: str | None = field(repr=False)
    content_type: str | None
    size_bytes: int
    sha256: str
    blob_key: str
    state: JobState
    reason_code: str | None
    reason: str | None = field(repr=False)
    retry_count: int
    duplicate_of: str | None
    page_count: int | None
    fields: dict[str, str | None] | None = field(repr=False)
    field_confidence: dict[str, float] | None
    confidence: float | None
    route: str | None
    reasons: list[dict[str, str]] | None = field(repr=False)
    corrected_fields: dict[str, str | None] | None = field(repr=False)
    ncb_reference: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def effective_fields(self) -> dict[str, str | None]:
        """The fields to submit: as extracted, overlaid with a reviewer's corrections."""
        return {**(self.fields or {}), **(self.corrected_fields or {})}

    @staticmethod
    def columns(row: Job) -> dict[str, Any]:
        return _columns(JobSummary, row)

    @classmethod
    def of(cls, row: Job) -> JobSummary:
        return cls(**cls.columns(row))


@dataclass(frozen=True)
class JobView(JobSummary):
    """One job with its email and its whole event trail (oldest first).

    ``field_evidence`` (where on which page each field was read: page, polygon in that
    page image's pixels, the OCR line's text) is here and not on ``JobSummary``: only a
    reviewer looking at one job needs it, not every row of a listing.
    """

    email: EmailView
    events: tuple[EventView, ...]
    field_evidence: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def of_full(cls, row: Job, email: Email, events: list[JobEvent]) -> JobView:
        return cls(
            **JobSummary.columns(row),
            email=EmailView.of(email),
            events=tuple(EventView.of(e) for e in events),
            field_evidence=row.field_evidence,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of ``list_jobs``: the items and how many match in all."""

    items: tuple[JobSummary, ...]
    total: int


@dataclass(frozen=True)
class LedgerSummary:
    """Totals for a run summary: emails, attachments (jobs) and jobs per state."""

    emails: int
    attachments: int
    by_state: dict[JobState, int]
