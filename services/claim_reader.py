"""Attachment bytes -> pages -> one batched OCR call -> claim fields, per document.

Shared by ``claims-ocr extract`` and the OCR worker, so both read documents the same
way. Pages of all documents in a call go to the engine together (one GPU batch), and a
document that cannot be decoded gets its own clear reason without failing the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from services.extraction import FIELD_NAMES, ClaimExtraction, Reason, extract_claim
from services.ocr.engine import OcrEngine
from services.ocr.pages import PageError, PageLimits, load_pages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentResult:
    """What reading one document gave: an extraction, or the reason there is none."""

    key: str
    extraction: ClaimExtraction
    page_count: int
    ocr_seconds: float
    error_code: str | None = None


def unreadable(key: str, code: str, message: str) -> DocumentResult:
    """A result for a document that never reached OCR: routed to review with its reason."""
    extraction = ClaimExtraction(
        fields=dict.fromkeys(FIELD_NAMES),
        field_confidence=dict.fromkeys(FIELD_NAMES, 0.0),
        confidence=0.0,
        route="review",
        reasons=[Reason(code, message)],
    )
    return DocumentResult(key, extraction, 0, 0.0, error_code=code)


def read_documents(
    engine: OcrEngine,
    documents: Sequence[tuple[str, bytes]],
    *,
    limits: PageLimits,
    threshold: float,
    today: date | None = None,
) -> list[DocumentResult]:
    """Read ``(key, bytes)`` documents with one engine call over all their pages."""
    today = today or date.today()
    decoded: list[tuple[str, list]] = []
    failed: dict[str, DocumentResult] = {}
    for key, data in documents:
        try:
            decoded.append((key, load_pages(data, limits)))
        except PageError as exc:
            log.info("document %s not decodable: %s", key, exc.code)
            failed[key] = unreadable(key, exc.code, exc.message)
    all_pages = [page for _, pages in decoded for page in pages]
    started = time.perf_counter()
    texts = engine.read(all_pages) if all_pages else []
    per_page = (time.perf_counter() - started) / max(1, len(all_pages))
    results: dict[str, DocumentResult] = dict(failed)
    cursor = 0
    for key, pages in decoded:
        page_texts = texts[cursor : cursor + len(pages)]
        cursor += len(pages)
        extraction = extract_claim(page_texts, today=today, threshold=threshold)
        results[key] = DocumentResult(key, extraction, len(pages), per_page * len(pages))
    return [results[key] for key, _ in documents]


def result_record(result: DocumentResult) -> dict:
    """The JSON shape ``claims-ocr extract`` prints (and sroie_score.py reads)."""
    ex = result.extraction
    return {
        "file": result.key,
        "route": ex.route,
        "confidence": round(ex.confidence, 4),
        "fields": {name: ex.fields.get(name) for name in FIELD_NAMES},
        "field_confidence": {
            name: round(ex.field_confidence.get(name, 0.0), 4) for name in FIELD_NAMES
        },
        "reasons": [{"code": r.code, "message": r.message} for r in ex.reasons],
        "pages": result.page_count,
    }
