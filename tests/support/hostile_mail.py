"""Hostile and broken emails, built in code: the corpus that ``parse_email`` must survive.

Every message is one class of trouble seen in a real claims mailbox (or in an attack on
one): malformed headers, absurd nesting, broken multipart boundaries, pathological text,
spoofed file names, oversized or undecodable parts. ``scripts/make_hostile_mail.py``
writes the corpus to a folder; the tests build it in memory or into ``tmp_path``.
Deterministic: the same code writes the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

#: A size limit that the "oversized" message's attachment exceeds (pass it as
#: ``max_attachment_bytes``); the other attachments stay well under it.
OVERSIZED_LIMIT = 100_000
#: How deep the "nested" message goes: far past any limit a parser should accept.
NESTING_DEPTH = 1000

POLICY_LINE = "Policy No: POL-12345"


def receipt_jpeg(width: int = 480, height: int = 640) -> bytes:
    """A small real JPEG, big enough in pixels to count as a receipt photo."""
    img = Image.new("RGB", (width, height), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    for y in range(40, height - 40, 24):
        draw.line((40, y, width - 40 - (y * 7) % 120, y), fill=(30, 30, 30), width=3)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _headers(name: str, *extra: str, message_id: str | None = None) -> bytes:
    lines = [
        "From: Member <member@example.com>",
        "To: claims@insurer.example",
        f"Subject: Claim ({name})",
        "Date: Tue, 02 Jul 2024 09:30:00 +0800",
        f"Message-ID: {message_id or f'<{name}@hostile.example>'}",
        "MIME-Version: 1.0",
        *extra,
    ]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"


def _part(headers: list[str], body: bytes) -> bytes:
    head = "\r\n".join(headers).encode("utf-8", "surrogateescape")
    return head + b"\r\n\r\n" + body


def _text_part(text: str = POLICY_LINE) -> bytes:
    return _part(["Content-Type: text/plain; charset=utf-8"], text.encode() + b"\r\n")


def _jpeg_part(jpeg: bytes, name: str | None = "receipt.jpg", *extra: str) -> bytes:
    ctype = f'Content-Type: image/jpeg; name="{name}"' if name else "Content-Type: image/jpeg"
    disposition = (
        f'Content-Disposition: attachment; filename="{name}"'
        if name
        else "Content-Disposition: attachment"
    )
    return _part([ctype, disposition, *extra, "Content-Transfer-Encoding: base64"], _b64(jpeg))


def _body(boundary: str, parts: list[bytes], *, close: bool = True) -> bytes:
    sep = f"--{boundary}".encode()
    out = b"This is a multi-part message in MIME format.\r\n"
    for part in parts:
        out += sep + b"\r\n" + part + b"\r\n"
    return out + (sep + b"--\r\n" if close else b"")


def _multipart(name: str, boundary: str | None, parts: list[bytes], *extra: str) -> bytes:
    declared = f'; boundary="{boundary}"' if boundary is not None else ""
    head = _headers(name, f"Content-Type: multipart/mixed{declared}", *extra)
    return head + b"\r\n" + _body(boundary or "XYZ-used-but-not-declared", parts)


def _simple(name: str, parts: list[bytes]) -> bytes:
    return _multipart(name, "BOUNDARY-1", parts)


# --- the corpus -----------------------------------------------------------------------


def malformed_from_at(jpeg: bytes) -> bytes:
    raw = _simple("malformed_from_at", [_text_part(), _jpeg_part(jpeg)])
    return raw.replace(b"From: Member <member@example.com>", b"From: a@")


def malformed_from_quote(jpeg: bytes) -> bytes:
    raw = _simple("malformed_from_quote", [_text_part(), _jpeg_part(jpeg)])
    return raw.replace(b"From: Member <member@example.com>", b'From: "')


def malformed_message_id(jpeg: bytes) -> bytes:
    return _multipart_with_id("<", jpeg)


def _multipart_with_id(message_id: str, jpeg: bytes) -> bytes:
    head = _headers(
        "malformed_message_id",
        'Content-Type: multipart/mixed; boundary="B"',
        message_id=message_id,
    )
    return head + b"\r\n" + _body("B", [_text_part(), _jpeg_part(jpeg)])


def nul_in_rfc2231_charset(jpeg: bytes) -> bytes:
    """RFC 2231 parameters whose charset holds a NUL (the stdlib raised ValueError)."""
    text = _part(["Content-Type: text/plain; charset*=\x00''x"], POLICY_LINE.encode() + b"\r\n")
    jpeg_part = _part(
        [
            "Content-Type: image/jpeg; name*=\x00''receipt.jpg",
            "Content-Disposition: attachment; filename*=\x00''receipt.jpg",
            "Content-Transfer-Encoding: base64",
        ],
        _b64(jpeg),
    )
    return _simple("nul_in_rfc2231_charset", [text, jpeg_part])


def deeply_nested(jpeg: bytes) -> bytes:
    """A multipart nested ``NESTING_DEPTH`` levels deep, with a receipt at each end."""
    inner = _jpeg_part(jpeg, "deep.jpg")
    for level in reversed(range(NESTING_DEPTH)):
        boundary = f"level-{level}"
        inner = _part(
            [f'Content-Type: multipart/mixed; boundary="{boundary}"'],
            _body(boundary, [inner]),
        )
    return _simple("deeply_nested", [_text_part(), inner, _jpeg_part(jpeg, "shallow.jpg")])


def missing_boundary(jpeg: bytes) -> bytes:
    """``multipart/mixed`` without a boundary parameter; the body uses ``--XYZ``."""
    head = _headers("missing_boundary", "Content-Type: multipart/mixed")
    return head + b"\r\n" + _body("XYZ", [_text_part(), _jpeg_part(jpeg)])


def boundary_case_mismatch(jpeg: bytes) -> bytes:
    """The declared boundary is ``frontier``; the body uses ``FRONTIER``."""
    head = _headers("boundary_case_mismatch", 'Content-Type: multipart/mixed; boundary="frontier"')
    return head + b"\r\n" + _body("FRONTIER", [_text_part(), _jpeg_part(jpeg)])


def boundary_reused(jpeg: bytes) -> bytes:
    """A nested multipart declares the same boundary as its parent."""
    alternative = _part(
        ['Content-Type: multipart/alternative; boundary="SAME"'],
        _body(
            "SAME",
            [
                _text_part(),
                _part(["Content-Type: text/html"], f"<p>{POLICY_LINE}</p>\r\n".encode()),
            ],
        ),
    )
    head = _headers("boundary_reused", 'Content-Type: multipart/mixed; boundary="SAME"')
    return head + b"\r\n" + _body("SAME", [alternative, _jpeg_part(jpeg)])


def blank_lines_after_label(jpeg: bytes) -> bytes:
    """``Policy No: X`` then 30,000 blank lines: quadratic regular expressions stall."""
    body = POLICY_LINE.encode() + b"\r\n" * 30_000 + b"Thanks\r\n"
    text = _part(["Content-Type: text/plain"], body)
    return _simple("blank_lines_after_label", [text, _jpeg_part(jpeg)])


def spaces_after_label(jpeg: bytes) -> bytes:
    """100,000 spaces after a label, then the value."""
    text = _part(["Content-Type: text/plain"], b"Name:" + b" " * 100_000 + b"x\r\n")
    return _simple("spaces_after_label", [text, _jpeg_part(jpeg)])


def deep_blank_lines(jpeg: bytes) -> bytes:
    """300,000 blank lines 45 multiparts deep: the stdlib tests each line against every
    enclosing boundary (lines x depth)."""
    inner = _part(["Content-Type: text/plain"], b"\n" * 300_000)
    for level in reversed(range(45)):
        boundary = f"b{level}"
        inner = _part(
            [f'Content-Type: multipart/mixed; boundary="{boundary}"'], _body(boundary, [inner])
        )
    return _simple("deep_blank_lines", [_text_part(), inner, _jpeg_part(jpeg)])


def html_comment_bomb(jpeg: bytes) -> bytes:
    """An HTML body of 50,000 unterminated ``<!--`` (Python's HTMLParser is quadratic)."""
    html = _part(
        ["Content-Type: text/html"], b"<p>" + POLICY_LINE.encode() + b"</p>" + b"<!--" * 50_000
    )
    return _simple("html_comment_bomb", [html, _jpeg_part(jpeg)])


def header_bomb(jpeg: bytes) -> bytes:
    """Header values that CPython's structured header parsers take quadratic time on."""
    text = _part(
        ["Content-Type: text/plain; charset=utf-8 " + "(" * 20_000],
        POLICY_LINE.encode() + b"\r\n",
    )
    raw = _simple("header_bomb", [text, _jpeg_part(jpeg)])
    bomb = (
        b"From: " + b'"' * 20_000 + b" <a@b.c>\r\n"
        b"Subject: " + b"=?utf-8?q?a?= " * 20_000 + b"\r\n"
        b"Date: " + b"(" * 20_000
    )
    raw = raw.replace(b"From: Member <member@example.com>", bomb)
    return raw.replace(
        b"Subject: Claim (header_bomb)\r\nDate: Tue, 02 Jul 2024 09:30:00 +0800\r\n", b""
    )


def parameter_bomb(jpeg: bytes) -> bytes:
    """A receipt, then 200 parts whose MIME headers are 2 KB of what parsers choke on."""
    junk = [
        _part(
            [
                f'Content-Type: text/plain; name="n{i}.txt"' + ";a" * 1000,
                f'Content-Disposition: attachment; filename="n{i}.txt"' + " (" * 1000,
                "Content-Transfer-Encoding: " + ":\t" * 1000,
                "Content-ID: <" + "x " * 1000 + ">",
            ],
            b"x",
        )
        for i in range(200)
    ]
    return _simple("parameter_bomb", [_text_part(), _jpeg_part(jpeg), *junk])


def rtl_override_name(jpeg: bytes) -> bytes:
    """``receipt\\u202egpj.exe`` shows as ``receiptexe.jpg`` in a right-to-left aware UI."""
    part = _part(
        [
            "Content-Type: image/jpeg",
            "Content-Disposition: attachment; filename*=utf-8''receipt%E2%80%AEgpj.exe",
            "Content-Transfer-Encoding: base64",
        ],
        _b64(jpeg),
    )
    return _simple("rtl_override_name", [_text_part(), part])


def exe_name_on_jpeg(jpeg: bytes) -> bytes:
    return _simple("exe_name_on_jpeg", [_text_part(), _jpeg_part(jpeg, "receipt.exe")])


def path_and_controls_name(jpeg: bytes) -> bytes:
    """A name with a path, an escape sequence, a NUL, zero-width and bidi isolate chars."""
    part = _part(
        [
            "Content-Type: image/jpeg",
            "Content-Disposition: attachment; filename*=utf-8''..%5C..%2Fetc%2F"
            "%1B%5B31mre%00ce%E2%80%8Bipt%E2%81%A6.jpg",
            "Content-Transfer-Encoding: base64",
        ],
        _b64(jpeg),
    )
    return _simple("path_and_controls_name", [_text_part(), part])


def missing_name(jpeg: bytes) -> bytes:
    return _simple("missing_name", [_text_part(), _jpeg_part(jpeg, None)])


def long_headers(jpeg: bytes) -> bytes:
    """A 5,000-char Message-ID, a 1,000-char file name and a 1,000-char content type."""
    head = _headers(
        "long_headers",
        'Content-Type: multipart/mixed; boundary="B"',
        message_id="<" + "m" * 5000 + "@example.com>",
    )
    long_type = _part(
        [
            "Content-Type: application/x-" + "t" * 1000,
            'Content-Disposition: attachment; filename="notes.txt"',
        ],
        b"some notes\r\n",
    )
    parts = [_text_part(), _jpeg_part(jpeg, "r" * 1000 + ".jpg"), long_type]
    return head + b"\r\n" + _body("B", parts)


def empty_attachment(jpeg: bytes) -> bytes:
    part = _part(
        [
            'Content-Type: image/jpeg; name="empty.jpg"',
            "Content-Disposition: attachment",
            "Content-Transfer-Encoding: base64",
        ],
        b"",
    )
    return _simple("empty_attachment", [_text_part(), part])


def oversized_attachment(jpeg: bytes) -> bytes:
    """A JPEG over ``OVERSIZED_LIMIT`` bytes (padding after the end-of-image marker)."""
    big = jpeg + bytes(OVERSIZED_LIMIT + 1 - len(jpeg)) if len(jpeg) <= OVERSIZED_LIMIT else jpeg
    return _simple("oversized_attachment", [_text_part(), _jpeg_part(big, "big.jpg")])


def undecodable_attachment(jpeg: bytes) -> bytes:
    part = _part(
        [
            'Content-Type: image/jpeg; name="broken.jpg"',
            "Content-Transfer-Encoding: base64",
        ],
        b"!!!! this is @@@ not base64 ***\r\n",
    )
    return _simple("undecodable_attachment", [_text_part(), part])


def no_attachment(jpeg: bytes) -> bytes:
    head = _headers("no_attachment", "Content-Type: text/plain; charset=utf-8")
    return head + b"\r\n" + POLICY_LINE.encode() + b"\r\nReceipt to follow.\r\n"


def base64_forwarded_email(jpeg: bytes) -> bytes:
    """A forwarded email (message/rfc822) sent base64-encoded, which RFC 2046 forbids."""
    inner = _simple("inner", [_text_part("the clinic's email"), _jpeg_part(jpeg, "fwd.jpg")])
    forwarded = _part(
        [
            "Content-Type: message/rfc822",
            "Content-Disposition: attachment",
            "Content-Transfer-Encoding: base64",
        ],
        _b64(inner),
    )
    return _simple("base64_forwarded_email", [_text_part(), forwarded])


def too_many_parts(jpeg: bytes) -> bytes:
    """A receipt, then 1,000 tiny parts."""
    tiny = [_part([f'Content-Type: text/plain; name="n{i}.txt"'], b"x") for i in range(1000)]
    return _simple("too_many_parts", [_text_part(), _jpeg_part(jpeg), *tiny])


def truncated_email(jpeg: bytes) -> bytes:
    """Cut off in the middle of the attachment: no closing boundary, half the base64."""
    raw = _simple("truncated_email", [_text_part(), _jpeg_part(jpeg)])
    return raw[: len(raw) * 3 // 4]


def not_an_email(jpeg: bytes) -> bytes:
    """A JPEG file dropped into the mailbox: no headers at all."""
    return jpeg


#: Every corpus message, by file stem, in a stable order.
BUILDERS: dict[str, Callable[[bytes], bytes]] = {
    f.__name__: f
    for f in (
        malformed_from_at,
        malformed_from_quote,
        malformed_message_id,
        nul_in_rfc2231_charset,
        deeply_nested,
        missing_boundary,
        boundary_case_mismatch,
        boundary_reused,
        blank_lines_after_label,
        spaces_after_label,
        deep_blank_lines,
        html_comment_bomb,
        header_bomb,
        parameter_bomb,
        rtl_override_name,
        exe_name_on_jpeg,
        path_and_controls_name,
        missing_name,
        long_headers,
        empty_attachment,
        oversized_attachment,
        undecodable_attachment,
        no_attachment,
        base64_forwarded_email,
        too_many_parts,
        truncated_email,
        not_an_email,
    )
}


def build_corpus() -> dict[str, bytes]:
    """Every hostile message, by file stem."""
    jpeg = receipt_jpeg()
    return {name: build(jpeg) for name, build in BUILDERS.items()}


def write_corpus(folder: Path) -> list[Path]:
    """Write the corpus as ``<name>.eml`` files into ``folder``; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, raw in build_corpus().items():
        path = folder / f"{name}.eml"
        path.write_bytes(raw)
        paths.append(path)
    return paths
