"""MIME parsing edge cases, built with the stdlib email package (as mail clients send them)."""

from __future__ import annotations

import base64
import io
import random
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage

import pytest
from PIL import Image

from services.demo.receipts import images_to_pdf, random_spec, render_receipt, to_jpeg, to_png
from services.mail import Attachment, MailParseError, MailProblem, SkipReason, parse_email
from services.mail.message import (
    MAX_CONTENT_ID_CHARS,
    MAX_FILENAME_CHARS,
    MAX_MESSAGE_ID_CHARS,
    MAX_SENDER_CHARS,
    MAX_SENDER_NAME_CHARS,
    MAX_SUBJECT_CHARS,
)
from services.mail.names import attachment_filename
from services.mail.sniff import image_dimensions, sniff


@pytest.fixture(scope="module")
def receipt_img() -> Image.Image:
    return render_receipt(random_spec(random.Random(7)), seed=7)


@pytest.fixture(scope="module")
def jpeg(receipt_img: Image.Image) -> bytes:
    return to_jpeg(receipt_img)


@pytest.fixture(scope="module")
def pdf(receipt_img: Image.Image) -> bytes:
    return images_to_pdf([receipt_img])


def _image(fmt: str, size: tuple[int, int] = (160, 40), **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (0, 90, 160)).save(buf, fmt, **kw)
    return buf.getvalue()


def _msg(subject: str = "Claim", body: str = "Policy No: POL-1234") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Member <member@example.com>"
    msg["To"] = "claims@insurer.example"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 02 Jul 2024 09:30:00 +0800"
    msg["Message-ID"] = "<abc@example.com>"
    msg.set_content(body)
    return msg


def _parse(msg: EmailMessage | bytes, **kw: object):  # type: ignore[no-untyped-def]
    raw = msg if isinstance(msg, bytes) else msg.as_bytes(policy=policy.SMTP)
    return parse_email(raw, source="test", source_id="1", **kw)  # type: ignore[arg-type]


def _by_name(atts: list[Attachment]) -> dict[str | None, Attachment]:
    return {a.filename: a for a in atts}


def test_plain_email_with_one_receipt(jpeg: bytes) -> None:
    msg = _msg()
    msg.add_attachment(jpeg, "image", "jpeg", filename="receipt.jpg")
    email = _parse(msg)
    assert email.subject == "Claim"
    assert email.sender == "member@example.com"
    assert email.sender_name == "Member"
    assert email.message_id == "<abc@example.com>"
    assert email.body_text == "Policy No: POL-1234"
    assert email.received_at == datetime(2024, 7, 2, 1, 30, tzinfo=UTC)
    assert email.received_at.tzinfo is not None
    (att,) = email.attachments
    assert (att.filename, att.kind, att.skip_reason) == ("receipt.jpg", "jpeg", None)
    assert att.data == jpeg and att.size == len(jpeg)
    assert att.dimensions == (720, Image.open(io.BytesIO(jpeg)).height)
    assert email.claim_attachments == [att]


def test_nested_multipart_with_inline_logo_and_html(jpeg: bytes) -> None:
    msg = _msg(body="Member ID: MB-1\n-- \nAcme")
    msg.add_alternative("<p>Member ID: MB-1</p><img src='cid:logo@x'>", subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(_image("PNG"), "image", "png", cid="<logo@x>", filename="logo.png")
    msg.add_attachment(jpeg, "image", "jpeg", filename="IMG_0001.JPG")
    email = _parse(msg)
    assert email.body_text.startswith("Member ID: MB-1")
    atts = _by_name(email.attachments)
    assert set(atts) == {"logo.png", "IMG_0001.JPG"}
    logo = atts["logo.png"]
    assert logo.skip_reason == SkipReason.TINY_INLINE_IMAGE and logo.kind is None
    assert logo.inline and logo.content_id == "logo@x"
    assert logo.dimensions == (160, 40)
    assert atts["IMG_0001.JPG"].kind == "jpeg"


def test_html_only_body_is_stripped_to_text() -> None:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content(
        "<html><head><style>p{color:red}</style><script>var a=1;</script></head>"
        "<body><p>Policy No:&nbsp;POL-9&amp;1</p><div>Nama: Ali</div></body></html>",
        subtype="html",
    )
    email = _parse(msg)
    assert email.body_text == "Policy No: POL-9&1\n\nNama: Ali"


def test_forwarded_rfc822_attachments_are_found_recursively(jpeg: bytes, pdf: bytes) -> None:
    innermost = _msg("Original receipt", "from the clinic")
    innermost.add_attachment(pdf, "application", "pdf", filename="invoice.pdf")
    inner = _msg("Fwd: Original receipt", "forwarded once")
    inner.add_attachment(jpeg, "image", "jpeg", filename="photo.jpg")
    inner.add_attachment(innermost)
    outer = _msg("Fwd: Fwd: Original receipt", "Policy No: POL-77777")
    outer.add_attachment(inner)
    outer.add_attachment(jpeg, "image", "jpeg", filename="outer.jpg")
    email = _parse(outer)
    assert email.body_text == "Policy No: POL-77777"  # the outer body, not a forwarded one
    kinds = [(a.filename, a.kind) for a in email.attachments]
    assert kinds == [("photo.jpg", "jpeg"), ("invoice.pdf", "pdf"), ("outer.jpg", "jpeg")]
    indexes = [a.part_index for a in email.attachments]
    assert indexes == sorted(set(indexes))
    # Same bytes -> same indexes: the ledger keys jobs on (email, part_index).
    assert [a.part_index for a in _parse(outer).attachments] == indexes


def test_octet_stream_receipt_is_recognised_by_content(jpeg: bytes) -> None:
    msg = _msg()
    msg.add_attachment(jpeg, "application", "octet-stream", filename="IMG_20240101.jpg")
    (att,) = _parse(msg).attachments
    assert att.declared_type == "application/octet-stream"
    assert att.kind == "jpeg" and att.detected_type == "jpeg"


def test_octet_stream_without_a_name_is_still_read(pdf: bytes) -> None:
    msg = _msg()
    msg.add_attachment(pdf, "application", "octet-stream")
    (att,) = _parse(msg).attachments
    assert att.filename == "attachment-2.pdf" and att.kind == "pdf"


def test_mislabelled_types_trust_the_bytes(jpeg: bytes, pdf: bytes) -> None:
    msg = _msg()
    msg.add_attachment(pdf, "image", "jpeg", filename="receipt.jpg")
    msg.add_attachment(to_png(Image.open(io.BytesIO(jpeg))), "image", "jpeg", filename="a.jpeg")
    msg.add_attachment(jpeg, "application", "pdf", filename="scan.pdf")
    msg.add_attachment(b"hello, not an image", "image", "jpeg", filename="fake.jpg")
    atts = _by_name(_parse(msg).attachments)
    # The name's extension follows the bytes: what is archived and sent on opens right.
    assert atts["receipt.pdf"].kind == "pdf"
    assert atts["a.png"].kind == "png"
    assert atts["scan.jpg"].kind == "jpeg"
    assert atts["fake.jpg"].kind is None  # not a claim document: the member's name is kept
    assert atts["fake.jpg"].skip_reason == SkipReason.NOT_A_CLAIM_DOCUMENT


def test_pdf_with_leading_junk_is_a_pdf(pdf: bytes) -> None:
    assert sniff(b"\r\n\x00garbage\n" + pdf) == "pdf"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "png"),
        (b"II*\x00" + b"\x00" * 40, "tiff"),
        (b"MM\x00*" + b"\x00" * 40, "tiff"),
        (b"%PDF-1.7\n", "pdf"),
        (b"GIF89a" + b"\x00" * 40, "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 40, "webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heic"),
        (b"\x00\x00\x00\x1cftypavif" + b"\x00" * 20, "avif"),
        (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 20, None),  # an MP4 video
        (b"PK\x03\x04" + b"\x00" * 40, None),  # docx / zip
        (b"", None),
    ],
)
def test_sniff(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_sniff_real_files() -> None:
    assert sniff(_image("BMP", (200, 200))) == "bmp"
    assert sniff(_image("GIF")) == "gif"
    assert sniff(_image("WEBP")) == "webp"
    assert sniff(_image("TIFF")) == "tiff"
    assert image_dimensions(_image("TIFF", (300, 500))) == (300, 500)
    assert image_dimensions(b"\xff\xd8\xff\xe0 not really") is None


def test_unsupported_images_are_reported_not_dropped() -> None:
    msg = _msg()
    msg.add_attachment(_image("GIF", (800, 1200)), "image", "gif", filename="receipt.gif")
    msg.add_attachment(_image("WEBP", (800, 1200)), "image", "webp", filename="receipt.webp")
    msg.add_attachment(_image("BMP", (800, 1200)), "image", "bmp", filename="scan.bmp")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(20_000)
    msg.add_attachment(heic, "image", "heic", filename="IMG_0042.HEIC")
    atts = _parse(msg).attachments
    assert [a.skip_reason for a in atts] == [SkipReason.UNSUPPORTED_IMAGE_TYPE] * 4
    assert [a.detected_type for a in atts] == ["gif", "webp", "bmp", "heic"]
    assert all(a.kind is None for a in atts)


def test_logo_rules_keep_pasted_receipts_and_drop_logos(jpeg: bytes) -> None:
    msg = _msg()
    msg.add_alternative("<p>see pictures</p>", subtype="html")
    html = msg.get_payload()[1]
    flat_screenshot = _image("PNG", (600, 900))  # e-receipt screenshot: tiny file, big image
    assert len(flat_screenshot) < 15 * 1024
    html.add_related(flat_screenshot, "image", "png", cid="<shot@x>", filename="shot.png")
    html.add_related(jpeg, "image", "jpeg", cid="<photo@x>", filename="pasted.jpg")
    html.add_related(_image("GIF", (1, 1)), "image", "gif", cid="<px@x>")  # tracking pixel
    banner = _image("PNG", (900, 90), compress_level=0)  # wide banner, > 15 KB, short side 90
    assert len(banner) > 15 * 1024
    html.add_related(banner, "image", "png", cid="<banner@x>", filename="banner.png")
    msg.add_attachment(_image("PNG", (60, 60)), "image", "png", filename="thumb.png")
    atts = _by_name(_parse(msg).attachments)
    assert atts["shot.png"].kind == "png"
    assert atts["pasted.jpg"].kind == "jpeg"
    assert atts["attachment-7.gif"].skip_reason == SkipReason.TINY_INLINE_IMAGE
    assert atts["banner.png"].skip_reason == SkipReason.TINY_INLINE_IMAGE
    assert atts["thumb.png"].skip_reason == SkipReason.IMAGE_TOO_SMALL


def test_non_claim_documents_are_listed_with_a_reason() -> None:
    msg = _msg()
    msg.add_attachment(b"PK\x03\x04docx bytes", "application", "vnd.ms-word", filename="form.docx")
    msg.add_attachment("just some notes", subtype="plain", filename="notes.txt")
    msg.add_attachment(b"", "application", "pdf", filename="empty.pdf")
    cal = EmailMessage()
    cal.set_content("BEGIN:VCALENDAR\nEND:VCALENDAR\n", subtype="calendar")
    msg.attach(cal)  # an invite part: inline, no filename, still not silently dropped
    atts = _parse(msg).attachments
    reasons = [(a.filename, a.declared_type, a.skip_reason) for a in atts]
    assert reasons == [
        ("form.docx", "application/vnd.ms-word", SkipReason.NOT_A_CLAIM_DOCUMENT),
        ("notes.txt", "text/plain", SkipReason.NOT_A_CLAIM_DOCUMENT),
        ("empty.pdf", "application/pdf", SkipReason.EMPTY_ATTACHMENT),
        ("attachment-5.ics", "text/calendar", SkipReason.NOT_A_CLAIM_DOCUMENT),
    ]


def test_attachment_over_the_size_limit(jpeg: bytes) -> None:
    msg = _msg()
    msg.add_attachment(jpeg, "image", "jpeg", filename="big.jpg")
    (att,) = _parse(msg, max_attachment_bytes=len(jpeg) - 1).attachments
    assert att.skip_reason == SkipReason.ATTACHMENT_TOO_LARGE
    # The bytes are not kept, the real size is: the ledger records it, nothing stores it.
    assert att.data == b"" and att.size == att.original_size == len(jpeg)
    assert att.detected_type == "jpeg" and att.filename == "big.jpg"
    (att,) = _parse(msg, max_attachment_bytes=len(jpeg)).attachments
    assert att.kind == "jpeg" and att.data == jpeg and att.original_size is None


def _raw_email(headers: str, parts: list[tuple[str, str]]) -> bytes:
    """Hand-written MIME, for header encodings the stdlib would never produce itself."""
    lines = [
        headers.strip(),
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="B"',
        "",
    ]
    lines += ["--B", "Content-Type: text/plain; charset=utf-8", "", "body", ""]
    for part_headers, payload in parts:
        lines += ["--B", part_headers.strip(), "", payload, ""]
    lines.append("--B--")
    return "\r\n".join(lines).encode("latin-1", errors="surrogateescape")


def test_rfc2047_and_rfc2231_filenames_and_headers(jpeg: bytes) -> None:
    b64 = base64.encodebytes(jpeg).decode()
    raw = _raw_email(
        "From: =?utf-8?b?U2l0aSBOdXLigJlhaW4=?= <siti@example.com>\r\n"
        "Subject: =?iso-8859-1?q?R=E9sum=E9_de_la_r=E9clamation?=\r\n"
        "Date: Wed, 03 Jul 2024 08:00:00 -0000",
        [
            (
                'Content-Type: image/jpeg;\r\n name="=?UTF-8?B?5pS25o2uLmpwZw==?="\r\n'
                'Content-Disposition: attachment;\r\n filename="=?UTF-8?B?5pS25o2uLmpwZw==?="\r\n'
                "Content-Transfer-Encoding: base64",
                b64,
            ),
            (
                "Content-Type: image/jpeg\r\n"
                "Content-Disposition: attachment; filename*=utf-8''resit%20klinik%20%C3%BC.jpg\r\n"
                "Content-Transfer-Encoding: base64",
                b64,
            ),
            (
                "Content-Type: application/octet-stream\r\n"
                'Content-Disposition: attachment; filename="../../etc/r\xe9sit.jpg"\r\n'
                "Content-Transfer-Encoding: base64",
                b64,
            ),
        ],
    )
    email = _parse(raw)
    assert email.subject == "Résumé de la réclamation"
    assert email.sender_name == "Siti Nur’ain"
    assert email.received_at == datetime(2024, 7, 3, 8, 0, tzinfo=UTC)  # "-0000" read as UTC
    names = [a.filename for a in email.attachments]
    assert names == ["收据.jpg", "resit klinik ü.jpg", "résit.jpg"]  # raw latin-1, path stripped
    assert [a.kind for a in email.attachments] == ["jpeg"] * 3


def test_raw_8bit_utf8_subject() -> None:
    raw = "Subject: Tuntutan – Nama: 黄秀玲\r\nFrom: a@b.c\r\n\r\nhi\r\n".encode()
    assert _parse(raw).subject == "Tuntutan – Nama: 黄秀玲"


def test_broken_base64_is_recorded_not_a_crash(jpeg: bytes) -> None:
    good = base64.b64encode(jpeg).decode()
    raw = _raw_email(
        "From: a@example.com\r\nSubject: broken",
        [
            (  # garbage: not base64 at all
                'Content-Type: image/jpeg; name="a.jpg"\r\nContent-Transfer-Encoding: base64',
                "!!!! this is @@@ not base64 ***",
            ),
            (  # a truncated upload: padding lost, most of the image still there
                'Content-Type: image/jpeg; name="b.jpg"\r\nContent-Transfer-Encoding: base64',
                good[: len(good) // 8 * 4 + 2],
            ),
            (  # truncated to 4n+1 characters: the email package cannot decode it at all
                'Content-Type: image/jpeg; name="d.jpg"\r\nContent-Transfer-Encoding: base64',
                good[: len(good) // 8 * 4 + 1],
            ),
            (  # an unknown transfer encoding
                'Content-Type: application/pdf; name="c.pdf"\r\nContent-Transfer-Encoding: x-uue',
                "%PDF-1.4 not really uuencoded",
            ),
        ],
    )
    atts = _by_name(_parse(raw).attachments)
    assert atts["a.jpg"].kind is None
    assert atts["a.jpg"].skip_reason == SkipReason.BROKEN_ENCODING
    assert atts["a.jpg"].defects
    assert atts["b.jpg"].kind == "jpeg"  # still a JPEG; the OCR step decides if it is readable
    assert "InvalidBase64PaddingDefect" in atts["b.jpg"].defects
    assert atts["d.jpg"].kind == "jpeg"
    assert atts["d.jpg"].data == jpeg[: len(atts["d.jpg"].data)]  # salvaged, not base64 text
    assert "InvalidBase64LengthDefect" in atts["d.jpg"].defects
    assert atts["c.pdf"].kind == "pdf"  # unknown CTE: bytes passed through as-is


def test_every_attachment_leaf_is_accounted_for(jpeg: bytes, pdf: bytes) -> None:
    inner = _msg("inner", "inner body")
    inner.add_attachment(b"BEGIN:VCARD", "text", "vcard", filename="a.vcf")
    inner.add_attachment(pdf, "application", "pdf", filename="b.pdf")
    msg = _msg()
    msg.add_alternative("<p>x</p>", subtype="html")
    msg.get_payload()[1].add_related(_image("PNG"), "image", "png", cid="<l@x>")
    msg.add_attachment(inner)
    msg.add_attachment(jpeg, "image", "jpeg", filename="c.jpg")
    msg.add_attachment(b"\x00\x01", "application", "zip", filename="d.zip")
    email = _parse(msg)
    leaves = [
        p
        for p in msg.walk()
        if not p.is_multipart()
        and not (p.get_content_type() in {"text/plain", "text/html"} and not p.get_filename())
    ]
    assert len(email.attachments) == len(leaves) == 5
    for att in email.attachments:
        assert (att.kind is None) != (att.skip_reason is None)


def test_received_at_prefers_the_top_received_header() -> None:
    raw = (
        b"Received: from relay by mx.insurer.example; Thu, 04 Jul 2024 10:00:05 +0800\r\n"
        b"Received: from client by relay; Thu, 04 Jul 2024 09:59:59 +0800\r\n"
        b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n"
    )
    assert _parse(raw).received_at == datetime(
        2024, 7, 4, 10, 0, 5, tzinfo=timezone(timedelta(hours=8))
    )


def test_received_at_falls_back_to_delivery_time_then_date() -> None:
    naive = datetime(2024, 7, 5, 12, 0)
    raw = b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n"
    assert _parse(raw, delivered_at=naive).received_at == naive.replace(tzinfo=UTC)
    assert _parse(raw).received_at == datetime(2024, 1, 1, tzinfo=UTC)
    assert _parse(b"Date: rubbish\r\n\r\nx").received_at.tzinfo is not None


def test_missing_message_id_is_synthesised_from_the_bytes() -> None:
    raw = b"Subject: no id\r\n\r\nbody\r\n"
    a, b = _parse(raw), _parse(raw)
    assert a.message_id == b.message_id and a.message_id.endswith("@claims-ocr.invalid>")
    assert _parse(raw + b"x").message_id != a.message_id


def test_garbage_input_never_raises() -> None:
    rng = random.Random(3)
    for _ in range(50):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
        email = _parse(b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" + junk)
        assert email.size > 0


def test_repr_hides_member_data(jpeg: bytes) -> None:
    msg = _msg("Policy No: POL-SECRET1", "Nama: Siti Rahsia")
    msg.add_attachment(jpeg, "image", "jpeg", filename="Siti-Rahsia-receipt.jpg")
    text = repr(_parse(msg))
    assert "SECRET" not in text and "Rahsia" not in text and "member@example.com" not in text


# --- names and bounds ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("receipt.jpg", "jpeg", "receipt.jpg"),
        ("IMG_0001.JPG", "jpeg", "IMG_0001.JPG"),  # any spelling of the right extension stays
        ("scan.jpeg", "jpeg", "scan.jpeg"),
        ("scan.TIFF", "tiff", "scan.TIFF"),
        ("receipt.exe", "jpeg", "receipt.jpg"),
        ("invoice.pdf.exe", "pdf", "invoice.pdf.pdf"),
        ("receipt", "png", "receipt.png"),
        ("resit 12.5.2024", "tiff", "resit 12.5.2024.tif"),  # "2024" is not an extension
        ("receipt\u202egpj.exe", "jpeg", "receiptgpj.jpg"),
        ("\u2066re\u200bceipt\u2069\u200f.jpg", "jpeg", "receipt.jpg"),
        ("a\x00b\x1b[0m\x7f\x85c.pdf", "pdf", "ab[0m c.pdf"),  # NEL is a line break
        ("line\u2028break.png", "png", "line break.png"),
        ("../../etc/passwd", "pdf", "passwd.pdf"),
        ("C:\\Users\\me\\scan.tif", "tiff", "scan.tif"),
        ("  ..hidden.jpg. ", "jpeg", "hidden.jpg"),
        ("many    spaces\t.jpg", "jpeg", "many spaces.jpg"),
        ("收据.jpg", "jpeg", "收据.jpg"),
        ("e\u0301.jpg", "jpeg", "é.jpg"),  # NFC: one character, as most systems show it
        (".jpg", "jpeg", "attachment-4.jpg"),
        ("\u202e", "pdf", "attachment-4.pdf"),
        ("", "pdf", "attachment-4.pdf"),
        (None, "png", "attachment-4.png"),
        ("x" * 500 + ".jpg", "jpeg", "x" * 116 + ".jpg"),
        ("x" * 500 + ".verylongext", "jpeg", "x" * 116 + ".jpg"),
        ("form.docx", None, "form.docx"),
        ("notes\u202etxt.exe", None, "notestxt.exe"),  # not a claim: the name stays as sent
        (None, None, "attachment-4"),
    ],
)
def test_attachment_filename_rules(name: str | None, kind: str | None, expected: str) -> None:
    got = attachment_filename(
        name, part_index=4, kind=kind, detected_type=kind, declared_type="application/x-y"
    )
    assert got == expected
    assert len(got) <= MAX_FILENAME_CHARS


def test_missing_names_take_the_detected_or_declared_type() -> None:
    def name(detected: str | None, declared: str) -> str:
        return attachment_filename(
            None, part_index=3, kind=None, detected_type=detected, declared_type=declared
        )

    assert name("gif", "image/gif") == "attachment-3.gif"
    assert name(None, "text/plain") == "attachment-3.txt"
    assert name(None, "text/calendar") == "attachment-3.ics"
    assert name(None, "application/x-unknown") == "attachment-3"


def test_long_header_values_are_bounded(jpeg: bytes) -> None:
    msg = _msg(subject="S" * 5000)
    msg.replace_header("From", '"' + "N" * 300 + '" <' + "a" * 400 + "@example.com>")
    msg.add_attachment(jpeg, "image", "jpeg", filename="r.jpg", cid="<" + "c" * 2000 + ">")
    email = _parse(msg)
    assert len(email.subject) == MAX_SUBJECT_CHARS
    assert len(email.sender) <= MAX_SENDER_CHARS and email.sender.startswith("aaa")
    assert len(email.sender_name) == MAX_SENDER_NAME_CHARS
    (att,) = email.attachments
    assert att.content_id is not None and len(att.content_id) == MAX_CONTENT_ID_CHARS


def test_long_message_ids_stay_distinct() -> None:
    def message_id(mid: str) -> str:
        return _parse(f"Message-ID: {mid}\r\n\r\nbody\r\n".encode()).message_id

    a, b = message_id("<" + "a" * 2000 + "1@x>"), message_id("<" + "a" * 2000 + "2@x>")
    assert a != b and len(a) <= MAX_MESSAGE_ID_CHARS and a == message_id("<" + "a" * 2000 + "1@x>")
    assert message_id("<abc@example.com>") == "<abc@example.com>"
    assert message_id("  <abc@\x00example.com>  ") == "<abc@example.com>"


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"\xff\xd8\xff\xe0 a JPEG, not an email"])
def test_not_an_email(raw: bytes) -> None:
    with pytest.raises(MailParseError) as caught:
        _parse(raw)
    assert caught.value.code == "not_an_email"
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "header",
    [
        b"From: a@",
        b'From: "',
        b"From: " + b"(" * 5000,
        b"To: <<<<",
        b"Message-ID: <",
        b"Date: 99 Foo 99999 99:99:99 +9999",
        b"Received: from x; 31 Feb 2024 25:61:00 +0000",
        b"Subject: =?\x00?q?x?=",
        b"Content-Type: text/plain; charset*=\x00''x",
        b'Content-Type: text/plain; charset="\x00"',
        b"Content-Disposition: inline; size*=\x00''1",
        b"Content-Transfer-Encoding: \x00",
    ],
)
def test_malformed_headers_never_raise(header: bytes) -> None:
    email = _parse(header + b"\r\nSubject: ok\r\n\r\nPolicy No: POL-12345\r\n")
    assert email.body_text == "Policy No: POL-12345"


def test_salvaged_boundary_keeps_part_indexes_stable(jpeg: bytes) -> None:
    b64 = base64.encodebytes(jpeg).decode()
    raw = _raw_email(
        "From: a@example.com\r\nSubject: x",
        [('Content-Type: image/jpeg; name="r.jpg"\r\nContent-Transfer-Encoding: base64', b64)],
    ).replace(b'boundary="B"', b"charset=us-ascii")
    a, b = _parse(raw), _parse(raw)
    assert [(x.part_index, x.filename, x.kind) for x in a.attachments] == [(2, "r.jpg", "jpeg")]
    assert [x.part_index for x in b.attachments] == [2]
    assert a.problems == (MailProblem.SALVAGED_STRUCTURE,)


def test_unsplittable_multipart_is_reported_not_dropped() -> None:
    raw = b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\njust text, no parts at all\r\n"
    email = _parse(raw)
    (att,) = email.attachments
    assert att.skip_reason == SkipReason.UNREADABLE_PART
    assert att.declared_type == "multipart/mixed"
    assert att.data == b"just text, no parts at all\r\n"
    assert email.problems == (MailProblem.UNREADABLE_STRUCTURE,)


def test_empty_multipart_is_not_an_attachment() -> None:
    email = _parse(b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\n")
    assert email.attachments == [] and email.problems == ()


def test_signature_dashes_are_not_taken_for_a_boundary() -> None:
    raw = b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nHi\r\n-- \r\nAli\r\n-- \r\nAli\r\n"
    assert _parse(raw).problems == (MailProblem.UNREADABLE_STRUCTURE,)


def test_parse_error_is_exported_with_stable_codes() -> None:
    err = MailParseError("not_an_email", "The input has no email headers.")
    assert isinstance(err, ValueError)
    assert (err.code, err.message, str(err)) == (
        "not_an_email",
        "The input has no email headers.",
        "The input has no email headers.",
    )


@pytest.mark.parametrize("junk", [b"\r\n", b"\xef\xbb\xbf", b"\n\n", b"garbage line\r\n"])
def test_junk_before_the_headers_is_skipped(junk: bytes) -> None:
    email = _parse(junk + b"Subject: Claim\r\nFrom: a@example.com\r\n\r\nPolicy No: POL-12345\r\n")
    assert (email.subject, email.body_text) == ("Claim", "Policy No: POL-12345")
    assert email.problems == (MailProblem.SALVAGED_STRUCTURE,)
