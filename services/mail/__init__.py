"""Mail sources and MIME parsing: emails in, attachments and claimant details out."""

from services.mail.claimant import ClaimantDetails, extract_claimant
from services.mail.maildir import MaildirSource
from services.mail.message import (
    Attachment,
    AttachmentKind,
    IncomingEmail,
    MailParseError,
    MailProblem,
    SkipReason,
)
from services.mail.mime import parse_email
from services.mail.source import MailSource, RawEmail

__all__ = [
    "Attachment",
    "AttachmentKind",
    "ClaimantDetails",
    "IncomingEmail",
    "MailParseError",
    "MailProblem",
    "MailSource",
    "MaildirSource",
    "RawEmail",
    "SkipReason",
    "extract_claimant",
    "parse_email",
]
