"""Raw RFC 5322 bytes -> ``IncomingEmail``: body text plus every attachment-like leaf.

Uses the standard ``email`` package with a tolerant ``policy.default`` (RFC 2047/2231
header and filename decoding, ``get_body``), behind the guard rails of
``services.mail.structure`` (bounded nesting and part count, repaired boundaries).
Members' mail clients produce every kind of malformed MIME and one bad email must not
stop a poll, so ``parse_email`` returns what it could read, with ``problems`` saying
what it could not, and raises only ``MailParseError`` when there is nothing to return.
Anything that is not a body part is reported, as a claim document or with a skip reason.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import re
import urllib.parse
from datetime import UTC, datetime
from email import errors
from email.header import decode_header, make_header
from email.message import EmailMessage, Message, MIMEPart
from typing import TypeGuard

from services.mail.headers import MAX_HEADER_CHARS
from services.mail.html_text import html_to_text
from services.mail.message import (
    MAX_BODY_CHARS,
    MAX_CONTENT_ID_CHARS,
    MAX_CONTENT_TYPE_CHARS,
    MAX_DEFECTS,
    MAX_MESSAGE_ID_CHARS,
    MAX_SENDER_CHARS,
    MAX_SENDER_NAME_CHARS,
    MAX_SUBJECT_CHARS,
    Attachment,
    AttachmentKind,
    IncomingEmail,
    MailParseError,
    MailProblem,
    SkipReason,
)
from services.mail.names import attachment_filename, clean_text
from services.mail.sniff import CLAIM_TYPES, UNSUPPORTED_IMAGE_TYPES, image_dimensions, sniff
from services.mail.structure import Leaf, lenient_b64decode, raw_payload, read_structure

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
    """Parse one raw email, salvaging what can be read.

    Raises ``MailParseError`` and nothing else, and only when there is nothing to return
    (``not_an_email``; its other codes are safety nets the fuzz tests show unneeded).
    Otherwise what could not be read as sent is listed in ``IncomingEmail.problems``
    (and, for a part, as an ``UNREADABLE_PART`` attachment), the work is bounded (see
    ``services.mail.structure`` and ``services.mail.headers``) and every string is
    bounded and cleaned. ``delivered_at`` is the source's own delivery time (Maildir
    file time, Gmail's internalDate); it is used when the email carries no usable
    Received/Date header.
    """
    try:
        return _parse_email(raw, source, source_id, delivered_at, max_attachment_bytes)
    except MailParseError:
        raise
    except RecursionError:  # a safety net: MAX_DEPTH keeps the parser far from the limit
        raise MailParseError(
            "too_deeply_nested", "The email's parts are nested too deeply to read."
        ) from None
    except Exception as exc:
        # ``from None``: the original message may quote the email (PHI); its type may not.
        raise MailParseError(
            "malformed_message", f"The email's structure could not be read ({type(exc).__name__})."
        ) from None


def _parse_email(
    raw: bytes,
    source: str,
    source_id: str,
    delivered_at: datetime | None,
    max_attachment_bytes: int | None,
) -> IncomingEmail:
    structure = read_structure(raw)
    msg = structure.root
    if not msg.keys():
        raise MailParseError("not_an_email", "The input has no email headers.")
    raw_sha256 = hashlib.sha256(raw).hexdigest()
    sender_name, sender = _sender(msg)
    problems = set(structure.problems)
    attachments = []
    for leaf in structure.leaves:
        attachment = _attachment(leaf, max_attachment_bytes)
        if attachment is None:
            continue
        if attachment.skip_reason is SkipReason.UNREADABLE_PART and not leaf.unreadable:
            problems.add(MailProblem.UNREADABLE_STRUCTURE)  # its content could not be extracted
        attachments.append(attachment)
    return IncomingEmail(
        source=source,
        source_id=source_id,
        message_id=_message_id(msg, raw_sha256),
        subject=clean_text(_header(msg, "Subject"), MAX_SUBJECT_CHARS),
        sender=sender,
        sender_name=sender_name,
        received_at=_received_at(msg, delivered_at),
        body_text=_body_text(msg, structure.leaves)[:MAX_BODY_CHARS],
        size=len(raw),
        attachments=attachments,
        raw_sha256=raw_sha256,
        problems=tuple(p for p in MailProblem if p in problems),
    )


# --- headers ---------------------------------------------------------------------------


_SURROGATE_ESCAPE = re.compile("[\udc80-\udcff]")


def _fix_surrogates(text: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes; read them as UTF-8 or cp1252."""
    if not _SURROGATE_ESCAPE.search(text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _raw_header(msg: Message, name: str) -> str:
    """The first ``name`` header exactly as received (unparsed), bounded."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)[:MAX_HEADER_CHARS]
    return ""


def _header(msg: Message, name: str) -> str:
    """A header as text; falls back to manual RFC 2047 decoding if the policy parser chokes."""
    try:
        value = msg.get(name)
        return _fix_surrogates(str(value)) if value is not None else ""
    except Exception:  # the tolerant policy should prevent this; belt and braces
        raw_value = _raw_header(msg, name)
        try:
            return _fix_surrogates(str(make_header(decode_header(raw_value))))
        except Exception:
            return _fix_surrogates(raw_value)


def _message_id(msg: Message, raw_sha256: str) -> str:
    """The Message-ID as sent, cleaned; synthesised from the raw bytes when absent or
    empty, and replaced by a hash of itself when too long (so distinct ids stay distinct)."""
    value = clean_text(_fix_surrogates(_raw_header(msg, "Message-ID")), MAX_HEADER_CHARS)
    if not value.strip("<> "):
        return f"<{raw_sha256}@claims-ocr.invalid>"
    if len(value) > MAX_MESSAGE_ID_CHARS:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
        return f"<{digest}@claims-ocr.invalid>"
    return value


#: ``parseaddr`` (the fallback for a From header the policy cannot parse) recurses twice
#: per nested comment: this bound keeps it far from the recursion limit.
_MAX_ADDRESS_CHARS = 256


def _sender(msg: Message) -> tuple[str, str]:
    """(display name, lower-case address) of the first From address, both bounded."""
    name = addr = ""
    try:
        header = msg.get("From")
        addresses = getattr(header, "addresses", ())
        if addresses:
            name, addr = addresses[0].display_name, addresses[0].addr_spec
        elif header is not None:
            name, addr = email.utils.parseaddr(str(header)[:_MAX_ADDRESS_CHARS])
    except Exception:  # a From header no parser can read: the email is still the member's
        pass
    name = clean_text(_fix_surrogates(name), MAX_SENDER_NAME_CHARS)
    addr = clean_text(_fix_surrogates(addr), MAX_SENDER_CHARS).lower()
    return name, addr


def _as_aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _parse_date(text: str) -> datetime | None:
    try:
        return _as_aware(email.utils.parsedate_to_datetime(text.strip()[:200]))
    except Exception:  # TypeError, ValueError, IndexError, OverflowError on odd dates
        return None


def _received_at(msg: Message, delivered_at: datetime | None) -> datetime:
    """Topmost Received stamp (our MTA's), else the source's time, else Date, else now."""
    received = _raw_header(msg, "Received")
    if received:
        stamp = _parse_date(received.rpartition(";")[2])
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
    except Exception:  # unknown or hostile charsets (a NUL in one raises ValueError), ...
        pass
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


def _body_text(msg: Message, leaves: list[Leaf]) -> str:
    """text/plain preferred; else the HTML part stripped to text."""
    body: Message | None
    try:
        body = (
            msg.get_body(preferencelist=("plain", "html"))
            if isinstance(msg, EmailMessage)
            else None
        )
    except Exception:  # get_body on a tree no parser meant to build: take the first text leaf
        body = next((leaf.part for leaf in leaves if _is_body_leaf(leaf.part)), None)
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
        and not _declared_filename(part)
    )


def _declared_filename(part: Message) -> str | None:
    """The filename as sent (RFC 2047/2231 decoded), unsafe: see ``attachment_filename``."""
    try:
        name = part.get_filename()
    except Exception:  # RFC 2231 value in a charset that is not one (a NUL raises)
        name = None
    if not name or "\ufffd" in name:
        name = _raw_filename(part) or name
    if not name:
        return None
    name = _fix_surrogates(str(name))
    if name.startswith('"') and '"' in name[1:]:  # a quoted value with junk after it
        name = name[1 : name.index('"', 1)]
    # RFC 2047 inside a parameter: not allowed, but Outlook and Gmail do it. An encoded
    # word in a charset that is not one is kept as sent.
    with contextlib.suppress(Exception):
        name = str(make_header(decode_header(name))) if "=?" in name else name
    return name


# A filename parameter read from the raw header: quoted, bare, or RFC 2231 (name*=...).
# Quoted values are bounded so that unclosed quotes cannot make the scan quadratic.
_RAW_FILENAME_RE = re.compile(
    r'(?:^|[;\s])(filename|name)(\*?)(?:0\*?)?\s*=\s*(?:"([^"]{0,1024})"|([^;\s]{1,1024}))',
    re.IGNORECASE,
)


def _raw_filename(part: Message) -> str | None:
    """Filename from the raw header, when the parsed one is missing or lost characters.

    ``policy.default`` turns undeclared 8-bit bytes into U+FFFD and drops a parameter
    whose RFC 2231 charset is unusable; the raw header still holds them (8-bit bytes as
    surrogate escapes, which ``_fix_surrogates`` can read as UTF-8 or cp1252).
    """
    found: dict[str, str] = {}
    for header, value in part.raw_items():
        if header.lower() in {"content-type", "content-disposition"}:
            for match in _RAW_FILENAME_RE.finditer(str(value)[:MAX_HEADER_CHARS]):
                text = match.group(3) if match.group(3) is not None else match.group(4)
                if match.group(2):
                    text = _rfc2231_value(text)
                found.setdefault(match.group(1).lower(), text)
    return found.get("filename") or found.get("name")


def _rfc2231_value(text: str) -> str:
    """``charset'language'percent-encoded`` to text; UTF-8 when the charset is unusable."""
    charset, _, rest = text.partition("'")
    _, _, encoded = rest.partition("'")
    if not encoded:
        return urllib.parse.unquote(text, errors="replace")
    try:
        return urllib.parse.unquote(encoded, encoding=charset or "utf-8", errors="replace")
    except Exception:  # LookupError, or ValueError for a charset holding a NUL
        return urllib.parse.unquote(encoded, errors="replace")


def _decode_payload(part: Message) -> tuple[bytes, tuple[str, ...]]:
    before = len(part.defects)
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    new_defects = part.defects[before:]
    if any(isinstance(d, errors.InvalidBase64LengthDefect) for d in new_defects):
        data = _salvage_base64(part)
    return data, _defect_names(new_defects)


def _defect_names(defects: list[errors.MessageDefect]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(type(d).__name__ for d in defects))[:MAX_DEFECTS]


def _salvage_base64(part: Message) -> bytes:
    """Decode what can be decoded of a truncated base64 body.

    The email package gives up on a body whose length is 4n+1 and returns the base64
    text itself; a truncated upload still holds most of the file, so drop the dangling
    characters and decode the rest. Garbage stays garbage and is skipped later.
    """
    return lenient_b64decode(raw_payload(part).encode("ascii", errors="ignore"))


def _attachment(leaf: Leaf, max_bytes: int | None) -> Attachment | None:
    """The leaf as an attachment; None for a body part. A part that cannot be read at all
    becomes an ``UNREADABLE_PART`` holding its raw bytes, never an exception."""
    part = leaf.part
    try:
        if leaf.unreadable:
            return _unreadable(leaf, max_bytes)
        if _is_body_leaf(part):
            return None
        return _classify(leaf.index, part, max_bytes)
    except Exception as exc:  # one bad part must not lose the email's other parts
        return _unreadable(leaf, max_bytes, (type(exc).__name__,))


def _unreadable(leaf: Leaf, max_bytes: int | None, defects: tuple[str, ...] = ()) -> Attachment:
    """The part's raw (undecoded) content, for a person to look at."""
    data = raw_payload(leaf.part).encode("utf-8", "surrogateescape")
    try:
        declared = leaf.declared_type or leaf.part.get_content_type()
    except Exception:
        declared = "application/octet-stream"
    too_large = max_bytes is not None and len(data) > max_bytes
    declared = clean_text(declared, MAX_CONTENT_TYPE_CHARS) or "application/octet-stream"
    return Attachment(
        part_index=leaf.index,
        filename=attachment_filename(
            None, part_index=leaf.index, kind=None, detected_type=None, declared_type=declared
        ),
        declared_type=declared,
        data=b"" if too_large else data,
        kind=None,
        skip_reason=SkipReason.UNREADABLE_PART,
        defects=defects,
        original_size=len(data) if too_large else None,
    )


def _classify(index: int, part: Message, max_bytes: int | None) -> Attachment:
    data, defects = _decode_payload(part)
    cid = clean_text(_header(part, "Content-ID"), MAX_HEADER_CHARS).strip("<> ")
    content_id = cid[:MAX_CONTENT_ID_CHARS] or None
    inline = part.get_content_disposition() == "inline" or content_id is not None
    detected = sniff(data) if data else None
    broken = any(d in {c.__name__ for c in _BASE64_DEFECTS} for d in defects)
    declared_type = clean_text(part.get_content_type(), MAX_CONTENT_TYPE_CHARS)
    too_large = max_bytes is not None and len(data) > max_bytes
    # Pixel size from the header only; never for bytes that are not kept.
    dims = image_dimensions(data) if detected and detected != "pdf" and not too_large else None

    def result(kind: AttachmentKind | None, reason: SkipReason | None) -> Attachment:
        return Attachment(
            part_index=index,
            filename=attachment_filename(
                _declared_filename(part),
                part_index=index,
                kind=kind,
                detected_type=detected,
                declared_type=declared_type,
            ),
            declared_type=declared_type,
            data=b"" if too_large else data,
            kind=kind,
            skip_reason=reason,
            detected_type=detected,
            content_id=content_id,
            inline=inline,
            dimensions=dims,
            defects=defects,
            original_size=len(data) if too_large else None,
        )

    if not data:
        return result(None, SkipReason.BROKEN_ENCODING if broken else SkipReason.EMPTY_ATTACHMENT)
    if too_large:
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
