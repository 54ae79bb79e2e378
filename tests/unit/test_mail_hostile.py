"""The hostile corpus (tests/support/hostile_mail.py): the exact outcome for each message.

A hostile or broken email must never stop the inbox or lose a receipt: ``parse_email``
returns what could be read (flagging what could not) or raises ``MailParseError``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.mail import (
    IncomingEmail,
    MailParseError,
    MailProblem,
    SkipReason,
    extract_claimant,
    parse_email,
)
from services.mail.message import (
    MAX_CONTENT_TYPE_CHARS,
    MAX_FILENAME_CHARS,
    MAX_MESSAGE_ID_CHARS,
)
from services.mail.structure import MAX_PARTS
from tests.support import hostile_mail
from tests.support.hostile_mail import OVERSIZED_LIMIT, build_corpus, write_corpus

CORPUS = build_corpus()
#: Generous: each message parses in milliseconds on a laptop; CI machines are slow.
TIME_LIMIT_S = 2.0


def _parse(name: str) -> IncomingEmail:
    start = time.perf_counter()
    email = parse_email(
        CORPUS[name], source="test", source_id=name, max_attachment_bytes=OVERSIZED_LIMIT
    )
    assert time.perf_counter() - start < TIME_LIMIT_S
    return email


def _claims(email: IncomingEmail) -> list[tuple[str, str | None]]:
    return [(a.filename, a.kind) for a in email.claim_attachments]


def _policy(email: IncomingEmail) -> str | None:
    return extract_claimant(email.subject, email.body_text).policy_number


def test_the_builder_writes_the_whole_corpus(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path / "hostile")
    assert sorted(p.stem for p in paths) == sorted(CORPUS)
    for path in paths:
        assert path.read_bytes() == CORPUS[path.stem]


def test_the_script_writes_it_too(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "make_hostile_mail.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.stem for p in tmp_path.glob("*.eml")) == sorted(CORPUS)


@pytest.mark.parametrize("name", ["malformed_from_at", "malformed_from_quote"])
def test_malformed_from_still_yields_the_receipt(name: str) -> None:
    email = _parse(name)
    assert _claims(email) == [("receipt.jpg", "jpeg")]
    assert _policy(email) == "POL-12345"
    assert email.problems == ()


def test_malformed_message_id_is_replaced_by_a_synthetic_one() -> None:
    email = _parse("malformed_message_id")
    digest = hashlib.sha256(CORPUS["malformed_message_id"]).hexdigest()
    assert email.message_id == f"<{digest}@claims-ocr.invalid>"
    assert _claims(email) == [("receipt.jpg", "jpeg")]


def test_nul_in_an_rfc2231_charset_is_read_around() -> None:
    email = _parse("nul_in_rfc2231_charset")
    assert _claims(email) == [("receipt.jpg", "jpeg")]
    assert _policy(email) == "POL-12345"


def test_deep_nesting_is_cut_and_flagged_and_the_shallow_receipt_kept() -> None:
    email = _parse("deeply_nested")
    assert _claims(email) == [("shallow.jpg", "jpeg")]
    assert email.problems == (MailProblem.TOO_DEEPLY_NESTED,)
    (cut,) = [a for a in email.attachments if a.skip_reason == SkipReason.UNREADABLE_PART]
    assert cut.declared_type == "multipart/mixed"
    assert _policy(email) == "POL-12345"


@pytest.mark.parametrize("name", ["missing_boundary", "boundary_case_mismatch", "boundary_reused"])
def test_broken_boundaries_are_salvaged(name: str) -> None:
    email = _parse(name)
    assert _claims(email) == [("receipt.jpg", "jpeg")]
    assert [a.filename for a in email.attachments] == ["receipt.jpg"]
    assert _policy(email) == "POL-12345"
    assert email.problems == (MailProblem.SALVAGED_STRUCTURE,)


def test_base64_encoded_forward_is_decoded() -> None:
    email = _parse("base64_forwarded_email")
    assert _claims(email) == [("fwd.jpg", "jpeg")]
    assert email.problems == (MailProblem.SALVAGED_STRUCTURE,)


@pytest.mark.parametrize(
    ("name", "policy"),
    [
        ("blank_lines_after_label", "POL-12345"),
        ("spaces_after_label", None),
        ("deep_blank_lines", "POL-12345"),
        ("html_comment_bomb", "POL-12345"),
        ("header_bomb", "POL-12345"),
        ("parameter_bomb", "POL-12345"),
    ],
)
def test_pathological_text_is_read_in_linear_time(name: str, policy: str | None) -> None:
    start = time.perf_counter()
    email = _parse(name)
    assert _policy(email) == policy
    assert time.perf_counter() - start < TIME_LIMIT_S
    assert _claims(email) == [("receipt.jpg", "jpeg")]


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("rtl_override_name", "receiptgpj.jpg"),
        ("exe_name_on_jpeg", "receipt.jpg"),
        ("path_and_controls_name", "[31mreceipt.jpg"),
        ("missing_name", "attachment-2.jpg"),
    ],
)
def test_attachment_names_are_made_safe(name: str, filename: str) -> None:
    assert _claims(_parse(name)) == [(filename, "jpeg")]


def test_long_values_are_bounded() -> None:
    email = _parse("long_headers")
    assert len(email.message_id) <= MAX_MESSAGE_ID_CHARS
    assert email.message_id.endswith("@claims-ocr.invalid>")
    receipt, notes = email.attachments
    assert receipt.kind == "jpeg" and len(receipt.filename) == MAX_FILENAME_CHARS
    assert receipt.filename == "r" * (MAX_FILENAME_CHARS - 4) + ".jpg"
    assert notes.filename == "notes.txt"
    assert len(notes.declared_type) == MAX_CONTENT_TYPE_CHARS
    assert notes.declared_type.startswith("application/x-ttt")


def test_empty_attachment_is_skipped() -> None:
    (att,) = _parse("empty_attachment").attachments
    assert (att.filename, att.skip_reason, att.size) == (
        "empty.jpg",
        SkipReason.EMPTY_ATTACHMENT,
        0,
    )


def test_oversized_attachment_keeps_its_size_not_its_bytes() -> None:
    (att,) = _parse("oversized_attachment").attachments
    assert att.skip_reason == SkipReason.ATTACHMENT_TOO_LARGE
    assert att.data == b""
    assert att.size == att.original_size == OVERSIZED_LIMIT + 1
    assert att.detected_type == "jpeg" and att.kind is None
    assert att.filename == "big.jpg"


def test_undecodable_attachment_is_skipped() -> None:
    (att,) = _parse("undecodable_attachment").attachments
    assert (att.filename, att.skip_reason) == ("broken.jpg", SkipReason.BROKEN_ENCODING)


def test_email_without_attachments() -> None:
    email = _parse("no_attachment")
    assert email.attachments == [] and email.problems == ()
    assert _policy(email) == "POL-12345"


def test_too_many_parts_is_flagged_and_the_first_ones_kept() -> None:
    email = _parse("too_many_parts")
    assert _claims(email) == [("receipt.jpg", "jpeg")]
    assert email.problems == (MailProblem.TOO_MANY_PARTS,)
    assert len(email.attachments) < MAX_PARTS


def test_truncated_email_keeps_what_arrived() -> None:
    email = _parse("truncated_email")
    assert _claims(email) == [("receipt.jpg", "jpeg")]


def test_not_an_email_raises_the_documented_error() -> None:
    with pytest.raises(MailParseError) as caught:
        _parse("not_an_email")
    assert caught.value.code == "not_an_email"
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == caught.value.message


def test_every_corpus_message_has_an_exact_outcome_test() -> None:
    tested = {
        "malformed_from_at", "malformed_from_quote", "malformed_message_id",
        "nul_in_rfc2231_charset", "deeply_nested", "missing_boundary",
        "boundary_case_mismatch", "boundary_reused", "base64_forwarded_email",
        "blank_lines_after_label", "spaces_after_label", "deep_blank_lines",
        "html_comment_bomb", "header_bomb", "parameter_bomb",
        "rtl_override_name", "exe_name_on_jpeg", "path_and_controls_name", "missing_name",
        "long_headers", "empty_attachment", "oversized_attachment", "undecodable_attachment",
        "no_attachment", "too_many_parts", "truncated_email", "not_an_email",
    }  # fmt: skip
    assert tested == set(hostile_mail.BUILDERS)
