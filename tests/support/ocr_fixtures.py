"""The OCR engine, built once per test run (loaded by ``tests/conftest.py``).

Loading the PP-OCR models takes seconds, so every test that needs the default engine
takes the session-scoped ``ocr_engine`` fixture instead of building its own. Only a test
about a differently configured engine (another device, thread count or detection size)
or about construction itself (e.g. its errors) builds one, and only for itself.
``read`` keeps no state between calls, so sharing one engine is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from services.blobs import BlobStore
    from services.ledger import Ledger
    from services.ocr.engine import OcrEngine
    from services.ocr.onnx_engine import OnnxOcrEngine
    from services.recognition import RecognitionReport

OCR_TEST_THREADS = 2  # leaves cores for the other processes a test run starts


@pytest.fixture(scope="session")
def ocr_engine() -> OnnxOcrEngine:
    """The default ONNX PP-OCR engine on the CPU, shared by the whole session."""
    from services.ocr.onnx_engine import OnnxOcrEngine  # loads onnxruntime only when used

    return OnnxOcrEngine(threads=OCR_TEST_THREADS)


def recognise(
    job_ids: Sequence[str],
    *,
    ledger: Ledger,
    blobs: BlobStore,
    engine: OcrEngine,
    threshold: float = 0.9,
    currency: str = "MYR",
) -> RecognitionReport:
    """The OCR step as its task runs it, with the default page limits and 3 attempts."""
    from services.ocr.pages import PageLimits
    from services.recognition import recognise_jobs

    return recognise_jobs(
        job_ids,
        ledger=ledger,
        blobs=blobs,
        engine=engine,
        limits=PageLimits(),
        threshold=threshold,
        max_attempts=3,
        currency=currency,
    )
