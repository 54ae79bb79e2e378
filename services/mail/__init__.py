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
from services.mail.source import (
    CursorStore,
    EmailOutcome,
    MailSource,
    MailSourceError,
    OutcomeMarking,
    RawEmail,
)

__all__ = [
    "Attachment",
    "AttachmentKind",
    "ClaimantDetails",
    "CursorStore",
    "EmailOutcome",
    "IncomingEmail",
    "MailParseError",
    "MailProblem",
    "MailSource",
    "MailSourceError",
    "MaildirSource",
    "OutcomeMarking",
    "RawEmail",
    "SkipReason",
    "extract_claimant",
    "parse_email",
]
