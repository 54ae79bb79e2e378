"""Raw RFC 5322 bytes -> ``IncomingEmail``: body text plus every attachment-like leaf.

Uses the standard ``email`` package with ``policy.default`` (RFC 2047/2231 header and
filename decoding, ``get_body``). Parsing never raises on bad content: members' mail
clients produce every kind of malformed MIME, and one bad email must not stop a poll.
Anything that is not a body part is reported, as a claim document or with a skip reason.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.utils
import hashlib
import os
import re
from datetime import UTC, datetime
from email import errors, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message, MIMEPart
from typing import TypeGuard

from services.mail.html_text import html_to_text
from services.mail.message import Attachment, AttachmentKind, IncomingEmail, SkipReason
from services.mail.sniff import CLAIM_TYPES, UNSUPPORTED_IMAGE_TYPES, image_dimensions, sniff

#: An inline image (Content-ID or inline disposition) under this many bytes is a logo.
TINY_INLINE_MAX_BYTES = 15 * 1024
#: An inline image whose shorter side is under this many pixels is a logo or a banner.
TINY_INLINE_MIN_SIDE_PX = 120
#: ...and one under ``TINY_INLINE_MAX_BYTES`` counts as a logo only below this longer side.
TINY_INLINE_MAX_SIDE_PX = 300
#: Any image whose longer side is under this is too small to hold a readable receipt.
MIN_IMAGE_SIDE_PX = 120

_BODY_TYPES = frozenset({"text/plain", "text/html"})
_BASE64_DEFECTS = (
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64LengthDefect,
)


def parse_email(
    raw: bytes,
    *,
    source: str,
    source_id: str,
    delivered_at: datetime | None = None,
    max_attachment_bytes: int | None = None,
) -> IncomingEmail:
    """Parse one raw email.

    ``delivered_at`` is the source's own delivery time (Maildir file time, Gmail's
    internalDate); it is used when the email carries no usable Received/Date header.
    """
    msg = email.message_from_bytes(raw, policy=policy.default)
    raw_sha256 = hashlib.sha256(raw).hexdigest()
    sender_name, sender = _sender(msg)
    return IncomingEmail(
        source=source,
        source_id=source_id,
        message_id=_header(msg, "Message-ID").strip() or f"<{raw_sha256}@claims-ocr.invalid>",
        subject=_header(msg, "Subject"),
        sender=sender,
        sender_name=sender_name,
        received_at=_received_at(msg, delivered_at),
        body_text=_body_text(msg),
        size=len(raw),
        attachments=_attachments(msg, max_attachment_bytes),
        raw_sha256=raw_sha256,
    )


# --- headers ---------------------------------------------------------------------------


def _fix_surrogates(text: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes; read them as UTF-8 or cp1252."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _header(msg: Message, name: str) -> str:
    """A header as text; falls back to manual RFC 2047 decoding if the policy parser chokes."""
    try:
        value = msg.get(name)
        return _fix_surrogates(str(value)) if value is not None else ""
    except Exception:  # policy header parsers have raised on odd input (CPython bugs)
        raw_values = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
        raw_value = raw_values[0] if raw_values else ""
        try:
            return _fix_surrogates(str(make_header(decode_header(str(raw_value)))))
        except Exception:
            return _fix_surrogates(str(raw_value))


def _sender(msg: Message) -> tuple[str, str]:
    name, addr = email.utils.parseaddr(_header(msg, "From"))
    return name.strip(), addr.strip().lower()


def _as_aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _parse_date(text: str) -> datetime | None:
    try:
        return _as_aware(email.utils.parsedate_to_datetime(text.strip()))
    except (TypeError, ValueError, IndexError):
        return None


def _received_at(msg: Message, delivered_at: datetime | None) -> datetime:
    """Topmost Received stamp (our MTA's), else the source's time, else Date, else now."""
    received = msg.get_all("Received", failobj=[])
    if received:
        stamp = _parse_date(str(received[0]).rpartition(";")[2])
        if stamp is not None:
            return stamp
    if delivered_at is not None:
        return _as_aware(delivered_at)
    return _parse_date(_header(msg, "Date")) or datetime.now(UTC)


# --- body ------------------------------------------------------------------------------


def _part_text(part: Message) -> str:
    try:
        # policy.default parses into EmailMessage parts; a plain Message has no get_content.
        content = part.get_content() if isinstance(part, MIMEPart) else None
        if isinstance(content, str):
            return _fix_surrogates(content)
    except (LookupError, UnicodeError, KeyError, AttributeError, ValueError):
        pass
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


def _body_text(msg: Message) -> str:
    """text/plain preferred; else the HTML part stripped to text."""
    body = msg.get_body(preferencelist=("plain", "html")) if isinstance(msg, EmailMessage) else None
    if body is None:
        return ""
    text = _part_text(body)
    if body.get_content_type() == "text/html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n").strip()


# --- attachments -----------------------------------------------------------------------


def _is_body_leaf(part: Message) -> bool:
    return (
        part.get_content_type() in _BODY_TYPES
        and part.get_content_disposition() != "attachment"
        and not part.get_filename()
    )


def _safe_filename(part: Message) -> str | None:
    """Decoded filename (RFC 2047/2231), with any path stripped: it names, never locates."""
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name and "\ufffd" in name:
        name = _legacy_filename(part) or name
    if not name:
        return None
    name = _fix_surrogates(str(name)).replace("\\", "/")
    name = os.path.basename(name)
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    return name or None


_RAW_FILENAME_RE = re.compile(r'\b(filename|name)\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


def _legacy_filename(part: Message) -> str | None:
    """Filename from the raw header when it holds undeclared 8-bit bytes.

    ``policy.default`` turns such bytes into U+FFFD; the raw header still holds them as
    surrogate escapes, which ``_fix_surrogates`` can read as UTF-8 or cp1252.
    """
    found: dict[str, str] = {}
    for header, value in part.raw_items():
        if header.lower() in {"content-type", "content-disposition"}:
            for match in _RAW_FILENAME_RE.finditer(str(value)):
                found.setdefault(match.group(1).lower(), match.group(2) or match.group(3))
    return found.get("filename") or found.get("name")


def _decode_payload(part: Message) -> tuple[bytes, tuple[str, ...]]:
    before = len(part.defects)
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:  # never let one bad part stop the email
        return b"", (type(exc).__name__,)
    data = payload if isinstance(payload, bytes) else b""
    new_defects = part.defects[before:]
    if any(isinstance(d, errors.InvalidBase64LengthDefect) for d in new_defects):
        data = _salvage_base64(part)
    return data, tuple(type(d).__name__ for d in new_defects)


_NOT_BASE64_RE = re.compile(rb"[^A-Za-z0-9+/]")


def _salvage_base64(part: Message) -> bytes:
    """Decode what can be decoded of a truncated base64 body.

    The email package gives up on a body whose length is 4n+1 and returns the base64
    text itself; a truncated upload still holds most of the file, so drop the dangling
    characters and decode the rest. Garbage stays garbage and is skipped later.
    """
    text = part.get_payload(decode=False)
    if not isinstance(text, str):
        return b""
    clean = _NOT_BASE64_RE.sub(b"", text.encode("ascii", errors="ignore"))
    clean = clean[: len(clean) - len(clean) % 4]
    try:
        return base64.b64decode(clean)
    except binascii.Error:
        return b""


def _attachments(msg: Message, max_bytes: int | None) -> list[Attachment]:
    found: list[Attachment] = []
    for index, part in enumerate(msg.walk()):
        # message/rfc822 and multiparts are containers: walk() descends into them.
        if part.is_multipart() or _is_body_leaf(part):
            continue
        found.append(_classify(index, part, max_bytes))
    return found


def _classify(index: int, part: Message, max_bytes: int | None) -> Attachment:
    data, defects = _decode_payload(part)
    content_id = _header(part, "Content-ID").strip().strip("<>") or None
    inline = part.get_content_disposition() == "inline" or content_id is not None
    detected = sniff(data) if data else None
    dims = image_dimensions(data) if detected and detected != "pdf" else None
    broken = any(d in {c.__name__ for c in _BASE64_DEFECTS} for d in defects)

    def result(kind: AttachmentKind | None, reason: SkipReason | None) -> Attachment:
        return Attachment(
            part_index=index,
            filename=_safe_filename(part),
            declared_type=part.get_content_type(),
            data=data,
            kind=kind,
            skip_reason=reason,
            detected_type=detected,
            content_id=content_id,
            inline=inline,
            dimensions=dims,
            defects=defects,
        )

    if not data:
        return result(None, SkipReason.BROKEN_ENCODING if broken else SkipReason.EMPTY_ATTACHMENT)
    if max_bytes is not None and len(data) > max_bytes:
        return result(None, SkipReason.ATTACHMENT_TOO_LARGE)
    is_image = detected in CLAIM_TYPES - {"pdf"} or detected in UNSUPPORTED_IMAGE_TYPES
    if is_image and inline and _looks_like_logo(len(data), dims):
        return result(None, SkipReason.TINY_INLINE_IMAGE)
    if _is_claim_kind(detected):
        if dims is not None and max(dims) < MIN_IMAGE_SIDE_PX:
            return result(None, SkipReason.IMAGE_TOO_SMALL)
        return result(detected, None)
    if detected in UNSUPPORTED_IMAGE_TYPES:
        return result(None, SkipReason.UNSUPPORTED_IMAGE_TYPE)
    return result(None, SkipReason.BROKEN_ENCODING if broken else SkipReason.NOT_A_CLAIM_DOCUMENT)


def _is_claim_kind(detected: str | None) -> TypeGuard[AttachmentKind]:
    return detected in CLAIM_TYPES


def _looks_like_logo(size: int, dims: tuple[int, int] | None) -> bool:
    """Signature logos, banners and tracking pixels, not pasted receipt screenshots.

    A flat PNG screenshot of an e-receipt can be under 15 KB yet 600x900 px, so the
    byte rule alone only applies when the image is also small on its longer side.
    """
    if dims is None:
        return size < TINY_INLINE_MAX_BYTES
    if min(dims) < TINY_INLINE_MIN_SIDE_PX:
        return True
    return size < TINY_INLINE_MAX_BYTES and max(dims) < TINY_INLINE_MAX_SIDE_PX
