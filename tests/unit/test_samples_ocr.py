"""A real PP-OCR model reads the synthetic receipts (the point of making them)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from services.demo.receipts import random_spec, render_receipt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ocr():  # type: ignore[no-untyped-def]
    rapidocr = pytest.importorskip("rapidocr")
    return rapidocr.RapidOCR()


def _read(ocr, img) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    out = ocr(np.asarray(img.convert("RGB"))[:, :, ::-1])  # RapidOCR takes BGR arrays
    texts, scores = list(out.txts or ()), list(out.scores or ())
    return "\n".join(texts), float(np.mean(scores)) if scores else 0.0


def _squash(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def test_clean_receipt_is_read_and_degraded_one_less_surely(ocr) -> None:  # type: ignore[no-untyped-def]
    spec = random_spec(random.Random(2024))
    text, clean_conf = _read(ocr, render_receipt(spec, seed=1))
    fields = spec.expected_fields()
    for key in ("invoice_number", "date_text", "total"):
        assert _squash(str(fields[key])) in _squash(text), key
    assert clean_conf > 0.9
    _, blurry_conf = _read(ocr, render_receipt(spec, seed=1, blur=2.8, noise=14, rotate_deg=4.5))
    assert blurry_conf < clean_conf
