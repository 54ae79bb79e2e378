"""Bad attachments end as jobs with a clear reason, and never stop their batch-mates."""

from __future__ import annotations

import random
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.blobs import LocalBlobStore
from services.demo.receipts import images_to_pdf, random_spec, render_receipt
from services.intake import ingest
from services.ledger import JobState, Ledger
from services.mail import MaildirSource
from services.ocr.onnx_engine import OnnxOcrEngine
from services.ocr.pages import PageLimits
from services.recognition import recognise_jobs
from tests.support.bad_files import bomb_png, encrypted_pdf, huge_page_pdf

pytestmark = pytest.mark.slow


def test_bad_attachments_get_reasons_and_the_good_one_is_read(
    ledger: Ledger, ocr_engine: OnnxOcrEngine, tmp_path: Path
) -> None:
    receipt = render_receipt(random_spec(random.Random(3)), seed=3)
    parts = [
        ("broken.jpg", "image", "jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 40_000),
        ("locked.pdf", "application", "pdf", encrypted_pdf()),
        ("bomb.png", "image", "png", bomb_png()),
        ("giant_pages.pdf", "application", "pdf", huge_page_pdf(pages=20)),
        ("actually_a_pdf.jpg", "image", "jpeg", images_to_pdf([receipt])),
        ("archive.zip", "application", "zip", b"PK\x03\x04" + b"\x00" * 2000),
    ]
    message = EmailMessage()
    message["From"] = "member@example.com"
    message["To"] = "claims@example.com"
    message["Subject"] = "Claim - Policy No: POL-12345"
    message["Message-ID"] = "<bad-attachments@example.com>"
    message.set_content("Please process my claim.")
    for name, maintype, subtype, data in parts:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "bad.eml").write_bytes(message.as_bytes())

    blobs = LocalBlobStore(tmp_path / "blobs")
    intake = ingest(MaildirSource(inbox), ledger, blobs)
    recognise_jobs(
        intake.new_jobs,
        ledger=ledger,
        blobs=blobs,
        engine=ocr_engine,
        limits=PageLimits(max_pixels=40_000_000),
        threshold=0.9,
        max_attempts=3,
    )
    jobs = {job.filename: job for job in ledger.list_jobs(limit=100).items}
    # A claim document's stored name takes the extension of its real type.
    assert jobs.keys() == {name for name, *_ in parts} - {"actually_a_pdf.jpg"} | {
        "actually_a_pdf.pdf"
    }
    expected = {
        "broken.jpg": (JobState.FAILED, "corrupt_image"),
        "locked.pdf": (JobState.FAILED, "encrypted_pdf"),
        "bomb.png": (JobState.FAILED, "too_many_pixels"),
        "giant_pages.pdf": (JobState.FAILED, "document_too_large"),
        "archive.zip": (JobState.SKIPPED, "not_a_claim_document"),
    }
    for name, (state, code) in expected.items():
        assert (jobs[name].state, jobs[name].reason_code) == (state, code), name
        assert jobs[name].reason
    mislabelled = jobs["actually_a_pdf.pdf"]
    assert mislabelled.content_type == "pdf"
    assert mislabelled.state in (JobState.READY, JobState.NEEDS_REVIEW)
    assert mislabelled.fields["total_amount"]
