"""Field evidence end to end: real OCR engine, ``recognise_jobs``, a real ledger.

The review page draws each field's polygon over the page image as
``services.ocr.pages`` produces it (upright after EXIF rotation). So here the polygon
stored for the total is cut out of exactly that image and read again: it must hold the
total's digits, for an upright receipt, one stored sideways with EXIF orientation 6,
and one stored sideways with no EXIF (which the engine turns before reading).
"""

from __future__ import annotations

import email
import io
import re
import shutil
from email import policy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from services.blobs import LocalBlobStore
from services.demo import SAMPLE_INBOX_DIR
from services.intake import ingest
from services.ledger import JobView, Ledger
from services.mail import MaildirSource
from services.ocr.onnx_engine import OnnxOcrEngine
from services.ocr.pages import load_pages
from tests.support.ledger_helpers import FIELD_CONFIDENCE, FIELDS, new_email, new_job
from tests.support.ocr_fixtures import recognise

pytestmark = pytest.mark.slow

SAMPLE = "01_clinic_en_subject.eml"
EXIF_ORIENTATION = 0x0112
MARGIN = 6  # pixels of page kept around the polygon when it is cut out and read again


def _sample_jpeg() -> bytes:
    message = email.message_from_bytes(
        (SAMPLE_INBOX_DIR / SAMPLE).read_bytes(), policy=policy.default
    )
    (part,) = message.iter_attachments()
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


def _recognise(
    ledger: Ledger, engine: OnnxOcrEngine, blobs: LocalBlobStore, job_id: str
) -> JobView:
    report = recognise([job_id], ledger=ledger, blobs=blobs, engine=engine)
    assert not report.failed and not report.skipped
    return ledger.get_job(job_id)


def _job_for(ledger: Ledger, blobs: LocalBlobStore, data: bytes, part: int) -> str:
    key = blobs.put(data)  # the content's sha256
    email_id = new_email(ledger)
    job_id, _ = ledger.record_attachment(
        email_id, part, "receipt.jpg", "image/jpeg", len(data), key, key
    )
    return job_id


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _read_polygon(engine: OnnxOcrEngine, page: np.ndarray, polygon: list[list[Any]]) -> str:
    """The text OCR reads in the polygon's bounding box (plus a margin) of ``page``."""
    xs = [p[0] for p in polygon]
    ys = [p[1] for p in polygon]
    height, width = page.shape[:2]
    left, top = max(0, int(min(xs)) - MARGIN), max(0, int(min(ys)) - MARGIN)
    right, bottom = min(width, int(max(xs)) + MARGIN), min(height, int(max(ys)) + MARGIN)
    crop = page[top:bottom, left:right]
    # White paper around the line so the detector sees it as it would on a page.
    canvas = np.full((crop.shape[0] + 80, crop.shape[1] + 80, 3), 255, dtype=np.uint8)
    canvas[40 : 40 + crop.shape[0], 40 : 40 + crop.shape[1]] = crop
    (read,) = engine.read([canvas])
    return " ".join(line.text for line in read.lines)


def _check_total(job: JobView, page: np.ndarray, engine: OnnxOcrEngine) -> dict[str, Any]:
    """The total's evidence is on page 1, inside it, and the page there shows its digits."""
    total = job.fields["total_amount"] if job.fields else None
    assert total, job.reasons
    assert job.field_evidence is not None
    evidence = job.field_evidence["total_amount"]
    height, width = page.shape[:2]
    assert evidence["page"] == 1
    assert (evidence["page_width"], evidence["page_height"]) == (width, height)
    polygon = evidence["polygon"]
    assert len(polygon) >= 4
    assert all(0 <= x <= width and 0 <= y <= height for x, y in polygon)
    assert _digits(total) in _digits(evidence["text"])
    assert _digits(total) in _digits(_read_polygon(engine, page, polygon))
    return evidence


def test_a_sample_receipt_stores_where_each_field_was_read(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy2(SAMPLE_INBOX_DIR / SAMPLE, inbox)
    blobs = LocalBlobStore(tmp_path / "blobs")
    (job_id,) = ingest(MaildirSource(inbox), ledger, blobs).new_jobs

    job = _recognise(ledger, ocr_engine, blobs, job_id)

    (page,) = load_pages(blobs.get(job.blob_key))
    _check_total(job, page, ocr_engine)
    assert job.fields is not None and job.field_evidence is not None
    # Only fields with a value have evidence, and currency never has one line to show.
    assert set(job.field_evidence) <= {n for n, v in job.fields.items() if v} - {"currency"}
    assert {"service_date", "invoice_number", "provider_name"} <= set(job.field_evidence)
    for evidence in job.field_evidence.values():
        assert set(evidence) == {"page", "polygon", "text", "page_width", "page_height"}
        assert evidence["text"]


def _sideways(data: bytes, *, exif_orientation: int | None) -> bytes:
    """The receipt stored turned a quarter anticlockwise, as a phone held sideways saves it."""
    image = Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[EXIF_ORIENTATION] = exif_orientation  # 6: turn clockwise to view upright
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def test_a_receipt_stored_with_exif_orientation_6_gets_upright_page_coordinates(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    upright = _sample_jpeg()
    rotated = _sideways(upright, exif_orientation=6)
    plain_job = _recognise(ledger, ocr_engine, blobs, _job_for(ledger, blobs, upright, 0))
    exif_job = _recognise(ledger, ocr_engine, blobs, _job_for(ledger, blobs, rotated, 1))

    (plain_page,) = load_pages(upright)
    (page,) = load_pages(rotated)
    assert page.shape == plain_page.shape  # pages.py hands out the upright page
    assert exif_job.fields == plain_job.fields
    evidence = _check_total(exif_job, page, ocr_engine)
    # The same place as on the receipt that was stored upright (re-encoding aside).
    plain = np.array(plain_job.field_evidence["total_amount"]["polygon"])  # type: ignore[index]
    assert np.abs(np.array(evidence["polygon"]) - plain).max() <= 4


def test_a_sideways_receipt_the_engine_turns_gets_coordinates_of_the_page_as_stored(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    """No EXIF: pages.py hands out the sideways page, the engine turns it to read it, and
    the polygon is mapped back onto the sideways page, which is what the review page shows."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    sideways = _sideways(_sample_jpeg(), exif_orientation=None)
    job = _recognise(ledger, ocr_engine, blobs, _job_for(ledger, blobs, sideways, 0))

    (page,) = load_pages(sideways)
    assert page.shape[0] < page.shape[1]  # a portrait receipt lying on its side
    assert job.field_evidence is not None
    evidence = job.field_evidence["total_amount"]
    assert (evidence["page_width"], evidence["page_height"]) == (page.shape[1], page.shape[0])
    # Turned upright again (clockwise), the cut-out line reads as the total.
    total = job.fields["total_amount"] if job.fields else None
    assert total
    turned = np.ascontiguousarray(np.rot90(page, k=-1))
    height = page.shape[0]
    # A point (x, y) of the sideways page is (height - y, x) on the turned one.
    upright_polygon = [[height - y, x] for x, y in evidence["polygon"]]
    assert _digits(total) in _digits(_read_polygon(ocr_engine, turned, upright_polygon))


def test_the_ledger_keeps_evidence_with_the_extraction_and_shows_it_on_the_job(
    ledger: Ledger,
) -> None:
    evidence = {
        "total_amount": {
            "page": 1,
            "polygon": [[10, 20], [90.5, 20], [90.5, 40], [10, 40]],
            "text": "TOTAL 9.00",
            "page_width": 600,
            "page_height": 800,
        }
    }
    with_evidence, without = new_job(ledger), new_job(ledger)
    for job_id, stored in ((with_evidence, evidence), (without, None)):
        assert ledger.start_ocr(job_id)
        ledger.save_extraction(
            job_id,
            fields=FIELDS,
            field_confidence=FIELD_CONFIDENCE,
            confidence=0.95,
            route="submit",
            page_count=1,
            field_evidence=stored,
        )

    assert ledger.get_job(with_evidence).field_evidence == evidence
    assert ledger.get_job(without).field_evidence is None
    assert "TOTAL" not in repr(ledger.get_job(with_evidence))  # no receipt text in logs
