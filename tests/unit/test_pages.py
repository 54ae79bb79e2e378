"""Attachment bytes -> upright RGB pages, and the clear errors for bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.ocr.pages import PageError, PageLimits, load_pages, sniff_type
from tests.support.bad_files import bomb_png, encrypted_pdf


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
