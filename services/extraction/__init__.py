"""Claim-field extraction: OCR lines + geometry -> claim fields, confidence and route.

Pure domain code: standard library only, no OCR runtime, web or queue imports.
"""

from services.extraction.extract import extract_claim
from services.extraction.results import FIELD_NAMES, REQUIRED_FIELDS, ClaimExtraction, Reason

__all__ = ["FIELD_NAMES", "REQUIRED_FIELDS", "ClaimExtraction", "Reason", "extract_claim"]
