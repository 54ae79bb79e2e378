"""Synthetic Malaysian receipts whose every field is known by construction.

Used by unit tests, confidence tests (blur, noise, rotation, cropping) and the bundled
demo inbox. The output is meant to be read by a real OCR model: black text drawn with
a TrueType font on off-white paper, about 24 px text at 720 px width, laid out like a
thermal-printer receipt from a clinic, pharmacy or shop.
"""

from __future__ import annotations

import io
import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from services.demo import vocabulary as v
from services.demo.fonts import load_font

CENT = Decimal("0.01")
FIVE_SEN = Decimal("0.05")

MALAY_MONTHS = (
    "Januari", "Februari", "Mac", "April", "Mei", "Jun",
    "Julai", "Ogos", "September", "Oktober", "November", "Disember",
)  # fmt: skip
ENGLISH_MONTHS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip

#: Date styles seen on Malaysian receipts, by name -> example for 25 Dec 2018.
DATE_FORMATS: dict[str, str] = {
    "dd/mm/yyyy": "25/12/2018",
    "dd-mm-yy": "25-12-18",
    "dd/mm/yy": "25/12/18",
    "dd.mm.yyyy": "25.12.2018",
    "dd-mm-yyyy": "25-12-2018",
    "yyyy-mm-dd": "2018-12-25",
    "dd Mon yyyy": "25 Dec 2018",
    "dd-Mon-yyyy": "25-Dec-2018",
    "dd Bulan yyyy": "25 Disember 2018",
}
#: Styles of receipts printed elsewhere (``services.demo.foreign``), never on a Malaysian one.
FOREIGN_DATE_FORMATS: dict[str, str] = {
    "mm/dd/yyyy": "12/25/2018",
    "mm/dd/yy": "12/25/18",
    "Mon dd, yyyy": "Dec 25, 2018",
    "dd.mm.yy": "25.12.18",
}

# How amounts are printed: "12.50" stands for the amount ("12,50": with a decimal comma).
# Malaysian receipts print "RM 12.50", "RM12.50" or "12.50"; ``services.demo.foreign``
# prints "$12.50", "£12.50", "12,50 €" and the like.
CurrencyStyle = str
ProviderKind = Literal["clinic", "dental", "pharmacy", "optical", "physio"]


def format_date(d: date, style: str) -> str:
    """``d`` written in one of ``DATE_FORMATS``."""
    dd, mm, yyyy, yy = f"{d.day:02d}", f"{d.month:02d}", f"{d.year:04d}", f"{d.year % 100:02d}"
    mon, bulan = ENGLISH_MONTHS[d.month - 1], MALAY_MONTHS[d.month - 1]
    formats = {
        "dd/mm/yyyy": f"{dd}/{mm}/{yyyy}",
        "dd-mm-yy": f"{dd}-{mm}-{yy}",
        "dd/mm/yy": f"{dd}/{mm}/{yy}",
        "dd.mm.yyyy": f"{dd}.{mm}.{yyyy}",
        "dd-mm-yyyy": f"{dd}-{mm}-{yyyy}",
        "yyyy-mm-dd": f"{yyyy}-{mm}-{dd}",
        "dd Mon yyyy": f"{dd} {mon} {yyyy}",
        "dd-Mon-yyyy": f"{dd}-{mon}-{yyyy}",
        "dd Bulan yyyy": f"{d.day} {bulan} {yyyy}",
        "mm/dd/yyyy": f"{mm}/{dd}/{yyyy}",
        "mm/dd/yy": f"{mm}/{dd}/{yy}",
        "Mon dd, yyyy": f"{mon} {dd}, {yyyy}",
        "dd.mm.yy": f"{dd}.{mm}.{yy}",
    }
    try:
        return formats[style]
    except KeyError:
        raise ValueError(f"unknown date format {style!r}; one of {sorted(formats)}") from None


def format_money(amount: Decimal, style: CurrencyStyle = "RM 12.50") -> str:
    """``amount`` printed in ``style``, e.g. "RM 1,234.50" or, for "12,50 €", "1.234,50 €"."""
    text = f"{amount.quantize(CENT, ROUND_HALF_UP):,.2f}"
    if "12,50" in style:
        return style.replace("12,50", text.replace(",", "_").replace(".", ",").replace("_", "."))
    return style.replace("12.50", text)


def round_to_five_sen(amount: Decimal) -> Decimal:
    """Malaysia's rounding mechanism for cash bills (nearest 5 sen, .x25 rounds up)."""
    return (amount / FIVE_SEN).quantize(Decimal(1), ROUND_HALF_UP) * FIVE_SEN


@dataclass(frozen=True)
class ReceiptItem:
    description: str
    unit_price: Decimal
    quantity: int = 1

    @property
    def amount(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class ReceiptSpec:
    """Everything printed on one receipt; amounts are derived, so they always add up."""

    provider_name: str
    address_lines: tuple[str, ...]
    invoice_number: str
    date: date
    items: tuple[ReceiptItem, ...]
    provider_kind: ProviderKind = "clinic"
    registration: str | None = None
    phone: str | None = None
    title: str = "RECEIPT"
    invoice_label: str = "Invoice No"
    date_label: str = "Date"
    date_format: str = "dd/mm/yyyy"
    time: time | None = None
    cashier: str | None = None
    tax_rate: Decimal = Decimal(0)
    tax_label: str = "SST"
    #: Cash tendered; None means paid by card (no 5-sen rounding, no change).
    cash: Decimal | None = None
    card_label: str = "VISA"
    currency_style: CurrencyStyle = "RM 12.50"
    currency: str = "MYR"  # the ISO code of what the amounts are in
    footer_lines: tuple[str, ...] = ("Thank you", "Get well soon")

    @property
    def subtotal(self) -> Decimal:
        return sum((item.amount for item in self.items), Decimal("0.00"))

    @property
    def tax(self) -> Decimal:
        return (self.subtotal * self.tax_rate).quantize(CENT, ROUND_HALF_UP)

    @property
    def rounding(self) -> Decimal:
        gross = self.subtotal + self.tax
        if self.cash is None:
            return Decimal("0.00")
        return (round_to_five_sen(gross) - gross).quantize(CENT)

    @property
    def total(self) -> Decimal:
        return (self.subtotal + self.tax + self.rounding).quantize(CENT)

    @property
    def change(self) -> Decimal | None:
        return None if self.cash is None else (self.cash - self.total).quantize(CENT)

    @property
    def date_text(self) -> str:
        return format_date(self.date, self.date_format)

    def money(self, amount: Decimal) -> str:
        return format_money(amount, self.currency_style)

    def expected_fields(self) -> dict[str, object]:
        """The ground truth an extractor should find, JSON-ready (amounts as "12.50")."""
        return {
            "provider_name": self.provider_name,
            "provider_kind": self.provider_kind,
            "invoice_number": self.invoice_number,
            "date": self.date.isoformat(),
            "date_text": self.date_text,
            "currency": self.currency,
            "subtotal": f"{self.subtotal:.2f}",
            "tax": f"{self.tax:.2f}",
            "rounding": f"{self.rounding:.2f}",
            "total": f"{self.total:.2f}",
            "total_text": self.money(self.total),
            "payment": "cash" if self.cash is not None else "card",
            "items": [
                {"description": i.description, "quantity": i.quantity, "amount": f"{i.amount:.2f}"}
                for i in self.items
            ],
        }


# --- layout ----------------------------------------------------------------------------

Row = tuple[str, str, str]  # (style, left-or-centre text, right text); style below

_FONTS = {
    "title": ("DejaVuSans-Bold.ttf", 1.35),
    "header": ("DejaVuSans.ttf", 0.95),
    "bold": ("DejaVuSansMono-Bold.ttf", 1.0),
    "body": ("DejaVuSansMono.ttf", 1.0),
    "total": ("DejaVuSansMono-Bold.ttf", 1.15),
}


def _rows(spec: ReceiptSpec, columns: int) -> list[tuple[str, str, str, str]]:
    """(font, align, left, right) rows top to bottom; align is "center" or "split"."""
    rule = "-" * columns
    rows: list[tuple[str, str, str, str]] = []
    for line in textwrap.wrap(spec.provider_name, max(12, int(columns * 0.75))):
        rows.append(("title", "center", line, ""))
    if spec.registration:
        rows.append(("header", "center", spec.registration, ""))
    rows += [("header", "center", line, "") for line in spec.address_lines]
    if spec.phone:
        rows.append(("header", "center", f"Tel: {spec.phone}", ""))
    rows += [("body", "center", "", ""), ("bold", "center", spec.title, "")]
    rows.append(("body", "split", f"{spec.invoice_label}: {spec.invoice_number}", ""))
    when = spec.date_text + (f"  {spec.time:%H:%M}" if spec.time else "")
    rows.append(("body", "split", f"{spec.date_label}: {when}", ""))
    if spec.cashier:
        rows.append(("body", "split", f"Cashier: {spec.cashier}", ""))
    rows.append(("body", "split", rule, ""))
    for item in spec.items:
        amount = f"{item.amount:.2f}"
        width = columns - len(amount) - 1
        desc_lines = textwrap.wrap(item.description, width) or [""]
        if item.quantity == 1:
            rows += [("body", "split", line, "") for line in desc_lines[:-1]]
            rows.append(("body", "split", desc_lines[-1], amount))
        else:
            rows += [("body", "split", line, "") for line in desc_lines]
            rows.append(("body", "split", f"  {item.quantity} x {item.unit_price:.2f}", amount))
    rows.append(("body", "split", rule, ""))
    rows.append(("body", "split", "Subtotal", spec.money(spec.subtotal)))
    if spec.tax_rate:
        pct = f"{spec.tax_rate * 100:g}%"
        rows.append(("body", "split", f"{spec.tax_label} {pct}", spec.money(spec.tax)))
    if spec.rounding:
        rows.append(("body", "split", "Rounding", f"{spec.rounding:.2f}"))
    rows.append(("total", "split", "TOTAL", spec.money(spec.total)))
    if spec.cash is not None:
        rows.append(("body", "split", "Cash", spec.money(spec.cash)))
        rows.append(("body", "split", "Change", spec.money(spec.change or Decimal(0))))
    else:
        rows.append(("body", "split", spec.card_label, spec.money(spec.total)))
    rows.append(("body", "split", rule, ""))
    rows += [("header", "center", line, "") for line in spec.footer_lines]
    return rows


def render_receipt(
    spec: ReceiptSpec,
    *,
    width: int = 720,
    blur: float = 0.0,
    noise: float = 0.0,
    rotate_deg: float = 0.0,
    crop: tuple[int, int, int, int] | None = None,
    seed: int = 0,
) -> Image.Image:
    """Draw ``spec`` as an RGB image, then degrade it like a phone photo.

    ``blur`` is a Gaussian radius in pixels, ``noise`` the standard deviation of
    per-pixel noise (0-255 scale), ``crop`` a (left, top, right, bottom) box on the
    drawn receipt. Order: draw, crop, rotate (the table shows in the corners), blur,
    noise. ``seed`` fixes the paper tint and the noise, so output is reproducible.
    """
    rng = random.Random(seed)
    body_size = max(12, round(width * 0.033))
    margin = round(width * 0.05)
    body_font = load_font(_FONTS["body"][0], body_size)
    columns = int((width - 2 * margin) // body_font.getlength("M"))
    rows = _rows(spec, columns)
    line_gap = round(body_size * 0.38)

    heights = []
    for style, *_ in rows:
        name, scale = _FONTS[style]
        font = load_font(name, round(body_size * scale))
        ascent, descent = font.getmetrics()
        heights.append(ascent + descent + line_gap)
    height = sum(heights) + 2 * margin

    paper = (rng.randint(240, 255), rng.randint(240, 255), rng.randint(234, 250))
    ink = (rng.randint(5, 40),) * 3
    img = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(img)
    y = margin
    for (style, align, left, right), h in zip(rows, heights, strict=True):
        name, scale = _FONTS[style]
        font = load_font(name, round(body_size * scale))
        if align == "center":
            x = (width - font.getlength(left)) / 2
            draw.text((x, y), left, font=font, fill=ink)
        else:
            draw.text((margin, y), left, font=font, fill=ink)
            if right:
                draw.text((width - margin - font.getlength(right), y), right, font=font, fill=ink)
        y += h

    if crop is not None:
        img = img.crop(crop)
    if rotate_deg:
        table = (rng.randint(60, 110),) * 3
        img = img.rotate(
            rotate_deg, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=table
        )
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        pixels = np.asarray(img, dtype=np.float32)
        jitter = np.random.default_rng(seed).normal(0.0, noise, pixels.shape[:2])[..., None]
        img = Image.fromarray(np.clip(pixels + jitter, 0, 255).astype(np.uint8), "RGB")
    return img


# --- file formats ----------------------------------------------------------------------

_FIXED_PDF_DATE = (2020, 1, 1, 0, 0, 0, 2, 1, 0)  # time.struct_time fields; keeps PDFs reproducible


def to_jpeg(img: Image.Image, *, quality: int = 82) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def to_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def images_to_pdf(images: Sequence[Image.Image], *, resolution: float = 150.0) -> bytes:
    """One page per image (JPEG-compressed inside the PDF), byte-for-byte reproducible."""
    if not images:
        raise ValueError("a PDF needs at least one page")
    import time as _time

    fixed = _time.struct_time(_FIXED_PDF_DATE)
    pages = [im.convert("RGB") for im in images]
    buf = io.BytesIO()
    pages[0].save(
        buf,
        "PDF",
        save_all=True,
        append_images=pages[1:],
        resolution=resolution,
        creationDate=fixed,
        modDate=fixed,
    )
    return buf.getvalue()


def images_to_tiff(images: Sequence[Image.Image], *, compression: str = "tiff_deflate") -> bytes:
    """A multi-frame TIFF (how scanners and fax gateways deliver multi-page documents)."""
    if not images:
        raise ValueError("a TIFF needs at least one frame")
    frames = [im.convert("RGB") for im in images]
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:], compression=compression)
    return buf.getvalue()


# --- variety ---------------------------------------------------------------------------


def _invoice_number(rng: random.Random, d: date) -> str:
    n = rng.randint(1, 99999)
    styles = (
        f"INV-{d.year}-{n:05d}",
        f"CS{rng.randint(1, 99_999_999):08d}",
        f"R{d.year % 100:02d}{n:06d}",
        f"OR-{n:06d}",
        f"{rng.choice('ABCKPT')}/{d.year}/{n:04d}",
        f"T{rng.randint(100, 999)}-{n:05d}",
    )
    return rng.choice(styles)


def _price(rng: random.Random, low: float, high: float) -> Decimal:
    """Prices in 10-sen steps mostly, as shops price them; some odd cents for the rounding."""
    cents = rng.randint(int(low * 100), int(high * 100))
    step = 10 if rng.random() < 0.8 else 1
    return (Decimal(max(cents - cents % step, 10)) / 100).quantize(CENT)


_KIND_WEIGHTS: tuple[ProviderKind, ...] = (
    "clinic", "clinic", "pharmacy", "pharmacy", "dental", "optical", "physio",
)  # fmt: skip


def random_spec(rng: random.Random, *, kind: ProviderKind | None = None) -> ReceiptSpec:
    """A plausible receipt from a clinic, dental surgery, pharmacy, optician or physio.

    The same ``rng`` state gives the same receipt, so tests and the sample inbox are
    reproducible from a seed.
    """
    if kind is None:
        # Through a typed name: assigned straight to `kind`, mypy solves choice() for
        # `ProviderKind | None` and the narrowing is lost.
        picked: ProviderKind = rng.choice(_KIND_WEIGHTS)
        kind = picked
    when = date.fromordinal(
        rng.randint(date(2017, 1, 1).toordinal(), date(2025, 12, 31).toordinal())
    )
    pool = v.ITEMS[kind]
    items = tuple(
        ReceiptItem(desc, _price(rng, low, high), rng.randint(1, most))
        for desc, low, high, most in rng.sample(pool, rng.randint(1, min(4, len(pool))))
    )
    address: tuple[str, ...] = (f"No. {rng.randint(1, 250)}, {rng.choice(v.STREETS)}",)
    if rng.random() < 0.6:
        address += (rng.choice(v.AREAS),)
    address += (rng.choice(v.TOWNS),)
    tax_rate = Decimal(rng.choice(("0", "0", "0.06", "0.08"))) if kind != "clinic" else Decimal(0)
    pays_cash = rng.random() < 0.6
    spec = ReceiptSpec(
        provider_name=rng.choice(v.PROVIDERS[kind]),
        address_lines=address,
        invoice_number=_invoice_number(rng, when),
        date=when,
        items=items,
        provider_kind=kind,
        registration=rng.choice(
            (
                None,
                f"({rng.randint(200001000000, 202399999999)})",
                f"Co. No: {rng.randint(100000, 999999)}-{rng.choice('AKPTWX')}",
            )
        ),
        phone=rng.choice((None, f"0{rng.choice('3456789')}-{rng.randint(1000000, 9999999)}")),
        title=rng.choice(v.TITLES),
        invoice_label=rng.choice(v.INVOICE_LABELS),
        date_label=rng.choice(v.DATE_LABELS),
        date_format=rng.choice(tuple(DATE_FORMATS)),
        time=time(rng.randint(8, 21), rng.randint(0, 59)) if rng.random() < 0.7 else None,
        cashier=rng.choice((None, *v.CASHIERS)),
        tax_rate=tax_rate,
        tax_label=rng.choice(v.TAX_LABELS),
        cash=None,
        card_label=rng.choice(v.CARD_LABELS),
        currency_style=rng.choice(("RM 12.50", "RM12.50", "12.50")),
        footer_lines=rng.choice(v.FOOTERS),
    )
    if pays_cash:  # tender the next round note above the total, as people do
        total = spec.subtotal + spec.tax
        note = next(n for n in (10, 20, 50, 100, 200, 500, 1000, 10_000) if n >= total)
        spec = replace(spec, cash=Decimal(note).quantize(CENT))
    return spec
