"""Result types of claim extraction."""

from __future__ import annotations

from dataclasses import dataclass, field

FIELD_NAMES = (
    "total_amount",
    "service_date",
    "provider_name",
    "provider_address",
    "invoice_number",
    "tax_amount",
    "currency",
)
REQUIRED_FIELDS = ("total_amount", "service_date")


@dataclass(frozen=True)
class Reason:
    """Why a claim was routed as it was: a machine code and one human sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class ClaimExtraction:
    """Claim fields read from a receipt, how sure we are of each, and what to do with it."""

    fields: dict[str, str | None]
    field_confidence: dict[str, float]
    confidence: float
    route: str  # "submit" | "review"
    reasons: list[Reason] = field(default_factory=list)
