"""The bundled sample inbox parses into exactly what its manifest says."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
from PIL import Image

from services.demo import SAMPLE_INBOX_DIR, SAMPLE_MANIFEST_PATH
from services.demo.sample_inbox import build_sample_inbox
from services.mail import MaildirSource, extract_claimant, parse_email

MANIFEST: dict[str, Any] = json.loads(SAMPLE_MANIFEST_PATH.read_text(encoding="utf-8"))
EMAILS = MANIFEST["emails"]


def test_inbox_is_small_and_complete() -> None:
    files = sorted(p.name for p in SAMPLE_INBOX_DIR.glob("*.eml"))
    assert files == sorted(e["file"] for e in EMAILS)
    assert sum(p.stat().st_size for p in SAMPLE_INBOX_DIR.iterdir()) < 3 * 1024 * 1024


@pytest.mark.parametrize("entry", EMAILS, ids=[e["file"] for e in EMAILS])
def test_email_matches_manifest(entry: dict[str, Any]) -> None:
    path = SAMPLE_INBOX_DIR / entry["file"]
    email = parse_email(path.read_bytes(), source="folder", source_id=path.name)
    assert email.message_id == entry["message_id"]
    assert email.subject == entry["subject"]
    assert email.received_at.tzinfo is not None
    claimant = extract_claimant(email.subject, email.body_text)
    assert claimant.__dict__ == entry["claimant"]
    got = [
        {
            "filename": a.filename,
            "declared_type": a.declared_type,
            "kind": a.kind,
            "skip_reason": a.skip_reason,
            "sha256": a.sha256,
            "size": a.size,
        }
        for a in email.attachments
    ]
    keys = ("filename", "declared_type", "kind", "skip_reason", "sha256", "size")
    want = [{k: a[k] for k in keys} for a in entry["attachments"]]
    assert got == want
    for att, expected in zip(email.attachments, entry["attachments"], strict=True):
        if att.kind == "pdf":
            doc = pypdfium2.PdfDocument(att.data)
            assert len(doc) == len(expected["pages"])
            doc.close()
        elif att.kind is not None:
            with Image.open(io.BytesIO(att.data)) as img:
                assert getattr(img, "n_frames", 1) == len(expected["pages"])
        else:
            assert expected["pages"] == []


def test_expected_fields_are_consistent() -> None:
    pages = [p for e in EMAILS for a in e["attachments"] for p in a["pages"]]
    assert len(pages) == 11
    for page in pages:
        total = Decimal(page["subtotal"]) + Decimal(page["tax"]) + Decimal(page["rounding"])
        assert Decimal(page["total"]) == total
        assert sum(Decimal(i["amount"]) for i in page["items"]) == Decimal(page["subtotal"])
        assert page["invoice_number"] and page["provider_name"] and page["date"]


def test_inbox_covers_the_scenarios() -> None:
    atts = [(e, a) for e in EMAILS for a in e["attachments"]]
    claim = [(e, a) for e, a in atts if a["kind"]]
    assert sum(a["expect_low_confidence"] for _, a in atts) == 1
    assert any(a["kind"] == "pdf" and len(a["pages"]) == 2 for _, a in atts)
    assert any(sum(1 for a in e["attachments"] if a["kind"]) == 2 for e in EMAILS)
    assert {a["kind"] for _, a in claim} == {"jpeg", "png", "pdf", "tiff"}
    assert {a["skip_reason"] for _, a in atts} == {
        None,
        "tiny_inline_image",
        "not_a_claim_document",
    }
    (dup,) = [(e, a) for e, a in atts if a["duplicate_of"]]
    original = next(x for x in EMAILS if x["file"] == dup[1]["duplicate_of"])
    assert dup[1]["sha256"] in {a["sha256"] for a in original["attachments"]}
    assert len({a["sha256"] for _, a in claim}) == len(claim) - 1  # only that one repeats
    assert any(e["claimant"]["member_name"] and "binti" in e["claimant"]["member_name"]
               for e in EMAILS)  # fmt: skip


def test_folder_source_reads_the_bundled_inbox_in_place() -> None:
    """Fetching is read-only: listing the packaged folder must not move anything."""
    emails = list(MaildirSource(SAMPLE_INBOX_DIR).fetch())
    assert len(emails) == len(EMAILS)


def test_rebuild_is_deterministic_and_matches_the_committed_manifest(tmp_path: Path) -> None:
    first = build_sample_inbox(tmp_path / "a")
    second = build_sample_inbox(tmp_path / "b")
    for entry in first["emails"]:
        name = entry["file"]
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    def without_encoder_details(manifest: dict[str, Any]) -> dict[str, Any]:
        # JPEG/PNG bytes may differ across Pillow builds; the ground truth must not.
        copy = json.loads(json.dumps(manifest))
        for e in copy["emails"]:
            for a in e["attachments"]:
                a.pop("sha256")
                a.pop("size")
        return copy

    assert first == second
    assert without_encoder_details(first) == without_encoder_details(MANIFEST)
