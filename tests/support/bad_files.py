"""Hostile attachments built in code, shared by the page-loading and pipeline tests."""

from __future__ import annotations

import io

import pypdf
from PIL import Image


def encrypted_pdf() -> bytes:
    """A one-page PDF that needs a password to open."""
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=72, height=72)
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def bomb_png() -> bytes:
    """A few KB that decode to 400 million pixels."""
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, "PNG")
    return buf.getvalue()
