"""The NCB claims contract as data: field names, paths and the claim we send.

Every NCB tenant spells fields and URLs its own way, so nothing here is hard-wired
into the client or the stand-in: both take an :class:`NcbContract`, whose defaults
are the names in ``docs/ncb-api.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_TZ = ZoneInfo("Asia/Kuala_Lumpur")

#: Our attribute name -> NCB's body field name (the contract's defaults).
DEFAULT_FIELD_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "event_date": "Event date",
        "submitted_at": "Submission Date",
        "amount": "Claim Amount",
        "invoice_number": "Invoice Number",
        "policy_number": "Policy Number",
        "source_email_id": "source_email_id",
        "source_filename": "source_filename",
        "extraction_confidence": "extraction_confidence",
    }
)

_CENT = Decimal("0.01")


def _now_local() -> datetime:
    return datetime.now(DEFAULT_TZ).replace(microsecond=0)


@dataclass(frozen=True)
class NcbContract:
    """Paths, body field names and response keys of one NCB tenant.

    ``fields`` may name only the attributes that differ; the rest keep the defaults.
    """

    submit_path: str = "/claims/submit"
    health_path: str = "/health"
    fields: Mapping[str, str] = field(default_factory=dict)
    reference_key: str = "claim_reference"
    error_code_key: str = "error_code"
    message_key: str = "message"
    details_key: str = "details"
    duplicate_code: str = "DUPLICATE_CLAIM"

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(DEFAULT_FIELD_NAMES)
        if unknown:
            raise ValueError(f"unknown claim attributes in field mapping: {sorted(unknown)}")
        merged = {**DEFAULT_FIELD_NAMES, **self.fields}
        if len(set(merged.values())) != len(merged):
            raise ValueError("two claim attributes map to the same NCB field name")
        object.__setattr__(self, "fields", MappingProxyType(merged))

    def name(self, attribute: str) -> str:
        """NCB's field name for one of our :class:`ClaimSubmission` attributes."""
        return self.fields[attribute]


@dataclass(frozen=True)
class ClaimSubmission:
    """One claim as the pipeline hands it to NCB.

    Checked on construction so that a malformed claim fails here, in our process,
    rather than as an NCB 400 that costs a round-trip and a review.
    """

    event_date: date
    amount: Decimal
    invoice_number: str
    policy_number: str
    source_email_id: str
    source_filename: str
    extraction_confidence: float
    submitted_at: datetime = field(default_factory=_now_local)

    def __post_init__(self) -> None:
        if isinstance(self.event_date, datetime) or not isinstance(self.event_date, date):
            raise TypeError("event_date must be a date (not a datetime)")
        if self.submitted_at.tzinfo is None or self.submitted_at.utcoffset() is None:
            raise ValueError("submitted_at must be timezone-aware")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise TypeError("amount must be a finite Decimal")
        if self.amount < 0:
            raise ValueError("amount must not be negative")
        if self.amount != self.amount.quantize(_CENT):
            # Rounding money silently would submit a different claim; refuse instead.
            raise ValueError("amount has more than two decimal places")
        conf = self.extraction_confidence
        if isinstance(conf, bool) or not math.isfinite(conf) or not 0.0 <= conf <= 1.0:
            raise ValueError("extraction_confidence must be within [0, 1]")
        for name in ("invoice_number", "policy_number", "source_email_id", "source_filename"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str")

    def to_body(self, contract: NcbContract | None = None) -> dict[str, Any]:
        """The JSON body NCB expects, under the tenant's field names."""
        c = contract or NcbContract()
        return {
            c.name("event_date"): self.event_date.isoformat(),
            c.name("submitted_at"): self.submitted_at.isoformat(timespec="seconds"),
            # JSON has no decimal type; a two-place value round-trips through float.
            c.name("amount"): float(self.amount.quantize(_CENT)),
            c.name("invoice_number"): self.invoice_number,
            c.name("policy_number"): self.policy_number,
            c.name("source_email_id"): self.source_email_id,
            c.name("source_filename"): self.source_filename,
            c.name("extraction_confidence"): round(float(self.extraction_confidence), 4),
        }


@dataclass(frozen=True)
class SubmitResult:
    """An accepted claim: NCB holds it under ``claim_reference``.

    ``replayed`` (200) and ``duplicate`` (409) say NCB already had it; either way the
    reference is the one to keep.
    """

    claim_reference: str
    status_code: int
    request_id: str
    attempts: int
    replayed: bool = False
    duplicate: bool = False
