"""Response and request bodies of the API (pydantic), so the OpenAPI schema is exact.

Built from the ledger's views by the ``of`` constructors; nothing here reads the
database. Field evidence is taken as the extraction stored it, item by item: one
malformed item is left out rather than failing the whole job.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.extraction import FIELD_NAMES
from services.ledger import EventView, JobState, JobSummary, JobView
from services.ledger.stats import LedgerStats, WindowStats
from services.logs import get_logger

log = get_logger(__name__)

SortKey = Literal[
    "created_at", "-created_at", "confidence", "-confidence", "updated_at", "-updated_at"
]


class JobItem(BaseModel):
    """One job in a list."""

    id: str
    email_id: str
    state: JobState
    filename: str | None
    content_type: str | None
    confidence: float | None
    route: str | None
    reason_code: str | None
    created_at: datetime
    updated_at: datetime
    age_s: float = Field(description="Seconds since the job was recorded.")

    @classmethod
    def of(cls, job: JobSummary, now: datetime) -> JobItem:
        return cls(**_summary(job, now))


def _summary(job: JobSummary, now: datetime) -> dict[str, Any]:
    return {
        "id": job.id,
        "email_id": job.email_id,
        "state": job.state,
        "filename": job.filename,
        "content_type": job.content_type,
        "confidence": job.confidence,
        "route": job.route,
        "reason_code": job.reason_code,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "age_s": round(max(0.0, (now - job.created_at).total_seconds()), 3),
    }


class JobList(BaseModel):
    items: list[JobItem]
    total: int = Field(description="How many jobs match the filters, on all pages.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class ReasonModel(BaseModel):
    code: str
    message: str


class Evidence(BaseModel):
    """Where a field was read: a polygon in the page's pixels as OCR saw the page."""

    page: int = Field(description="1-based page number.")
    polygon: list[list[float]]
    text: str
    page_width: int
    page_height: int


class EventModel(BaseModel):
    at: datetime
    from_state: JobState | None
    to_state: JobState
    actor: str
    details: dict[str, Any] | None

    @classmethod
    def of(cls, event: EventView) -> EventModel:
        return cls(
            at=event.at,
            from_state=event.from_state,
            to_state=event.to_state,
            actor=event.actor,
            details=event.details,
        )


class EmailModel(BaseModel):
    id: str
    received_at: datetime | None
    sender_masked: str | None
    policy_number: str | None
    member_id: str | None
    member_name: str | None


class JobDetail(JobItem):
    """One job with its fields, where they were read, its email and its history."""

    reasons: list[ReasonModel]
    fields: dict[str, str | None]
    field_confidence: dict[str, float]
    corrected_fields: dict[str, str | None] | None
    field_evidence: dict[str, Evidence]
    page_count: int | None
    ncb_reference: str | None
    events: list[EventModel]
    email: EmailModel

    @classmethod
    def of_view(cls, job: JobView, now: datetime) -> JobDetail:
        email = job.email
        return cls(
            **_summary(job, now),
            reasons=[ReasonModel(**r) for r in job.reasons or []],
            fields=dict(job.fields or {}),
            field_confidence=dict(job.field_confidence or {}),
            corrected_fields=job.corrected_fields,
            field_evidence=_evidence(job),
            page_count=job.page_count,
            ncb_reference=job.ncb_reference,
            events=[EventModel.of(e) for e in job.events],
            email=EmailModel(
                id=email.id,
                received_at=email.received_at,
                sender_masked=email.sender_masked,
                policy_number=email.policy_number,
                member_id=email.member_id,
                member_name=email.member_name,
            ),
        )


def _evidence(job: JobView) -> dict[str, Evidence]:
    stored = job.field_evidence or {}
    out = {}
    for name, item in stored.items() if isinstance(stored, dict) else ():
        try:
            out[str(name)] = Evidence.model_validate(item)
        except ValidationError:
            log.warning("field evidence not in the expected shape", job_id=job.id, field=name)
    return out


#: An amount as ``claims-ocr review approve`` takes it ("12.50", "RM 1,234.5"); at most
#: 15 digits, so it is a sum of money and not a number the decimal context cannot round.
AMOUNT = r"^\s*(RM\s*)?[0-9][0-9,]{0,14}(\.[0-9]{1,2})?\s*$"


class Corrections(BaseModel):
    """Corrected values; a field left out keeps what OCR read, null clears it."""

    model_config = ConfigDict(extra="forbid")

    total_amount: str | None = Field(default=None, pattern=AMOUNT, examples=["12.50"])
    service_date: date | None = Field(default=None, examples=["2024-12-25"])
    provider_name: str | None = Field(default=None, max_length=500)
    provider_address: str | None = Field(default=None, max_length=1000)
    invoice_number: str | None = Field(default=None, max_length=128)
    tax_amount: str | None = Field(default=None, pattern=AMOUNT, examples=["0.75"])
    currency: str | None = Field(default=None, max_length=8)

    def given(self) -> dict[str, str | None]:
        """The fields the reviewer sent, as the text ``services.review`` checks."""
        return self.model_dump(mode="json", exclude_unset=True)


assert tuple(Corrections.model_fields) == FIELD_NAMES, "Corrections must list FIELD_NAMES"


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: Corrections = Field(default_factory=Corrections)


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="Why, for the audit trail.")


class WindowModel(BaseModel):
    since: datetime
    total: int
    by_state: dict[JobState, int]
    straight_through_rate: float | None = Field(
        description="Submitted or done without review, over submitted, done or rejected."
    )
    review_rate: float | None = Field(description="Sent to review, over routed.")
    average_confidence: float | None
    processing_p50_s: float | None = Field(description="Recorded to done, median.")
    processing_p95_s: float | None

    @classmethod
    def of(cls, w: WindowStats) -> WindowModel:
        return cls(
            since=w.since,
            total=w.total,
            by_state=w.by_state,
            straight_through_rate=w.straight_through_rate,
            review_rate=w.review_rate,
            average_confidence=w.average_confidence,
            processing_p50_s=w.processing_p50_s,
            processing_p95_s=w.processing_p95_s,
        )


class Stats(BaseModel):
    """Jobs recorded today (since 00:00 UTC), in the last 7 and 30 days, and the queue."""

    generated_at: datetime
    review_queue: int
    oldest_review_age_s: float | None
    windows: dict[str, WindowModel] = Field(description='Keys "today", "7d" and "30d".')

    @classmethod
    def of(cls, s: LedgerStats) -> Stats:
        return cls(
            generated_at=s.generated_at,
            review_queue=s.review_queue,
            oldest_review_age_s=s.oldest_review_age_s,
            windows={k: WindowModel.of(w) for k, w in s.windows.items()},
        )
