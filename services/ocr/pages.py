"""Turn attachment bytes into upright RGB page images, within set limits.

The file type is read from the bytes (never trusted from the name). Every failure is a
``PageError`` with a machine code and a sentence for the ledger, so a corrupt, encrypted
or oversized attachment ends as a clear reason instead of a crash or a stuck worker.

Memory has a budget. A page is never rendered or decoded larger than OCR reads it
(``max_side``, ``max_pixels``): a PDF page is rendered at the scale that fits, a JPEG is
decoded at a reduced scale (``draft``), and only other images are decoded whole and then
shrunk. Every page's size is known from the headers before any pixel is decoded, so a
document over ``max_document_pixels`` is refused before it costs memory, and
:func:`open_pages` hands pages out one at a time so a caller holds only what it reads.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError


class PageError(ValueError):
    """An attachment that cannot become pages; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PageLimits:
    """What one attachment (and one engine call) may cost; pixels are of pages as read."""

    max_bytes: int = 25 * 1024 * 1024
    max_pages: int = 20
    # No page is decoded past this; an image that cannot be decoded smaller is refused.
    max_pixels: int = 40_000_000
    pdf_dpi: int = 200
    # Longest side a page is rendered or decoded at. Detection shrinks pages to
    # OCR_DET_MAX_SIDE, but recognition reads text lines cut from the page itself, so
    # small print needs more: 4096 keeps A4/A3 at 200 DPI and 12 MP photos untouched.
    max_side: int = 4096
    # All pages of one document together; over it the document is refused unread.
    max_document_pixels: int = 200_000_000
    # Pages given to one engine call together (``read_documents`` splits a batch by it).
    call_max_pixels: int = 64_000_000


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"%PDF-", "pdf"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)

_ORIENTATION = 0x0112  # EXIF tag
# What Pillow raises on a damaged file; TypeError ("Missing dimensions") comes from a
# multi-page LZW or deflate TIFF cut short.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
)
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


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


def fit_factor(width: float, height: float, limits: PageLimits) -> float:
    """The factor (at most 1) that brings a ``width`` x ``height`` page within the caps."""
    return min(
        1.0,
        limits.max_side / max(width, height),
        math.sqrt(limits.max_pixels / (width * height)),
    )


class PageSource:
    """An opened attachment: each page's size as read is known, its pixels made on demand.

    ``page_pixels`` comes from the headers alone, so a caller can budget before decoding;
    :meth:`page` decodes one page and keeps nothing of it, so memory follows the pages
    the caller holds. Close it (or use ``with``) to release the parsed document.
    """

    def __init__(self, page_pixels: Sequence[int]) -> None:
        self.page_pixels: tuple[int, ...] = tuple(page_pixels)

    def __len__(self) -> int:
        return len(self.page_pixels)

    @property
    def pixels(self) -> int:
        return sum(self.page_pixels)

    def page(self, index: int) -> np.ndarray:
        """Page ``index`` as an upright RGB uint8 array (raises ``PageError``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the opened document holds; safe to call twice."""

    def __enter__(self) -> PageSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_pages(data: bytes, limits: PageLimits | None = None) -> PageSource:
    """Check ``data`` against the limits from its headers and open it for reading pages."""
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
    source: PageSource = _PdfPages(data, limits) if kind == "pdf" else _ImagePages(data, limits)
    if source.pixels > limits.max_document_pixels:
        source.close()
        raise PageError(
            "document_too_large",
            f"The document's {len(source)} pages come to {source.pixels:,} pixels at the "
            f"resolution OCR reads them; the limit is {limits.max_document_pixels:,}.",
        )
    return source


def load_pages(data: bytes, limits: PageLimits | None = None) -> list[np.ndarray]:
    """Decode ``data`` into RGB uint8 pages (EXIF orientation applied), all at once."""
    with open_pages(data, limits) as source:
        return [source.page(index) for index in range(len(source))]


# -- images ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FramePlan:
    size: tuple[int, int]  # as stored, before EXIF orientation
    draft: int  # JPEG decode reduction: 1, 2, 4 or 8
    out: tuple[int, int]  # as handed out, before EXIF orientation


def _open_image(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own limits decide; Pillow's warning band (90-180 MP) would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise PageError("too_many_pixels", "The image is too large to decode safely.") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PageError("corrupt_image", "The image file is damaged and cannot be read.") from exc


def _plan_frame(width: int, height: int, jpeg: bool, limits: PageLimits) -> _FramePlan:
    """How a frame is decoded: a JPEG at the most reduced 1/2^k scale that is still at
    least the size OCR reads (or what fits ``max_pixels``), anything else whole."""
    factor = fit_factor(width, height, limits)
    out = (max(1, int(width * factor)), max(1, int(height * factor)))
    draft = 1
    if jpeg:
        while draft < 8 and width // (2 * draft) >= out[0] and height // (2 * draft) >= out[1]:
            draft *= 2
        while draft < 8 and _area(width, height, draft) > limits.max_pixels:
            draft *= 2
    decoded = (math.ceil(width / draft), math.ceil(height / draft))
    if decoded[0] * decoded[1] > limits.max_pixels:
        raise PageError(
            "too_many_pixels",
            f"A page is {width}x{height} pixels; the limit is {limits.max_pixels:,}.",
        )
    out = (min(out[0], decoded[0]), min(out[1], decoded[1]))
    return _FramePlan((width, height), draft, out)


def _area(width: int, height: int, reduction: int) -> int:
    return math.ceil(width / reduction) * math.ceil(height / reduction)


class _ImagePages(PageSource):
    """JPEG, PNG and TIFF; each page re-opens the bytes so no decoded frame is kept."""

    def __init__(self, data: bytes, limits: PageLimits) -> None:
        self._data = data
        self._limits = limits
        plans: list[_FramePlan] = []
        image = _open_image(data)
        try:
            jpeg = image.format == "JPEG"
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                if index >= limits.max_pages:
                    raise PageError(
                        "too_many_pages", f"The image has more than {limits.max_pages} frames."
                    )
                plans.append(_plan_frame(*frame.size, jpeg, limits))
        except PageError:
            raise
        except _DECODE_ERRORS as exc:
            raise PageError(
                "corrupt_image", "The image file is damaged and cannot be read."
            ) from exc
        finally:
            image.close()
        if not plans:
            raise PageError("corrupt_image", "The image file holds no pages.")
        self._plans = plans
        super().__init__([plan.out[0] * plan.out[1] for plan in plans])

    def page(self, index: int) -> np.ndarray:
        plan = self._plans[index]
        image = _open_image(self._data)
        try:
            image.seek(index)
            if plan.draft > 1:
                width, height = plan.size
                request = (max(1, width // plan.draft), max(1, height // plan.draft))
                image.draft(image.mode, request)
            width, height = image.size
            if width * height > self._limits.max_pixels:  # the draft did not apply
                raise PageError(
                    "too_many_pixels",
                    f"A page is {width}x{height} pixels; the limit is {self._limits.max_pixels:,}.",
                )
            orientation = image.getexif().get(_ORIENTATION, 1)
            return _to_rgb_array(_shrink(image, plan.out), _TRANSPOSE.get(orientation))
        except PageError:
            raise
        except _DECODE_ERRORS as exc:
            raise PageError(
                "corrupt_image", "The image file is damaged and cannot be read."
            ) from exc
        finally:
            image.close()


def _shrink(frame: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``frame`` at ``size`` (box-reduced, then Lanczos) so thin strokes fade, not vanish."""
    if frame.size == size:
        return frame
    # Pillow resizes "1" and "P" by nearest neighbour (dropping thin strokes) and cannot
    # resize 16-bit at all: convert those to a mode it filters properly first.
    if frame.mode == "1":
        frame = frame.convert("L")
    elif frame.mode in ("P", "PA"):
        transparent = frame.mode == "PA" or "transparency" in frame.info
        frame = frame.convert("RGBA" if transparent else "RGB")
    elif frame.mode.startswith("I;16"):
        frame = frame.convert("I")
    return frame.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _to_rgb_array(frame: Image.Image, transpose: Image.Transpose | None) -> np.ndarray:
    if transpose is not None:
        frame = frame.transpose(transpose)
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


# -- PDF -----------------------------------------------------------------------------------


def pdf_scale(width_pt: float, height_pt: float, limits: PageLimits) -> float:
    """The pdfium scale for a page: ``pdf_dpi``, lowered so the page fits the caps.

    pdfium renders ``ceil(points * scale)`` pixels a side, so a lowered scale aims just
    under whole target sizes; a page that fits is rendered at exactly ``pdf_dpi``.
    """
    scale = limits.pdf_dpi / 72
    factor = fit_factor(width_pt * scale, height_pt * scale, limits)
    if factor >= 1:
        return scale
    width = max(1, int(width_pt * scale * factor))
    height = max(1, int(height_pt * scale * factor))
    return min(width / width_pt, height / height_pt) * (1 - 1e-9)


class _PdfPages(PageSource):
    """PDF pages via pdfium, each rendered straight at its capped scale."""

    def __init__(self, data: bytes, limits: PageLimits) -> None:
        import pypdfium2 as pdfium

        self._error = pdfium.PdfiumError
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
                    "too_many_pages",
                    f"The PDF has {count} pages; the limit is {limits.max_pages}.",
                )
            scales, pixels = [], []
            for index in range(count):
                width_pt, height_pt = document.get_page_size(index)
                if not (width_pt > 0 and height_pt > 0):
                    raise PageError("corrupt_pdf", "A PDF page has no size.")
                scale = pdf_scale(width_pt, height_pt, limits)
                scales.append(scale)
                pixels.append(math.ceil(width_pt * scale) * math.ceil(height_pt * scale))
        except pdfium.PdfiumError as exc:
            document.close()
            raise PageError("corrupt_pdf", "The PDF is damaged and cannot be read.") from exc
        except BaseException:
            document.close()
            raise
        self._document = document
        self._scales = scales
        super().__init__(pixels)

    def page(self, index: int) -> np.ndarray:
        try:
            page = self._document[index]
            try:
                bitmap = page.render(
                    scale=self._scales[index], may_draw_forms=True, rev_byteorder=True
                )
                try:
                    # A copy: the bitmap's buffer is pdfium's and is freed on close.
                    return np.array(bitmap.to_numpy()[..., :3], dtype=np.uint8, order="C")
                finally:
                    bitmap.close()
            finally:
                page.close()
        except (self._error, ValueError) as exc:
            raise PageError("corrupt_pdf", "A PDF page could not be rendered.") from exc

    def close(self) -> None:
        self._document.close()
