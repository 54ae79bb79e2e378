"""Build the bundled sample inbox: a folder of ``.eml`` files plus ``MANIFEST.json``.

The inbox exercises what the pipeline meets in real mail: clean receipts with the
claimant details in English or Malay, a blurry photo, a two-page PDF, two receipts in
one email, a byte-identical resend, an octet-stream upload, a forwarded email with a
scanned TIFF inside, a non-receipt document and a signature logo. The manifest says,
for each email, what the parser must find and each receipt's true fields, so the
end-to-end test can check the whole pipeline against it.

Everything is seeded and dated, so a rebuild gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from services.demo.fonts import load_font
from services.demo.receipts import (
    ProviderKind,
    ReceiptSpec,
    images_to_pdf,
    images_to_tiff,
    random_spec,
    render_receipt,
    to_jpeg,
    to_png,
)

SEED = 20240601
INBOX_ADDRESS = "claims@insurer.example"
_POLICY = policy.default.clone(linesep="\n", max_line_length=78)


@dataclass
class _Part:
    """One attachment as built, with what the manifest says about it."""

    filename: str | None
    declared_type: str
    data: bytes
    kind: str | None
    skip_reason: str | None = None
    receipts: list[ReceiptSpec] = field(default_factory=list)
    low_confidence: bool = False
    inline_cid: str | None = None

    def manifest(self, duplicate_of: str | None) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "declared_type": self.declared_type,
            "kind": self.kind,
            "skip_reason": self.skip_reason,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "size": len(self.data),
            "duplicate_of": duplicate_of,
            "expect_low_confidence": self.low_confidence,
            "pages": [spec.expected_fields() for spec in self.receipts],
        }


@dataclass
class _Email:
    file: str
    notes: str
    sender: str
    subject: str
    body: str
    claimant: dict[str, str | None]
    parts: list[_Part]
    html: str | None = None
    forwarded: EmailMessage | None = None


class _Maker:
    """Seeded receipts and images, one sub-seed per receipt so edits stay local."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.n = 0

    def spec(self, kind: ProviderKind) -> tuple[ReceiptSpec, int]:
        self.n += 1
        sub_seed = self.seed * 100 + self.n
        return random_spec(random.Random(sub_seed), kind=kind), sub_seed

    def jpeg(self, filename: str, kind: ProviderKind, **degrade: Any) -> _Part:
        spec, sub_seed = self.spec(kind)
        img = render_receipt(spec, seed=sub_seed, **degrade)
        return _Part(filename, "image/jpeg", to_jpeg(img), "jpeg", receipts=[spec])


def _logo_png() -> bytes:
    """A small company logo, as email signatures carry."""
    img = Image.new("RGB", (180, 48), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((2, 2, 44, 44), fill=(0, 102, 170))
    draw.text((54, 10), "CONTOH", font=load_font("DejaVuSans-Bold.ttf", 22), fill=(0, 102, 170))
    return to_png(img)


def _minimal_docx(text: str) -> bytes:
    """A real (minimal) Word document, so the parser meets an actual .docx zip."""
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
        ),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content)
    return buf.getvalue()


def _emails(seed: int) -> list[_Email]:
    make = _Maker(seed)
    first = make.jpeg("receipt.jpg", "clinic")
    emails = [
        _Email(
            file="01_clinic_en_subject.eml",
            notes="clean clinic receipt; policy number and member id in the subject",
            sender="Ahmad Faizal <ahmad.faizal@example.com>",
            subject="Medical claim - Policy No: POL-58213 / Member ID: MB-220145",
            body=(
                "Hi,\n\nPlease find my clinic receipt attached for reimbursement.\n\n"
                "Member Name: Ahmad Faizal bin Ismail\n\nThanks,\nAhmad\n-- \nSent from my phone\n"
            ),
            claimant={
                "policy_number": "POL-58213",
                "member_id": "MB-220145",
                "member_name": "Ahmad Faizal bin Ismail",
            },
            parts=[first],
        ),
    ]
    spec, sub_seed = make.spec("pharmacy")
    png = _Part(
        "resit_farmasi.png",
        "image/png",
        to_png(render_receipt(spec, seed=sub_seed)),
        "png",
        receipts=[spec],
    )
    emails.append(
        _Email(
            file="02_pharmacy_ms_body.eml",
            notes="clean pharmacy receipt as PNG; Malay body with the claimant details",
            sender="Siti Aminah <siti.aminah@example.com>",
            subject="Tuntutan perubatan",
            body=(
                "Assalamualaikum,\n\nBersama-sama ini saya lampirkan resit farmasi untuk "
                "tuntutan.\n\nNama Ahli: Siti Aminah binti Hassan\nNo. Polisi: POL-60417\n"
                "ID Ahli: MB-310872\n\nTerima kasih.\n"
            ),
            claimant={
                "policy_number": "POL-60417",
                "member_id": "MB-310872",
                "member_name": "Siti Aminah binti Hassan",
            },
            parts=[png],
        )
    )
    octet = make.jpeg("IMG_20240312_101512.jpg", "dental")
    octet.declared_type = "application/octet-stream"
    emails.append(
        _Email(
            file="03_dental_octet_stream_html.eml",
            notes="dental receipt sent as application/octet-stream; body in text and HTML",
            sender="Tan Mei Ling <meiling.tan@example.com>",
            subject="Claim for dental treatment",
            body="Hello,\n\nPolicy Number: POL-71150\nName: Tan Mei Ling\n\nRegards,\nMei Ling\n",
            html=(
                "<html><body><p>Hello,</p><p>Policy Number: POL-71150<br>Name: Tan Mei Ling</p>"
                "<p>Regards,<br>Mei Ling</p></body></html>"
            ),
            claimant={
                "policy_number": "POL-71150",
                "member_id": None,
                "member_name": "Tan Mei Ling",
            },
            parts=[octet],
        )
    )
    blurry = make.jpeg("photo.jpg", "pharmacy", blur=2.8, noise=14.0, rotate_deg=4.5, width=680)
    blurry.low_confidence = True
    emails.append(
        _Email(
            file="04_blurry_photo.eml",
            notes="blurred, noisy, rotated phone photo: should land in the review queue",
            sender="Hafiz <hafiz.rahman@example.com>",
            subject="Claim pls - Policy #POL-80022",
            body="Sorry the photo is not very clear.\nMember ID: MB-700118\n",
            claimant={"policy_number": "POL-80022", "member_id": "MB-700118", "member_name": None},
            parts=[blurry],
        )
    )
    (spec_a, seed_a), (spec_b, seed_b) = make.spec("clinic"), make.spec("physio")
    pdf = _Part(
        "receipts_march.pdf",
        "application/pdf",
        images_to_pdf([render_receipt(spec_a, seed=seed_a), render_receipt(spec_b, seed=seed_b)]),
        "pdf",
        receipts=[spec_a, spec_b],
    )
    emails.append(
        _Email(
            file="05_two_page_pdf.eml",
            notes="one PDF with two pages, one receipt per page",
            sender="Rajesh Kumar <rajesh.k@example.com>",
            subject="Claims for March (2 receipts)",
            body=(
                "Dear team,\n\nPolicy No: POL-90311\nMember ID: MB-400233\n"
                "Nama: Rajesh a/l Kumar\n\nThe PDF has both receipts.\n"
            ),
            claimant={
                "policy_number": "POL-90311",
                "member_id": "MB-400233",
                "member_name": "Rajesh a/l Kumar",
            },
            parts=[pdf],
        )
    )
    emails.append(
        _Email(
            file="06_two_attachments.eml",
            notes="two receipt images in one email; one filename is non-ASCII (RFC 2231)",
            sender="Wong Siew Ling <siewling.wong@example.com>",
            subject="Tuntutan - No. Polisi POL-11008",
            body=(
                "Salam,\n\nNama Ahli: Wong Siew Ling (黄秀玲)\nNo. Ahli: MB-120934\n\n"
                "Terima kasih\n"
            ),
            claimant={
                "policy_number": "POL-11008",
                "member_id": "MB-120934",
                "member_name": "Wong Siew Ling",
            },
            parts=[make.jpeg("收据-klinik.jpg", "clinic"), make.jpeg("resit2.jpg", "pharmacy")],
        )
    )
    dup = _Part("receipt (1).jpg", "image/jpeg", first.data, "jpeg", receipts=list(first.receipts))
    emails.append(
        _Email(
            file="07_duplicate_resend.eml",
            notes="resend of email 01's receipt: byte-identical attachment (a duplicate)",
            sender="Ahmad Faizal <ahmad.faizal@example.com>",
            subject="Re-send: Medical claim - Policy No: POL-58213 / Member ID: MB-220145",
            body="Sorry, sending again in case the first one did not arrive.\n",
            claimant={"policy_number": "POL-58213", "member_id": "MB-220145", "member_name": None},
            parts=[dup],
        )
    )
    logo = _Part(
        "logo.png",
        "image/png",
        _logo_png(),
        None,
        skip_reason="tiny_inline_image",
        inline_cid="logo-contoh@example.com",
    )
    notes_txt = _Part(
        "notes.txt",
        "text/plain",
        b"Visited the clinic twice in one week; second receipt to follow.\n",
        None,
        skip_reason="not_a_claim_document",
    )
    emails.append(
        _Email(
            file="08_signature_logo_and_notes.eml",
            notes="HTML mail with an inline signature logo, one receipt and a .txt note",
            sender="Nurul Izzah <nurul.izzah@example.com>",
            subject="Outpatient claim",
            body=(
                "Hi,\n\nMember ID: MB-550019\nPolicy No.: POL-23344\n"
                "Name: Nurul Izzah binti Rahman\n\n-- \nNurul Izzah\n"
                "Accounts Executive | Syarikat Contoh Sdn Bhd\nTel: 03-7788 9900\n"
            ),
            html=(
                "<html><body><p>Hi,</p><p>Member ID: MB-550019<br>Policy No.: POL-23344<br>"
                "Name: Nurul Izzah binti Rahman</p><p>-- <br>Nurul Izzah<br>"
                "Accounts Executive | Syarikat Contoh Sdn Bhd<br>Tel: 03-7788 9900<br>"
                '<img src="cid:logo-contoh@example.com" alt="Contoh"></p></body></html>'
            ),
            claimant={
                "policy_number": "POL-23344",
                "member_id": "MB-550019",
                "member_name": "Nurul Izzah binti Rahman",
            },
            parts=[logo, make.jpeg("klinik.jpg", "clinic"), notes_txt],
        )
    )
    emails.append(
        _Email(
            file="09_claim_form_only.eml",
            notes="only a Word claim form, no receipt: nothing to OCR",
            sender="Lim Wei Jie <weijie.lim@example.com>",
            subject="Claim form",
            body="Hi, attached is the claim form. Receipts to follow.\nPolicy No: POL-33456\n",
            claimant={"policy_number": "POL-33456", "member_id": None, "member_name": None},
            parts=[
                _Part(
                    "claim_form.docx",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    _minimal_docx("Claim form"),
                    None,
                    skip_reason="not_a_claim_document",
                )
            ],
        )
    )
    spec, sub_seed = make.spec("optical")
    tiff = _Part(
        "scan_0001.tif",
        "image/tiff",
        images_to_tiff([render_receipt(spec, seed=sub_seed).convert("L")]),
        "tiff",
        receipts=[spec],
    )
    inner = _build_message(
        sender="Vision Plus Billing <billing@visionplus.example>",
        to="Farah <farah.aziz@example.com>",
        subject="Your receipt",
        body=(
            "Dear customer,\n\nAttached is the scanned receipt.\n\n-- \nVision Plus\n"
            "Policy No: N/A\n"
        ),
        html=None,
        parts=[tiff],
        date="Mon, 03 Jun 2024 09:12:00 +0800",
        message_id="<receipt-0001@visionplus.example>",
    )
    emails.append(
        _Email(
            file="10_forwarded_tiff.eml",
            notes="forwarded email (message/rfc822) with a scanned TIFF receipt inside",
            sender="Farah Aziz <farah.aziz@example.com>",
            subject="Fwd: Your receipt",
            body="Forwarding the optician's receipt.\nPolicy No: POL-44120, Member ID: MB-660301\n",
            claimant={"policy_number": "POL-44120", "member_id": "MB-660301", "member_name": None},
            parts=[tiff],
            forwarded=inner,
        )
    )
    return emails


def _build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str,
    html: str | None,
    parts: Iterable[_Part],
    date: str,
    message_id: str,
    received: str | None = None,
) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    if received:
        msg["Received"] = received
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = message_id
    msg.set_content(body)
    inline = [p for p in parts if p.inline_cid]
    if html is not None:
        msg.add_alternative(html, subtype="html")
        for part in inline:
            maintype, subtype = part.declared_type.split("/")
            list(msg.iter_parts())[1].add_related(
                part.data, maintype, subtype, cid=f"<{part.inline_cid}>", filename=part.filename
            )
    for part in parts:
        if part.inline_cid:
            continue
        maintype, subtype = part.declared_type.split("/")
        if maintype == "text":
            msg.add_attachment(part.data.decode(), subtype=subtype, filename=part.filename)
        else:
            msg.add_attachment(part.data, maintype, subtype, filename=part.filename)
    return msg


def _fix_boundaries(msg: EmailMessage, prefix: str) -> None:
    """Replace the random MIME boundaries with fixed ones, for reproducible files."""
    for n, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        if part.get_content_maintype() == "multipart":
            part.set_boundary(f"=_{prefix}_{n}_=")


def build_sample_inbox(out_dir: Path, *, seed: int = SEED) -> dict[str, Any]:
    """Write the ``.eml`` files and ``MANIFEST.json`` into ``out_dir``; return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[bytes, str] = {}
    manifest: dict[str, Any] = {
        "description": "Bundled sample inbox; regenerate with scripts/make_sample_inbox.py",
        "seed": seed,
        "emails": [],
    }
    for number, item in enumerate(_emails(seed), start=1):
        message_id = f"<sample-{number:02d}.{seed}@claims-ocr.example>"
        day = f"{number:02d}"
        date = f"Mon, {day} Jul 2024 10:{number:02d}:00 +0800"
        msg = _build_message(
            sender=item.sender,
            to=INBOX_ADDRESS,
            subject=item.subject,
            body=item.body,
            html=item.html,
            parts=[] if item.forwarded else item.parts,
            date=date,
            message_id=message_id,
            received=(
                f"from mail.example.com by mx.insurer.example with ESMTPS id s{number:04d}; {date}"
            ),
        )
        if item.forwarded is not None:
            msg.add_attachment(item.forwarded)  # message/rfc822
        _fix_boundaries(msg, f"claims-ocr-{number:02d}")
        (out_dir / item.file).write_bytes(msg.as_bytes(policy=_POLICY))
        attachments = []
        for part in item.parts:
            attachments.append(part.manifest(seen.get(part.data)))
            if part.kind is not None:
                seen.setdefault(part.data, item.file)
        manifest["emails"].append(
            {
                "file": item.file,
                "message_id": message_id,
                "notes": item.notes,
                "subject": item.subject,
                "claimant": item.claimant,
                "attachments": attachments,
            }
        )
    (out_dir / "MANIFEST.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest
