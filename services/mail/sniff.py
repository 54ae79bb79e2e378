"""Recognise a file by its leading bytes, and read an image's size from its header.

Members mislabel files all the time (a PDF saved as ``receipt.jpg``, everything as
``application/octet-stream``), so the pipeline trusts the bytes, never the name.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

#: Types the OCR pipeline reads.
CLAIM_TYPES = frozenset({"jpeg", "png", "pdf", "tiff"})
#: Images recognised so that they are reported as unsupported rather than ignored.
UNSUPPORTED_IMAGE_TYPES = frozenset({"gif", "webp", "heic", "avif", "bmp"})

_HEIC_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_AVIF_BRANDS = (b"avif", b"avis")
# The PDF spec lets readers accept junk before the header; Acrobat looks in the first 1 KB.
_PDF_HEADER_WINDOW = 1024


def sniff(data: bytes) -> str | None:
    """Return a short type name ("jpeg", "pdf", "gif", ...) or None when unknown."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return "pdf"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIC_BRANDS:
            return "heic"
        if brand in _AVIF_BRANDS:
            return "avif"
        return None
    if head.startswith(b"BM") and len(data) > 26:
        return "bmp"
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from the image header, without decoding pixels.

    ``Image.open`` is lazy: it parses the header only, so this is cheap even for a
    large photo. Returns None when Pillow cannot read the header.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns on corrupt EXIF, decompression bombs...: a header read needs none.
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return int(img.width), int(img.height)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
