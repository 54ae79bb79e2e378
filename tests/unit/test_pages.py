"""Attachment bytes -> upright RGB pages, and the clear errors for bad input."""

from __future__ import annotations

import io

import numpy as np
import pypdf
import pytest
from PIL import Image

from services.ocr.pages import (
    PageError,
    PageLimits,
    load_pages,
    open_pages,
    pdf_scale,
    sniff_type,
)
from tests.support.bad_files import bomb_png, encrypted_pdf, huge_page_pdf


def _image_bytes(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _marked(width: int = 60, height: int = 40) -> Image.Image:
    """An image with a red top-left corner, so orientation can be checked."""
    image = Image.new("RGB", (width, height), "white")
    image.paste((255, 0, 0), (0, 0, 10, 10))
    return image


def test_jpeg_png_and_types_are_read_from_the_bytes() -> None:
    png = _image_bytes(_marked(), "PNG")
    assert sniff_type(png) == "png"
    assert sniff_type(_image_bytes(_marked(), "JPEG")) == "jpeg"
    (page,) = load_pages(png)
    assert page.shape == (40, 60, 3) and page.dtype == np.uint8
    assert tuple(page[2, 2]) == (255, 0, 0)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    data = _image_bytes(_marked(60, 40), "JPEG", exif=exif, quality=95)
    (page,) = load_pages(data)
    assert page.shape[:2] == (60, 40)
    assert page[2, -3, 0] > 200 and page[2, -3, 1] < 80  # red corner now top-right


def test_transparent_png_gets_white_paper() -> None:
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    (page,) = load_pages(_image_bytes(image, "PNG"))
    assert page.min() == 255


def test_every_tiff_frame_is_a_page() -> None:
    frames = [_marked(), Image.new("RGB", (30, 30), "black"), Image.new("L", (10, 10), 128)]
    data = _image_bytes(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    pages = load_pages(data)
    assert [p.shape for p in pages] == [(40, 60, 3), (30, 30, 3), (10, 10, 3)]


def test_every_pdf_page_is_rendered_at_the_set_dpi() -> None:
    pages_in = [Image.new("RGB", (144, 72), "white"), Image.new("RGB", (72, 72), "white")]
    data = _image_bytes(
        pages_in[0], "PDF", save_all=True, append_images=pages_in[1:], resolution=72
    )
    pages = load_pages(data, PageLimits(pdf_dpi=144))
    assert [p.shape for p in pages] == [(144, 288, 3), (144, 144, 3)]


def test_a_huge_pdf_page_is_rendered_smaller_not_refused() -> None:
    data = _image_bytes(Image.new("RGB", (2000, 2000), "white"), "PDF", resolution=10)
    (page,) = load_pages(data, PageLimits(max_pixels=1_000_000, pdf_dpi=200))
    assert page.shape[0] * page.shape[1] <= 1_000_000


@pytest.mark.parametrize(
    ("data", "limits", "code"),
    [
        (b"", PageLimits(), "empty_file"),
        (b"PK\x03\x04 a zip file, not a receipt", PageLimits(), "unsupported_type"),
        (b"\xff\xd8\xff\xe0 truncated jpeg", PageLimits(), "corrupt_image"),
        (b"%PDF-1.7 not really a pdf", PageLimits(), "corrupt_pdf"),
        (b"x" * 2000, PageLimits(max_bytes=1000), "file_too_large"),
    ],
)
def test_bad_input_gets_a_clear_code(data: bytes, limits: PageLimits, code: str) -> None:
    with pytest.raises(PageError) as err:
        load_pages(data, limits)
    assert err.value.code == code
    assert err.value.message.endswith(".")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = bomb_png()
    assert len(bomb) < 200_000
    with pytest.raises(PageError) as err:
        load_pages(bomb, PageLimits(max_pixels=40_000_000))
    assert err.value.code == "too_many_pixels"


def test_page_count_limits() -> None:
    pdf = _image_bytes(
        Image.new("RGB", (10, 10)),
        "PDF",
        save_all=True,
        append_images=[Image.new("RGB", (10, 10))] * 4,
    )
    with pytest.raises(PageError) as err:
        load_pages(pdf, PageLimits(max_pages=3))
    assert err.value.code == "too_many_pages"
    frames = [Image.new("RGB", (10, 10))] * 5
    tiff = _image_bytes(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(PageError) as err:
        load_pages(tiff, PageLimits(max_pages=3))
    assert err.value.code == "too_many_pages"


def test_password_protected_pdf_is_reported_as_such() -> None:
    with pytest.raises(PageError) as err:
        load_pages(encrypted_pdf())
    assert err.value.code == "encrypted_pdf"


# -- memory: never rendered or decoded larger than OCR reads ----------------------------


def test_a_14400pt_pdf_page_is_rendered_straight_at_the_cap() -> None:
    limits = PageLimits()
    scale = pdf_scale(14_400, 14_400, limits)  # from the page size, before rendering
    assert 14_400 * scale <= limits.max_side < 14_400 * limits.pdf_dpi / 72
    with open_pages(huge_page_pdf(pages=1), limits) as source:
        assert source.page_pixels == (limits.max_side**2,)  # known before any pixel
        page = source.page(0)
    assert page.shape == (limits.max_side, limits.max_side, 3)
    assert page.min() == 0  # the text was drawn, not just a blank canvas


def test_the_pixel_cap_also_bounds_a_pdf_page() -> None:
    (page,) = load_pages(huge_page_pdf(pages=1), PageLimits(max_side=10_000, max_pixels=2_000_000))
    assert page.shape[0] * page.shape[1] <= 2_000_000
    assert page.shape[0] > 1400


def test_an_a4_page_at_pdf_dpi_is_unchanged() -> None:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595.28, height=841.89)
    buf = io.BytesIO()
    writer.write(buf)
    limits = PageLimits(pdf_dpi=200)
    assert pdf_scale(595.28, 841.89, limits) == 200 / 72
    (page,) = load_pages(buf.getvalue(), limits)
    assert page.shape == (2339, 1654, 3)  # ceil(pt * 200 / 72): pdfium's own rounding


def test_a_jpeg_over_the_pixel_limit_is_decoded_at_a_reduced_scale() -> None:
    data = _image_bytes(_marked(3000, 2000), "JPEG", quality=90)
    limits = PageLimits(max_side=500, max_pixels=1_000_000)  # whole, it would be 6 MP
    (page,) = load_pages(data, limits)
    assert page.shape == (333, 500, 3)
    # A PNG cannot be decoded smaller, so the same picture is refused before decoding.
    with pytest.raises(PageError) as err:
        load_pages(_image_bytes(_marked(3000, 2000), "PNG"), limits)
    assert err.value.code == "too_many_pixels"


def test_a_shrunk_photo_keeps_its_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _image_bytes(_marked(600, 400), "JPEG", exif=exif, quality=95)
    (page,) = load_pages(data, PageLimits(max_side=300))
    assert page.shape == (300, 200, 3)
    assert page[1, -2, 0] > 200 and page[1, -2, 1] < 80  # red corner now top-right


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGBA", "I;16"])
def test_an_image_over_the_side_cap_is_shrunk_in_any_mode(mode: str) -> None:
    image = Image.new("L", (1200, 300), 255)
    for x in range(0, 1200, 4):  # thin strokes a nearest-neighbour shrink could drop
        image.paste(0, (x, 0, x + 1, 300))
    converted = image.convert(mode)
    (page,) = load_pages(_image_bytes(converted, "PNG"), PageLimits(max_side=300))
    assert page.shape == (75, 300, 3) and page.dtype == np.uint8
    assert 60 < page.mean() < 250  # strokes averaged into grey, neither lost nor solid


def test_a_document_over_its_pixel_budget_is_refused_before_it_is_read() -> None:
    pdf = _image_bytes(
        Image.new("RGB", (72, 72)),
        "PDF",
        save_all=True,
        append_images=[Image.new("RGB", (72, 72))] * 2,
        resolution=72,
    )
    limits = PageLimits(pdf_dpi=144, max_document_pixels=50_000)  # 3 pages x 144 x 144
    with pytest.raises(PageError) as err:
        open_pages(pdf, limits)
    assert err.value.code == "document_too_large"
    assert "62,208 pixels" in err.value.message and err.value.message.endswith(".")
    assert len(load_pages(pdf, PageLimits(pdf_dpi=144, max_document_pixels=62_208))) == 3


def test_the_3_kb_pdf_of_twenty_5_m_pages_is_refused_by_default() -> None:
    with pytest.raises(PageError) as err:
        open_pages(huge_page_pdf(pages=20))
    assert err.value.code == "document_too_large"


@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate", None])
def test_a_multi_page_tiff_cut_short_is_a_corrupt_image(compression: str | None) -> None:
    """Pillow raises TypeError ("Missing dimensions") for a compressed one: still our error,
    so one bad attachment fails alone instead of sinking its OCR batch."""
    rng = np.random.default_rng(7)
    frames = [Image.fromarray(rng.integers(0, 255, (804, 720, 3), dtype=np.uint8)) for _ in "ab"]
    kwargs = {"save_all": True, "append_images": frames[1:], "compression": compression}
    data = _image_bytes(frames[0], "TIFF", **kwargs)
    cut = data[: len(data) * 7 // 8]
    with pytest.raises(PageError) as caught:
        source = open_pages(cut, PageLimits())
        for index in range(len(source)):
            source.page(index)
    assert caught.value.code == "corrupt_image"
