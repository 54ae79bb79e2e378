"""Routing on generated receipts whose fields are known by construction (real OCR)."""

from __future__ import annotations

import random
from datetime import date

import numpy as np
import pytest

from services.demo.foreign import foreign_spec
from services.demo.receipts import random_spec, render_receipt
from services.extraction import extract_claim

pytestmark = pytest.mark.slow

TODAY = date(2026, 1, 1)


def _spec(seed: int):
    spec = random_spec(random.Random(seed))
    return spec, spec.expected_fields()


def _read(engine, image):
    return extract_claim(engine.read([np.asarray(image.convert("RGB"))]), today=TODAY)


@pytest.mark.parametrize("seed", [3, 11])
def test_a_clean_receipt_is_submitted_with_its_true_fields(ocr_engine, seed) -> None:
    spec, expected = _spec(seed)
    result = _read(ocr_engine, render_receipt(spec, seed=seed))
    assert result.route == "submit", result.reasons
    assert result.fields["total_amount"] == expected["total"]
    assert result.fields["service_date"] == expected["date"]
    assert result.confidence >= 0.9


def test_a_blurred_photo_goes_to_review(ocr_engine) -> None:
    spec, _ = _spec(3)
    result = _read(ocr_engine, render_receipt(spec, seed=3, blur=3.2, noise=12))
    assert result.route == "review"
    assert result.reasons
    assert result.confidence < 0.9


def test_a_photo_cut_off_above_the_totals_goes_to_review_for_its_total(ocr_engine) -> None:
    spec, _ = _spec(11)
    full = render_receipt(spec, seed=11)
    top_half = full.crop((0, 0, full.width, int(full.height * 0.45)))
    result = _read(ocr_engine, top_half)
    assert result.route == "review"
    codes = {r.code for r in result.reasons}
    assert codes & {"missing_total", "unlabelled_total", "low_confidence_total"}, codes


def test_a_blank_page_goes_to_review_as_no_text(ocr_engine) -> None:
    blank = np.full((800, 600, 3), 250, dtype=np.uint8)
    result = extract_claim(ocr_engine.read([blank]), today=TODAY)
    assert result.route == "review"
    assert [r.code for r in result.reasons] == ["no_text"]


@pytest.mark.parametrize(
    ("country", "symbol", "reason"),
    [("US", True, "foreign_currency"), ("GB", True, "foreign_currency"),
     ("DE", False, "currency_unconfirmed"), ("AU", False, "currency_unconfirmed")],
)  # fmt: skip
def test_a_receipt_from_abroad_goes_to_review_not_to_ncb_as_ringgit(
    ocr_engine, country: str, symbol: bool, reason: str
) -> None:
    spec = foreign_spec(random.Random(country), country, symbol=symbol)
    result = _read(ocr_engine, render_receipt(spec, seed=1))
    assert result.fields["total_amount"] == spec.expected_fields()["total"]
    assert result.route == "review"
    assert reason in {r.code for r in result.reasons}
    assert result.fields["currency"] != "MYR"
