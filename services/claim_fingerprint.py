"""Claim fingerprints: what makes two claims "the same receipt claimed twice".

Byte-identical resends are caught at intake by sha256. A second photo of the same
receipt, or the same PDF forwarded from another address, has other bytes but the same
claim: so once fields are read, the claim is keyed on what it says.

Two keys, each kept on the job as a sha256 hex (indexed, so a lookup is an index probe,
and the columns hold no readable claim data):

* **strict** = invoice number + amount + service date. Two claims match on it when,
  in addition, their providers are equal or one name contains the other (OCR may cut a
  name short, or miss it: a missing provider does not prevent the match, since invoice,
  amount and date already agree).
* **loose** = amount + service date + provider. Used only when the invoice number is
  missing on either claim (not read, or not printed): without it, amount and date alone
  would join unrelated claims from different providers, so the whole provider name
  must agree. When both claims have invoice numbers and they differ, they are
  different receipts even if amount, date and provider agree (two visits on one day).

Normalisation is deliberately plain (see the ``normalise_*`` functions); it does not
guess OCR confusions (O/0, l/1): a receipt read differently in two photos is not
matched, it is not flagged either, and nothing is lost but the catch. A match only
sends the claim to a person (``possible_duplicate``), never rejects it.

Standard library only: the ledger uses :class:`ClaimFingerprint`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

#: Company-form words dropped from the end of a provider name ("KLINIK ABC SDN. BHD."
#: and "Klinik ABC" are the same provider). "M" is dropped only after one of these, as
#: in "ABC (M) SDN BHD" (Malaysia).
PROVIDER_SUFFIXES = frozenset(
    {"SDN", "BHD", "BERHAD", "PLT", "ENTERPRISE", "ENTERPRISES", "LTD", "LIMITED"}
)
_NOT_WORD = re.compile(r"[\W_]+")


def normalise_invoice(value: str | None) -> str | None:
    """Upper case, letters and digits only: ``"inv-2020/99 079"`` -> ``"INV202099079"``."""
    if not value:
        return None
    return _NOT_WORD.sub("", value.upper()) or None


def normalise_amount(value: str | None) -> str | None:
    """A Decimal with two places: ``"1,234.5"`` and ``"RM 1234.50"`` -> ``"1234.50"``."""
    if not value:
        return None
    text = value.upper().replace(",", "").replace(" ", "").removeprefix("RM")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return f"{amount.quantize(Decimal('0.01')):.2f}"


def normalise_date(value: str | None) -> str | None:
    """ISO date (extraction already gives ISO; anything else is no date)."""
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return None


def normalise_provider(value: str | None) -> str | None:
    """Upper case, punctuation to spaces, whitespace collapsed, company suffixes dropped.

    ``"Klinik Gigi Dr. Tan Sdn. Bhd."`` -> ``"KLINIK GIGI DR TAN"``.
    """
    if not value:
        return None
    words = _NOT_WORD.sub(" ", value.upper()).split()
    dropped = False
    while words and words[-1] in PROVIDER_SUFFIXES:
        words.pop()
        dropped = True
    if dropped and words and words[-1] == "M":
        words.pop()
    return " ".join(words) or None


def _key(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ClaimFingerprint:
    """A claim's two keys (sha256 hex, None when a part is missing) and its provider."""

    strict: str | None  # invoice number + amount + date
    loose: str | None  # amount + date + provider
    provider: str | None  # normalised, for the "one contains the other" check

    def __bool__(self) -> bool:
        return self.strict is not None or self.loose is not None

    def same_provider(self, other_provider_name: str | None) -> bool:
        """Strict-key companion check: equal, one contains the other, or one is missing."""
        other = normalise_provider(other_provider_name)
        if self.provider is None or other is None:
            return True
        return self.provider in other or other in self.provider


def claim_fingerprint(fields: Mapping[str, str | None]) -> ClaimFingerprint:
    """Fingerprint of extracted claim fields (``total_amount``, ``service_date``, ...)."""
    invoice = normalise_invoice(fields.get("invoice_number"))
    amount = normalise_amount(fields.get("total_amount"))
    day = normalise_date(fields.get("service_date"))
    provider = normalise_provider(fields.get("provider_name"))
    strict = _key("strict", invoice, amount, day) if invoice and amount and day else None
    loose = _key("loose", amount, day, provider) if amount and day and provider else None
    return ClaimFingerprint(strict=strict, loose=loose, provider=provider)
