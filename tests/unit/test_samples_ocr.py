"""A real PP-OCR model reads the synthetic receipts (the point of making them)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from services.demo.receipts import random_spec, render_receipt
from services.ocr.onnx_engine import OnnxOcrEngine

pytestmark = pytest.mark.slow


def _read(engine: OnnxOcrEngine, img: Image.Image) -> tuple[str, float]:
    (page,) = engine.read([np.asarray(img.convert("RGB"))])
    scores = [line.confidence for line in page.lines]
    return "\n".join(line.text for line in page.lines), float(np.mean(scores)) if scores else 0.0


def _squash(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def test_clean_receipt_is_read_and_degraded_one_less_surely(ocr_engine: OnnxOcrEngine) -> None:
    spec = random_spec(random.Random(2024))
    text, clean_conf = _read(ocr_engine, render_receipt(spec, seed=1))
    fields = spec.expected_fields()
    for key in ("invoice_number", "date_text", "total"):
        assert _squash(str(fields[key])) in _squash(text), key
    assert clean_conf > 0.9
    degraded = render_receipt(spec, seed=1, blur=2.8, noise=14, rotate_deg=4.5)
    _, blurry_conf = _read(ocr_engine, degraded)
    assert blurry_conf < clean_conf
