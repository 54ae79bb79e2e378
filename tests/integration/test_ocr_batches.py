"""An OCR batch of several jobs, one with a corrupt page, read with the real ONNX engine
through the worker's step (``recognise_jobs``) under each device's call plan: the job with
the corrupt page fails with its reason, the others are read, each page once."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.blobs import LocalBlobStore
from services.config import Settings
from services.demo.receipts import (
    ReceiptSpec,
    images_to_pdf,
    random_spec,
    render_receipt,
    to_jpeg,
    to_png,
)
from services.ledger import JobState, Ledger
from services.ocr.onnx_engine import OnnxOcrEngine
from services.ocr.result import PageText
from services.recognition import recognise_jobs
from tests.support.ledger_helpers import new_email
from workers.wiring import page_limits

pytestmark = pytest.mark.slow


class RecordingEngine:
    """The real engine, noting how many pages each call was given."""

    name = "recording"

    def __init__(self, engine: OnnxOcrEngine) -> None:
        self._engine = engine
        self.calls: list[int] = []

    def read(self, pages: Sequence[np.ndarray]) -> list[PageText]:
        self.calls.append(len(pages))
        return self._engine.read(pages)


def _receipt(seed: int) -> tuple[ReceiptSpec, Image.Image]:
    spec = random_spec(random.Random(seed))
    return spec, render_receipt(spec, seed=seed)


def _tiff_with_a_corrupt_second_page(first: Image.Image, second: Image.Image) -> bytes:
    """A two-page scan cut short: its headers promise two pages, the second's pixels are
    missing (the first page decodes, the second fails as it is read)."""
    buf = io.BytesIO()
    first.save(buf, "TIFF", save_all=True, append_images=[second])
    data = buf.getvalue()
    return data[: -len(data) // 8]


# The batch's pages are 0.6-1.1 Mpx, 4.6 Mpx in all: one call on a GPU (or a CPU) under
# the default budget; under a 1 Mpx memory budget each page is its own call, so the
# corrupt scan's first page is read before its second fails.
PLANS = {
    "one call": ("cuda", 64_000_000, [4]),
    "split by the memory budget": ("cpu", 1_000_000, [1, 1, 1, 1, 1]),
}


@pytest.mark.parametrize("plan", PLANS)
def test_one_corrupt_page_fails_its_job_alone_and_the_batch_is_read(
    plan: str, ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    """``cuda`` here is its call plan only (one true batch), read by the CPU engine."""
    device, memory_budget, expected_calls = PLANS[plan]
    specs = {seed: _receipt(seed) for seed in (41, 42, 43, 44, 45, 46)}
    documents = {
        "receipt.jpg": (to_jpeg(specs[41][1]), "image/jpeg", [specs[41][0]]),
        "two_pages.pdf": (
            images_to_pdf([specs[42][1], specs[43][1]]),
            "application/pdf",
            [specs[42][0], specs[43][0]],
        ),
        "scan.tif": (
            _tiff_with_a_corrupt_second_page(specs[44][1], specs[45][1]),
            "image/tiff",
            [],
        ),
        "photo.png": (to_png(specs[46][1]), "image/png", [specs[46][0]]),
    }
    blobs = LocalBlobStore(tmp_path / "blobs")
    jobs: dict[str, str] = {}
    for name, (data, content_type, _) in documents.items():
        jobs[name], _ = ledger.record_attachment(
            new_email(ledger),
            0,
            name,
            content_type,
            len(data),
            hashlib.sha256(data).hexdigest(),
            blobs.put(data),
        )
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, OCR_DEVICE=device, OCR_CALL_MAX_PIXELS=memory_budget
    )
    limits = page_limits(settings)
    engine = RecordingEngine(ocr_engine)

    report = recognise_jobs(
        list(jobs.values()),
        ledger=ledger,
        blobs=blobs,
        engine=engine,
        limits=limits,
        threshold=0.9,
        max_attempts=3,
    )

    broken = ledger.get_job(jobs["scan.tif"])
    assert report.failed == [broken.id]
    assert (broken.state, broken.reason_code) == (JobState.FAILED, "corrupt_image")
    assert broken.reason and "damaged" in broken.reason
    assert sorted(report.ready + report.needs_review) == sorted(
        job for name, job in jobs.items() if name != "scan.tif"
    )
    for name, (_, _, printed) in documents.items():
        if name == "scan.tif":
            continue
        job = ledger.get_job(jobs[name])
        assert job.page_count == len(printed), name
        assert job.fields and job.fields["total_amount"] == f"{printed[0].total:.2f}", name

    # Four readable pages, each once; in one call the corrupt scan's pages are left out
    # together, page by page its first page was read before its second failed.
    assert engine.calls == expected_calls
