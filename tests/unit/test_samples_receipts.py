"""The synthetic receipt generator: fields known by construction, reproducible output."""

from __future__ import annotations

import io
import random
from collections import Counter
from datetime import date
from decimal import Decimal

import numpy as np
import pypdfium2
import pytest
from PIL import Image

from services.demo.fonts import FontNotFoundError, font_path
from services.demo.foreign import COUNTRIES, foreign_spec
from services.demo.receipts import (
    DATE_FORMATS,
    FOREIGN_DATE_FORMATS,
    ReceiptItem,
    ReceiptSpec,
    format_date,
    format_money,
    images_to_pdf,
    images_to_tiff,
    random_spec,
    render_receipt,
    round_to_five_sen,
    to_jpeg,
)


def _spec(**kw: object) -> ReceiptSpec:
    base: dict[str, object] = {
        "provider_name": "Klinik Kesihatan Sejahtera",
        "address_lines": ("No. 12, Jalan Ampang", "50450 Kuala Lumpur"),
        "invoice_number": "INV-2018-00123",
        "date": date(2018, 12, 25),
        "items": (
            ReceiptItem("Consultation Fee", Decimal("35.00")),
            ReceiptItem("Paracetamol 500mg (10 tabs)", Decimal("2.33"), 3),
        ),
    }
    base.update(kw)
    return ReceiptSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("style", "example"), {**DATE_FORMATS, **FOREIGN_DATE_FORMATS}.items())
def test_date_formats_match_their_examples(style: str, example: str) -> None:
    assert format_date(date(2018, 12, 25), style) == example


def test_malay_month_and_unknown_style() -> None:
    assert format_date(date(2020, 8, 3), "dd Bulan yyyy") == "3 Ogos 2020"
    with pytest.raises(ValueError, match="unknown date format"):
        format_date(date(2020, 8, 3), "yyyy/dd/mm")


def test_foreign_money_styles() -> None:
    assert format_money(Decimal("1234.5"), "$12.50") == "$1,234.50"
    assert format_money(Decimal("1234.5"), "12,50 €") == "1.234,50 €"
    assert format_money(Decimal("7"), "EUR 12,50") == "EUR 7,00"


@pytest.mark.parametrize("country", sorted(COUNTRIES))
def test_foreign_receipts_say_their_currency_only_when_printed(country: str) -> None:
    printed = foreign_spec(random.Random(0), country)
    plain = foreign_spec(random.Random(0), country, symbol=False)
    assert printed.expected_fields()["currency"] == plain.currency == COUNTRIES[country].currency
    assert printed.money(Decimal("12.5")) != "12.50"
    assert plain.money(Decimal("12.5")) in ("12.50", "12,50")
    assert plain.date_format in COUNTRIES[country].date_formats


def test_money_styles() -> None:
    assert format_money(Decimal("1234.5"), "RM 12.50") == "RM 1,234.50"
    assert format_money(Decimal("12.5"), "RM12.50") == "RM12.50"
    assert format_money(Decimal("12.5"), "12.50") == "12.50"


@pytest.mark.parametrize(
    ("amount", "rounded"),
    [("41.01", "41.00"), ("41.02", "41.00"), ("41.03", "41.05"), ("41.04", "41.05"),
     ("41.06", "41.05"), ("41.07", "41.05"), ("41.08", "41.10"), ("41.09", "41.10")],
)  # fmt: skip
def test_malaysian_five_sen_rounding(amount: str, rounded: str) -> None:
    assert round_to_five_sen(Decimal(amount)) == Decimal(rounded)


def test_amounts_add_up_cash_and_card() -> None:
    cash = _spec(tax_rate=Decimal("0.06"), cash=Decimal("50.00"))
    assert cash.subtotal == Decimal("41.99")
    assert cash.tax == Decimal("2.52")
    assert cash.rounding == Decimal("-0.01")  # 44.51 -> 44.50
    assert cash.total == Decimal("44.50")
    assert cash.change == Decimal("5.50")
    card = _spec(tax_rate=Decimal("0.06"))
    assert (card.rounding, card.total, card.change) == (Decimal("0.00"), Decimal("44.51"), None)
    fields = cash.expected_fields()
    assert fields["total"] == "44.50" and fields["date"] == "2018-12-25"
    assert fields["date_text"] == "25/12/2018" and fields["payment"] == "cash"
    assert fields["items"][1] == {  # type: ignore[index]
        "description": "Paracetamol 500mg (10 tabs)",
        "quantity": 3,
        "amount": "6.99",
    }


def test_random_specs_are_reproducible_and_varied() -> None:
    assert random_spec(random.Random(5)) == random_spec(random.Random(5))
    specs = [random_spec(random.Random(n)) for n in range(120)]
    assert len(Counter(s.provider_kind for s in specs)) == 5
    assert len(Counter(s.date_format for s in specs)) == len(DATE_FORMATS)
    assert len(Counter(s.currency_style for s in specs)) == 3
    assert len({s.invoice_number for s in specs}) == len(specs)
    for s in specs:
        assert s.total == s.subtotal + s.tax + s.rounding
        assert s.total > 0 and s.items
        if s.cash is not None:
            assert s.total % Decimal("0.05") == 0
            assert s.change is not None and s.change >= 0
    assert random_spec(random.Random(1), kind="optical").provider_kind == "optical"


def _ink_rows(img: Image.Image) -> list[int]:
    """Heights of the horizontal bands that contain dark pixels (text lines)."""
    dark = (np.asarray(img.convert("L")) < 128).any(axis=1)
    runs, n = [], 0
    for row in dark:
        if row:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_render_is_ocr_sized_and_reproducible() -> None:
    spec = random_spec(random.Random(11))
    img = render_receipt(spec, seed=3)
    assert img.mode == "RGB" and img.width == 720 and img.height > 500
    runs = _ink_rows(img)
    assert len(runs) >= 10
    assert 18 <= sorted(runs)[len(runs) // 2] <= 30  # typical text line height in px
    corner = np.asarray(img)[:5, :5].reshape(-1, 3)
    assert corner.min() >= 230  # off-white paper
    assert to_jpeg(render_receipt(spec, seed=3)) == to_jpeg(img)
    assert to_jpeg(render_receipt(spec, seed=4)) != to_jpeg(img)


def test_degradations() -> None:
    spec = _spec()
    clean = render_receipt(spec)
    rotated = render_receipt(spec, rotate_deg=5)
    assert rotated.width > clean.width and rotated.height > clean.height
    cropped = render_receipt(spec, crop=(0, 0, 720, 400))
    assert cropped.size == (720, 400)
    blurred = render_receipt(spec, blur=3)
    assert np.asarray(blurred.convert("L")).min() > np.asarray(clean.convert("L")).min()
    noisy = np.asarray(render_receipt(spec, noise=20).convert("L"), dtype=float)
    paper = noisy[:20, :20]  # blank margin: only the noise varies
    assert 10 < paper.std() < 30
    assert render_receipt(spec, width=600).width == 600


def test_pdf_and_tiff_helpers() -> None:
    pages = [render_receipt(_spec()), render_receipt(_spec(invoice_number="INV-2"), width=600)]
    pdf = images_to_pdf(pages)
    assert pdf.startswith(b"%PDF") and images_to_pdf(pages) == pdf  # reproducible
    doc = pypdfium2.PdfDocument(pdf)
    assert len(doc) == 2
    page = doc[1].render(scale=150 / 72).to_pil()
    assert abs(page.width - 600) <= 2
    doc.close()
    tiff = Image.open(io.BytesIO(images_to_tiff(pages)))
    assert tiff.n_frames == 2
    tiff.seek(1)
    assert tiff.size == pages[1].size
    with pytest.raises(ValueError):
        images_to_pdf([])


def test_fonts_are_found_or_the_error_says_how_to_fix_it() -> None:
    assert font_path("DejaVuSansMono.ttf").is_file()
    with pytest.raises(FontNotFoundError, match="fonts-dejavu-core"):
        font_path("NoSuchFont-Regular.ttf")
