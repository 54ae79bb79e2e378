"""Turn attachment bytes into upright RGB page images, within set limits.

The file type is read from the bytes (never trusted from the name). Every failure is a
``PageError`` with a machine code and a sentence for the ledger, so a corrupt, encrypted
or oversized attachment ends as a clear reason instead of a crash or a stuck worker.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError


class PageError(ValueError):
    """An attachment that cannot become pages; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PageLimits:
    max_bytes: int = 25 * 1024 * 1024
    max_pages: int = 20
    max_pixels: int = 40_000_000
    pdf_dpi: int = 200


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"%PDF-", "pdf"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def sniff_type(data: bytes) -> str | None:
    """The document type the bytes really are (jpeg, png, pdf, tiff), or None."""
    head = data[:1024]
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    # Some PDF writers put junk before the header; the spec tolerates 1 KiB of it.
    if b"%PDF-" in head:
        return "pdf"
    return None


def load_pages(data: bytes, limits: PageLimits | None = None) -> list[np.ndarray]:
    """Decode ``data`` into RGB uint8 pages (EXIF orientation applied)."""
    limits = limits or PageLimits()
    if not data:
        raise PageError("empty_file", "The attachment is empty.")
    if len(data) > limits.max_bytes:
        raise PageError(
            "file_too_large",
            f"The attachment is {len(data):,} bytes; the limit is {limits.max_bytes:,}.",
        )
    kind = sniff_type(data)
    if kind is None:
        raise PageError(
            "unsupported_type", "The attachment is not a JPEG, PNG, TIFF or PDF document."
        )
    if kind == "pdf":
        return _pdf_pages(data, limits)
    return _image_pages(data, limits)


def _image_pages(data: bytes, limits: PageLimits) -> list[np.ndarray]:
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PageError("too_many_pixels", "The image is too large to decode safely.") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PageError("corrupt_image", "The image file is damaged and cannot be read.") from exc
    pages: list[np.ndarray] = []
    try:
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index >= limits.max_pages:
                raise PageError(
                    "too_many_pages",
                    f"The image has more than {limits.max_pages} frames.",
                )
            width, height = frame.size
            if width * height > limits.max_pixels:
                raise PageError(
                    "too_many_pixels",
                    f"A page is {width}x{height} pixels; the limit is {limits.max_pixels:,}.",
                )
            pages.append(_to_rgb_array(frame))
    except PageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PageError("corrupt_image", "The image file is damaged and cannot be read.") from exc
    if not pages:
        raise PageError("corrupt_image", "The image file holds no pages.")
    return pages


def _to_rgb_array(frame: Image.Image) -> np.ndarray:
    frame = ImageOps.exif_transpose(frame)
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        # Transparent areas become paper white, not black.
        rgba = frame.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        frame = Image.alpha_composite(background, rgba)
    elif frame.mode.startswith("I;16") or frame.mode in ("I", "F"):
        # 16-bit and float scans: stretch to 8 bits before colour conversion.
        values = np.asarray(frame, dtype=np.float64)
        span = float(values.max() - values.min()) or 1.0
        frame = Image.fromarray(((values - values.min()) / span * 255).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(frame.convert("RGB"), dtype=np.uint8))


def _pdf_pages(data: bytes, limits: PageLimits) -> list[np.ndarray]:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise PageError(
                "encrypted_pdf", "The PDF is password-protected and cannot be opened."
            ) from exc
        raise PageError("corrupt_pdf", "The PDF is damaged and cannot be read.") from exc
    try:
        count = len(document)
        if count == 0:
            raise PageError("corrupt_pdf", "The PDF has no pages.")
        if count > limits.max_pages:
            raise PageError(
                "too_many_pages", f"The PDF has {count} pages; the limit is {limits.max_pages}."
            )
        pages = []
        for index in range(count):
            page = document[index]
            width_pt, height_pt = page.get_size()
            scale = limits.pdf_dpi / 72
            pixels = width_pt * height_pt * scale * scale
            if pixels > limits.max_pixels:
                # A huge page size is legal in PDF: render it smaller rather than refuse it.
                scale *= (limits.max_pixels / pixels) ** 0.5
            bitmap = page.render(scale=scale, may_draw_forms=True, rev_byteorder=True)
            pages.append(np.ascontiguousarray(bitmap.to_numpy()[..., :3]))
        return pages
    except PageError:
        raise
    except pdfium.PdfiumError as exc:
        raise PageError("corrupt_pdf", "A PDF page could not be rendered.") from exc
    finally:
        document.close()
