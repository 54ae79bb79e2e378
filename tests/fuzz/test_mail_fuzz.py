"""Fuzzing ``parse_email``: generated MIME trees and byte-level mutations of real messages.

Whatever the bytes, ``parse_email`` returns an ``IncomingEmail`` or raises
``MailParseError``, within a time and memory bound, and everything it returns is safe to
store and show: bounded strings, safe file names, every part classified. Deterministic
(``derandomize=True``, no example database) so CI sees the same examples every run.
"""

from __future__ import annotations

import base64
import quopri
import random
import time
import tracemalloc
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.demo import SAMPLE_INBOX_DIR
from services.mail import (
    IncomingEmail,
    MailParseError,
    MailProblem,
    SkipReason,
    extract_claimant,
    parse_email,
)
from services.mail.message import (
    MAX_BODY_CHARS,
    MAX_CONTENT_ID_CHARS,
    MAX_CONTENT_TYPE_CHARS,
    MAX_FILENAME_CHARS,
    MAX_MESSAGE_ID_CHARS,
    MAX_SENDER_CHARS,
    MAX_SENDER_NAME_CHARS,
    MAX_SUBJECT_CHARS,
)
from services.mail.names import CLAIM_EXTENSIONS
from tests.support.hostile_mail import OVERSIZED_LIMIT, build_corpus, receipt_jpeg, write_corpus

#: Per message, generous for a slow 2-core CI machine with tracemalloc on.
TIME_LIMIT_S = 2.0
#: Peak memory while parsing an input under 1 MB.
MEMORY_LIMIT_BYTES = 50 * 1024 * 1024

SAMPLES = {p.stem: p.read_bytes() for p in sorted(SAMPLE_INBOX_DIR.glob("*.eml"))}
HOSTILE = build_corpus()
CORPUS = {**SAMPLES, **HOSTILE}
NAMES = sorted(CORPUS)

JPEG = receipt_jpeg(240, 320)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(raw: bytes) -> IncomingEmail | None:
    """Parse within a time and a memory bound and check every invariant of the result."""
    start = time.perf_counter()
    email = _parse(raw)
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"{elapsed:.2f}s for {len(raw)} bytes"
    if len(raw) < 1024 * 1024:
        # Again under tracemalloc (which slows Python down several times: not timed).
        tracemalloc.start()
        try:
            _parse(raw)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < MEMORY_LIMIT_BYTES, f"{peak / 2**20:.0f} MiB for {len(raw)} bytes"
    if email is not None:
        _check_email(email)
    return email


def _parse(raw: bytes) -> IncomingEmail | None:
    """The email, or None when ``parse_email`` raised its one documented error.

    Stricter than the contract: "too_deeply_nested" and "malformed_message" are safety
    nets around the parser (it failed unexpectedly) and must never be needed.
    """
    try:
        return parse_email(raw, source="fuzz", source_id="1", max_attachment_bytes=OVERSIZED_LIMIT)
    except MailParseError as exc:
        assert exc.code == "not_an_email", exc.message
        assert str(exc) == exc.message
        return None


def _check_email(email: IncomingEmail) -> None:
    assert 0 < len(email.message_id) <= MAX_MESSAGE_ID_CHARS
    assert len(email.subject) <= MAX_SUBJECT_CHARS
    assert len(email.sender) <= MAX_SENDER_CHARS
    assert len(email.sender_name) <= MAX_SENDER_NAME_CHARS
    assert len(email.body_text) <= MAX_BODY_CHARS
    assert set(email.problems) <= set(MailProblem)
    assert len(set(email.problems)) == len(email.problems)
    indexes = [a.part_index for a in email.attachments]
    assert indexes == sorted(set(indexes))
    for att in email.attachments:
        assert (att.kind is None) != (att.skip_reason is None)
        _check_filename(att.filename)
        assert 0 < len(att.declared_type) <= MAX_CONTENT_TYPE_CHARS
        assert att.content_id is None or len(att.content_id) <= MAX_CONTENT_ID_CHARS
        if att.kind is not None:
            assert att.filename.lower().endswith(CLAIM_EXTENSIONS[att.kind])
        if att.skip_reason == SkipReason.UNREADABLE_PART:
            # Unreadable structure only: the per-part safety net (which records the
            # exception's name as a defect) must never be needed.
            assert att.defects == (), att.defects
        if att.skip_reason == SkipReason.ATTACHMENT_TOO_LARGE:
            assert att.original_size is not None
        if att.original_size is not None:  # bytes over the limit are never kept
            assert att.data == b"" and att.size > OVERSIZED_LIMIT
        else:
            assert att.size == len(att.data) <= OVERSIZED_LIMIT
    start = time.perf_counter()
    extract_claimant(email.subject, email.body_text)
    assert time.perf_counter() - start < TIME_LIMIT_S


def _check_filename(name: str) -> None:
    assert 0 < len(name) <= MAX_FILENAME_CHARS
    assert "/" not in name and "\\" not in name
    assert name == name.strip() and not name.startswith(".")
    assert not {unicodedata.category(ch) for ch in name} & _UNSAFE_CATEGORIES, ascii(name)


# --- the corpus, as files written by the script's builder -------------------------------


def test_every_corpus_file_parses_within_bounds(tmp_path: Path) -> None:
    paths = write_corpus(tmp_path / "hostile") + sorted(SAMPLE_INBOX_DIR.glob("*.eml"))
    outcomes = {path.stem: check(path.read_bytes()) for path in paths}
    assert outcomes["not_an_email"] is None
    assert all(outcomes[name] is not None for name in SAMPLES)


# --- byte-level mutation of real-looking messages ---------------------------------------


def _mutate(raw: bytes, ops: list[tuple[str, float, int]]) -> bytes:
    data = bytearray(raw)
    for op, where, arg in ops:
        at = int(where * len(data))
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= 1 << (arg % 8)
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = random.Random(arg).randbytes(arg % 64 + 1)
        elif op == "insert_text":
            data[at:at] = [b"\r\n", b"--", b"\x00", b"=?", b"\r\n\r\n", b":", b'"', b"<!--"][
                arg % 8
            ] * (arg % 50 + 1)
        else:  # a line: duplicate it (many times) or drop it
            lines = bytes(data).split(b"\n")
            index = min(int(where * len(lines)), len(lines) - 1)
            if op == "duplicate_line":
                lines[index:index] = [lines[index]] * (arg % 200 + 1)
            else:
                del lines[index]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


_MUTATION = st.tuples(
    st.sampled_from(["flip", "truncate", "insert", "insert_text", "duplicate_line", "drop_line"]),
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.integers(min_value=0, max_value=10_000),
)


@settings(_SETTINGS, max_examples=200)
@given(name=st.sampled_from(NAMES), ops=st.lists(_MUTATION, min_size=1, max_size=6))
def test_mutated_messages(name: str, ops: list[tuple[str, float, int]]) -> None:
    check(_mutate(CORPUS[name], ops)[: 1024 * 1024 - 1])


# --- generated MIME trees --------------------------------------------------------------

_BIDI_AND_CONTROLS = "\u202e\u202d\u202a\u2066\u2067\u2069\u200e\u200f\u200b\ufeff\x00\x1b\x7f\x85"
_NAME_CHARS = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(_BIDI_AND_CONTROLS + "./\\ :;\"'=*%?<>|")),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)
FILENAMES = st.one_of(
    st.none(),
    _NAME_CHARS,
    st.builds(
        lambda stem, ext: stem + ext,
        _NAME_CHARS,
        st.sampled_from([".jpg", ".exe", ".pdf", ".JPG", ".tar.gz", ""]),
    ),
    st.just("a" * 400 + ".jpg"),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        ["image/jpeg", "image/png", "application/pdf", "application/octet-stream",
         "text/plain", "text/html", "image/gif", "application/x-" + "x" * 300, "garbage",
         "image/", "/", ""]
    ),
    st.text(max_size=20),
)  # fmt: skip
ENCODINGS = st.sampled_from(["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uue", "?"])
PAYLOADS = st.one_of(
    st.sampled_from([JPEG, PNG, PDF, b"", b"hello", JPEG[:500]]),
    st.binary(max_size=200),
)
BOUNDARIES = st.one_of(
    st.sampled_from(["B", "=_Part_1", "----=_NextPart_000", "a b", "x" * 70, "SAME"]),
    st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=20),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        ["a@", '"', "<", "", "=?utf-8?q?a=00b?=", "=?\x00?q?x?=", "(" * 300, "<a@b.c>",
         "Member <member@example.com>", '"' * 500, "=?utf-8?b?!!!?=", "\u202eevil"]
    ),
    st.text(max_size=60),
)  # fmt: skip


def _encode(payload: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(payload)
    if encoding == "quoted-printable":
        return quopri.encodestring(payload)
    return payload


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    name = draw(FILENAMES)
    encoding = draw(ENCODINGS)
    headers = [f"Content-Type: {draw(CONTENT_TYPES)}", f"Content-Transfer-Encoding: {encoding}"]
    if name is not None:
        style = draw(st.sampled_from(["quoted", "rfc2231", "rfc2047", "bare"]))
        if style == "quoted":
            headers.append(f'Content-Disposition: attachment; filename="{name}"')
        elif style == "rfc2231":
            quoted = "".join(f"%{b:02X}" for b in name.encode("utf-8", "surrogatepass"))
            headers.append(f"Content-Disposition: attachment; filename*=utf-8''{quoted}")
        elif style == "rfc2047":
            encoded = base64.b64encode(name.encode("utf-8", "surrogatepass")).decode()
            headers.append(f'Content-Disposition: inline; filename="=?utf-8?b?{encoded}?="')
        else:
            headers.append(f"Content-Type: image/jpeg; name={name}")
    if draw(st.booleans()):
        headers.append(f"Content-ID: <{draw(st.text(max_size=30))}>")
    head = "\r\n".join(headers).encode("utf-8", "surrogatepass")
    return head + b"\r\n\r\n" + _encode(draw(PAYLOADS), encoding)


@st.composite
def containers(draw: st.DrawFn, children: st.SearchStrategy[list[bytes]]) -> bytes:
    kind = draw(st.sampled_from(["mixed", "alternative", "related", "digest", "rfc822"]))
    parts = draw(children)
    if kind == "rfc822":
        encoding = draw(st.sampled_from(["7bit", "base64"]))
        inner = b"Subject: inner\r\n" + (parts[0] if parts else b"\r\n")
        head = f"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: {encoding}"
        return head.encode() + b"\r\n\r\n" + _encode(inner, encoding)
    boundary = draw(BOUNDARIES)
    mode = draw(st.sampled_from(["ok", "ok", "missing", "case", "other", "unclosed"]))
    declared = {
        "missing": "",
        "case": f'; boundary="{boundary.swapcase()}"',
        "other": '; boundary="not-used"',
    }.get(mode, f'; boundary="{boundary}"')
    body = b"preamble\r\n"
    for part in parts:
        body += f"--{boundary}\r\n".encode("utf-8", "surrogatepass") + part + b"\r\n"
    if mode != "unclosed":
        body += f"--{boundary}--\r\n".encode("utf-8", "surrogatepass")
    head = f"Content-Type: multipart/{kind}{declared}".encode("utf-8", "surrogatepass")
    return head + b"\r\n\r\n" + body


TREES = st.recursive(leaves(), lambda inner: containers(st.lists(inner, max_size=4)), max_leaves=10)


@st.composite
def emails(draw: st.DrawFn) -> bytes:
    headers = [
        f"From: {draw(HEADER_VALUES)}",
        f"Subject: {draw(HEADER_VALUES)}",
        f"Message-ID: {draw(HEADER_VALUES)}",
        f"Date: {draw(st.sampled_from(['Tue, 02 Jul 2024 09:30:00 +0800', 'rubbish', '']))}",
        "MIME-Version: 1.0",
    ]
    tree = draw(TREES)
    for level in range(draw(st.sampled_from([0, 0, 0, 3, 60]))):  # sometimes far too deep
        tree = (
            f'Content-Type: multipart/mixed; boundary="d{level}"\r\n\r\n--d{level}\r\n'.encode()
            + tree
            + f"\r\n--d{level}--\r\n".encode()
        )
    head = "\r\n".join(headers).encode("utf-8", "surrogatepass")
    return head + b"\r\n" + tree


@settings(_SETTINGS, max_examples=250)
@given(raw=emails())
def test_generated_emails(raw: bytes) -> None:
    check(raw)


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_after_valid_headers(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        junk = rng.randbytes(rng.randrange(0, 5000))
        check(b"Subject: x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" + junk)
