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


def huge_page_pdf(pages: int = 20, side_pt: int = 14_400, text: str = "TOTAL 12.50") -> bytes:
    """A few KB of PDF whose pages are ``side_pt`` points square (14,400 pt is the largest
    page PDF allows: 5 m, or 40,000 px a side at 200 DPI), each with one large line of text.

    Written by hand so the text needs no font file and the bytes stay tiny, like the
    attachment that took an OCR worker to 3 GB.
    """
    content = f"BT /F1 600 Tf 400 {side_pt - 1200} Td ({text}) Tj ET".encode("ascii")
    pages_id, font_id, content_id = 2, 3, 4
    objects: dict[int, bytes] = {
        1: f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode(),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        content_id: f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream",
    }
    kids = []
    for page_id in range(5, 5 + pages):  # every page shares the one content stream
        kids.append(f"{page_id} 0 R")
        objects[page_id] = (
            f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {side_pt} {side_pt}] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode()
    objects[pages_id] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {pages} >>".encode()
    out = bytearray(b"%PDF-1.7\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in sorted(objects))
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
