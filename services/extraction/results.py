"""Result types of claim extraction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.extraction.evidence import FieldEvidence

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
    # Where each field with a value was read, for a reviewer to see it on the page;
    # fields with no single printed source (a defaulted currency) have none.
    field_evidence: dict[str, FieldEvidence] = field(default_factory=dict)

    def evidence_json(self) -> dict[str, dict[str, Any]]:
        """``field_evidence`` as stored in the ledger (``jobs.field_evidence``)."""
        return {name: ev.as_json() for name, ev in self.field_evidence.items()}
