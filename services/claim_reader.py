"""Attachment bytes -> pages -> batched OCR calls -> claim fields, per document.

Shared by ``claims-ocr extract`` and the OCR worker, so both read documents the same
way. Pages of all documents are grouped into engine calls, in order, up to a pixel
budget per call (``PageLimits.call_max_pixels``), and only one call's pages are decoded
at a time, so memory follows the budget rather than the batch. The budget depends on the
device (:func:`call_max_pixels`): a GPU gets true batches up to the memory budget, a CPU
the grouping that measured fastest. The engine reads each page on its own, so a
document's fields are the same however its pages were grouped. A document that cannot be
decoded gets its own clear reason without failing the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from services.extraction import FIELD_NAMES, ClaimExtraction, Reason, extract_claim
from services.ocr.engine import OcrEngine
from services.ocr.pages import PageError, PageLimits, PageSource, open_pages
from services.ocr.result import PageText

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


# Pixels one engine call holds on a CPU. Detection runs page by page there, but
# recognition batches crops of like shape, which several pages together fill better. On
# 2 shared cores, plans alternating on the same pages (SROIE receipts with A4 scans), page
# by page was the slowest every time; per page, against its CPU time, a 4 Mpx budget took
# 0.96x, 16 Mpx 0.92x, one call of 8 pages (16-24 Mpx) 0.90x and of 16 pages (45 Mpx)
# 0.88x; in scripts/benchmark_ocr.py (32 pages) worker batches took 0.85x at 16 Mpx and
# 0.80x as one call each. But one call of 60 pages ran 1.7x slower at 4.6 GB (issue 12).
# 32 Mpx holds a worker batch of receipts with a few A4 scans, well short of that.
CPU_CALL_MAX_PIXELS = 32_000_000


def call_max_pixels(device: str, memory_budget: int) -> int:
    """The pixels one engine call may hold on ``device`` (``OCR_DEVICE``).

    A GPU reads a call's pages as true batches, so it gets the whole memory budget
    (``OCR_CALL_MAX_PIXELS``); a CPU gains from a few pages a call but loses on many, so
    it gets :data:`CPU_CALL_MAX_PIXELS`. The memory budget caps every call on every device.
    """
    if device == "cpu":
        return min(memory_budget, CPU_CALL_MAX_PIXELS)
    return memory_budget


def plan_calls(page_pixels: Sequence[Sequence[int]], budget: int) -> list[list[tuple[int, int]]]:
    """Group ``(document, page)`` indexes, in order, into engine calls of at most ``budget``
    pixels; a page over the budget on its own is read alone rather than refused."""
    calls: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    used = 0
    for doc, pages in enumerate(page_pixels):
        for index, pixels in enumerate(pages):
            if current and used + pixels > budget:
                calls.append(current)
                current, used = [], 0
            current.append((doc, index))
            used += pixels
    if current:
        calls.append(current)
    return calls


def read_documents(
    engine: OcrEngine,
    documents: Sequence[tuple[str, bytes]],
    *,
    limits: PageLimits,
    threshold: float,
    today: date | None = None,
    currency: str = "MYR",
) -> list[DocumentResult]:
    """Read ``(key, bytes)`` documents in as few engine calls as the call budget allows."""
    today = today or date.today()
    results: dict[str, DocumentResult] = {}
    opened: list[tuple[str, PageSource]] = []
    try:
        for key, data in documents:
            try:
                opened.append((key, open_pages(data, limits)))
            except PageError as exc:
                log.info("document %s not decodable: %s", key, exc.code)
                results[key] = unreadable(key, exc.code, exc.message)
        texts: list[list[PageText]] = [[] for _ in opened]
        seconds = [0.0] * len(opened)
        broken: dict[int, PageError] = {}
        calls = plan_calls([source.page_pixels for _, source in opened], limits.call_max_pixels)
        if len(calls) > 1:
            log.info("%d pages read in %d engine calls", sum(map(len, calls)), len(calls))
        for call in calls:
            _read_call(engine, call, opened, texts, seconds, broken)
    finally:
        for _, source in opened:
            source.close()
    for doc, (key, source) in enumerate(opened):
        error = broken.get(doc)
        if error is not None:
            log.info("document %s not decodable: %s", key, error.code)
            results[key] = unreadable(key, error.code, error.message)
            continue
        extraction = extract_claim(texts[doc], today=today, threshold=threshold, currency=currency)
        results[key] = DocumentResult(key, extraction, len(source), seconds[doc])
    return [results[key] for key, _ in documents]


def _read_call(
    engine: OcrEngine,
    call: Sequence[tuple[int, int]],
    opened: Sequence[tuple[str, PageSource]],
    texts: list[list[PageText]],
    seconds: list[float],
    broken: dict[int, PageError],
) -> None:
    """Decode one call's pages, read them, and let them go: only their text is kept.

    A page that fails to decode fails its document (as reading it alone would); the
    document's other pages are then left out of this and later calls.
    """
    pages = []
    owners = []
    for doc, index in call:
        if doc in broken:
            continue
        source = opened[doc][1]
        try:
            pages.append(source.page(index))
        except PageError as exc:
            broken[doc] = exc
            continue
        owners.append(doc)
        if index == len(source) - 1:
            source.close()  # its last page: release the parsed document now
    keep = [i for i, doc in enumerate(owners) if doc not in broken]
    pages = [pages[i] for i in keep]
    owners = [owners[i] for i in keep]
    if not pages:
        return
    started = time.perf_counter()
    read = engine.read(pages)
    per_page = (time.perf_counter() - started) / len(pages)
    del pages
    for doc, page_text in zip(owners, read, strict=True):
        texts[doc].append(page_text)
        seconds[doc] += per_page


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
        "field_evidence": ex.evidence_json(),
    }
