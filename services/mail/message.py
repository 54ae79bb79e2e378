"""What a mail source hands to the poller: one email and its attachment-like parts.

Plain dataclasses, no I/O. Fields that carry member data (subject, sender, body,
attachment bytes) are left out of ``repr`` so an accidental log line shows no PHI.
Every string is bounded (the ``MAX_*`` constants) so nothing overflows a database
column or a screen, whatever the email held.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

#: Document types the OCR pipeline accepts, decided from the bytes, not the name.
AttachmentKind = Literal["jpeg", "png", "pdf", "tiff"]

# Bounds on what an ``IncomingEmail`` carries (characters). A longer value is cut, except
# a Message-ID, which is replaced by a hash of itself so that distinct ids stay distinct.
#: RFC 5322's line limit; the ledger's ``emails.message_id`` column holds this many.
MAX_MESSAGE_ID_CHARS = 998
#: RFC 5322's line limit; far longer than any subject a person writes.
MAX_SUBJECT_CHARS = 998
#: 64 (local part) + 1 + 255 (domain), RFC 5321's limits.
MAX_SENDER_CHARS = 320
MAX_SENDER_NAME_CHARS = 255
#: The ledger's ``jobs.content_type`` column (the declared type is stored there as a fallback).
MAX_CONTENT_TYPE_CHARS = 127
MAX_CONTENT_ID_CHARS = 255
#: File names people see and the archive uses; the ledger column holds 255.
MAX_FILENAME_CHARS = 120
#: Body text kept for claimant details (which read only the first 64 KiB of it).
MAX_BODY_CHARS = 256 * 1024
#: Defect names kept per attachment.
MAX_DEFECTS = 20


class MailParseError(ValueError):
    """``parse_email`` found nothing it could return: the only exception it raises.

    ``code`` is stable and machine-readable (the ledger stores it); ``message`` is one
    sentence for people. Neither holds anything from the email (no PHI), so both can be
    logged. Codes:

    - ``not_an_email``: the input is empty or has no header at all (a stray file).
    - ``too_deeply_nested``: the parser ran out of stack despite the nesting cap.
    - ``malformed_message``: the MIME parser failed in a way not salvaged (a bug to report).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MailProblem(StrEnum):
    """Why a parsed email needs a person's eye (``IncomingEmail.problems``; stable codes).

    The first three mean part of the email may not have been read: send the email (its
    raw bytes) to review. ``salvaged_structure`` means a broken structure was repaired
    the way mail clients do, and every part was read.
    """

    #: A multipart that could not be split into parts, or a part whose content could not be
    #: extracted: it is listed as an ``UNREADABLE_PART`` attachment holding its raw bytes.
    UNREADABLE_STRUCTURE = "unreadable_structure"
    #: Parts nested deeper than the parser's limit were not read (one ``UNREADABLE_PART``).
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    #: Parts after the parser's limit on parts were not read.
    TOO_MANY_PARTS = "too_many_parts"
    #: A missing, mis-cased or reused multipart boundary, or a base64-encoded forwarded
    #: email, was repaired; the attachments are the repaired structure's.
    SALVAGED_STRUCTURE = "salvaged_structure"


class SkipReason(StrEnum):
    """Why an attachment-like part is not a claim document (stored in the ledger as text)."""

    TINY_INLINE_IMAGE = "tiny_inline_image"  # signature logo, tracking pixel, emoji
    IMAGE_TOO_SMALL = "image_too_small"  # far too few pixels to hold a receipt
    UNSUPPORTED_IMAGE_TYPE = "unsupported_image_type"  # GIF, WEBP, HEIC/AVIF, BMP
    NOT_A_CLAIM_DOCUMENT = "not_a_claim_document"  # .docx, .txt, .ics, zip, ...
    EMPTY_ATTACHMENT = "empty_attachment"
    BROKEN_ENCODING = "broken_encoding"  # transfer encoding could not be decoded
    ATTACHMENT_TOO_LARGE = "attachment_too_large"  # bytes not kept, only the size
    UNREADABLE_PART = "unreadable_part"  # could not be extracted at all (see MailProblem)


@dataclass(frozen=True)
class Attachment:
    """One MIME leaf that is not the message body.

    Exactly one of ``kind`` and ``skip_reason`` is set. ``part_index`` is the leaf's
    position in ``Message.walk()`` order, so it is stable for the same raw email and
    can key the ledger's job (email id, part index).

    ``filename`` is always set and safe to show, store and archive (see
    ``services.mail.names.attachment_filename``): no control or bidi characters, no
    path, at most ``MAX_FILENAME_CHARS``, and for a claim document an extension that
    matches its bytes. A part over the size limit (``ATTACHMENT_TOO_LARGE``, or an
    ``UNREADABLE_PART`` that big) keeps no bytes: ``data`` is empty, ``original_size``
    holds its decoded size, and ``size`` reports that.
    """

    part_index: int
    filename: str = field(repr=False)  # chosen by the member: PHI
    declared_type: str
    data: bytes = field(repr=False)
    kind: AttachmentKind | None
    skip_reason: SkipReason | None
    #: What the bytes look like ("jpeg", "gif", "heic", ...), None when unknown.
    detected_type: str | None = None
    content_id: str | None = None
    inline: bool = False
    #: Pixel size (width, height) for images, read from the header only.
    dimensions: tuple[int, int] | None = None
    #: Decoding problems the email package reported (class names), e.g. bad base64.
    defects: tuple[str, ...] = ()
    #: The decoded size when the bytes were not kept (over the size limit), else None.
    original_size: int | None = None

    @property
    def size(self) -> int:
        """Size in bytes of the part as sent, whether or not its bytes were kept."""
        return len(self.data) if self.original_size is None else self.original_size

    @property
    def sha256(self) -> str:
        """Hash of ``data`` (what is kept): the key for duplicate detection and blob storage."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def is_claim_document(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class IncomingEmail:
    """One email as fetched from a source, parsed once.

    ``source_id`` is what the source needs to ``mark_done`` it; ``message_id`` is the
    RFC 5322 Message-ID (synthesised from the raw bytes' hash when absent) and is the
    key for "have we seen this email before" across sources. ``problems`` says what
    could not be read as sent (empty for a well-formed email): an email with problems
    goes to a person with its raw bytes, never silently "done".
    """

    source: str
    source_id: str
    message_id: str
    subject: str = field(repr=False)
    sender: str = field(repr=False)
    received_at: datetime
    body_text: str = field(repr=False)
    size: int
    attachments: list[Attachment] = field(default_factory=list)
    sender_name: str = field(default="", repr=False)
    raw_sha256: str = ""
    problems: tuple[MailProblem, ...] = ()

    @property
    def claim_attachments(self) -> list[Attachment]:
        return [a for a in self.attachments if a.kind is not None]
