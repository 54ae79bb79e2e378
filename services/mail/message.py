"""What a mail source hands to the poller: one email and its attachment-like parts.

Plain dataclasses, no I/O. Fields that carry member data (subject, sender, body,
attachment bytes) are left out of ``repr`` so an accidental log line shows no PHI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

#: Document types the OCR pipeline accepts, decided from the bytes, not the name.
AttachmentKind = Literal["jpeg", "png", "pdf", "tiff"]


class SkipReason(StrEnum):
    """Why an attachment-like part is not a claim document (stored in the ledger as text)."""

    TINY_INLINE_IMAGE = "tiny_inline_image"  # signature logo, tracking pixel, emoji
    IMAGE_TOO_SMALL = "image_too_small"  # far too few pixels to hold a receipt
    UNSUPPORTED_IMAGE_TYPE = "unsupported_image_type"  # GIF, WEBP, HEIC/AVIF, BMP
    NOT_A_CLAIM_DOCUMENT = "not_a_claim_document"  # .docx, .txt, .ics, zip, ...
    EMPTY_ATTACHMENT = "empty_attachment"
    BROKEN_ENCODING = "broken_encoding"  # transfer encoding could not be decoded
    ATTACHMENT_TOO_LARGE = "attachment_too_large"


@dataclass(frozen=True)
class Attachment:
    """One MIME leaf that is not the message body.

    Exactly one of ``kind`` and ``skip_reason`` is set. ``part_index`` is the leaf's
    position in ``Message.walk()`` order, so it is stable for the same raw email and
    can key the ledger's job (email id, part index).
    """

    part_index: int
    filename: str | None
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

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        """Content hash: the key for duplicate detection and blob storage."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def is_claim_document(self) -> bool:
        return self.kind is not None


@dataclass(frozen=True)
class IncomingEmail:
    """One email as fetched from a source, parsed once.

    ``source_id`` is what the source needs to ``mark_done`` it; ``message_id`` is the
    RFC 5322 Message-ID (synthesised from the raw bytes' hash when absent) and is the
    key for "have we seen this email before" across sources.
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

    @property
    def claim_attachments(self) -> list[Attachment]:
        return [a for a in self.attachments if a.kind is not None]
