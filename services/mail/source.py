"""The one interface every mail source (Maildir/folder, Gmail API, IMAP) implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RawEmail:
    """One email as a source holds it: its id there and its RFC 5322 bytes, unparsed.

    Sources hand over bytes, not parsed emails, so that parsing (which hostile mail
    can break) happens inside intake's per-email guard, never inside the source's loop.
    """

    source_id: str
    data: bytes = field(repr=False)
    #: When the source received it (file time, INTERNALDATE), if it knows.
    delivered_at: datetime | None = None
    #: The size the source reports for an email it did not download (over the limit).
    declared_size: int | None = None


@runtime_checkable
class MailSource(Protocol):
    """A mailbox the poller drains.

    ``fetch`` yields every email not yet marked done, oldest first where the source
    knows, reading each only when the caller asks for it. The caller calls
    ``mark_done(source_id)`` only after the email is durably recorded (its attachments,
    or the email itself when it cannot be read), so an email whose processing crashed
    part-way is simply fetched again on the next poll (the ledger makes the repeat
    harmless). ``mark_done`` is idempotent.
    """

    name: str

    def fetch(self) -> Iterator[RawEmail]: ...

    def mark_done(self, source_id: str) -> None: ...


class MailSourceError(Exception):
    """The source cannot be read at all this poll (not one bad email: the mailbox).

    ``status`` is a stable code the poller records as the source's health
    (``auth_revoked``, ``unavailable``, ``misconfigured``) so the admin API and alerts can
    tell "the token was revoked" from "Google is down"; the message says what to do.
    """

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class EmailOutcome(StrEnum):
    """Where all of an email's jobs came to rest, as the mailbox shows it (a label, a flag)."""

    PROCESSED = "processed"  # every claim went to NCB (or needed nothing)
    NEEDS_REVIEW = "needs_review"  # a person has something to look at
    FAILED = "failed"  # a step failed and waits for retry or reject


@runtime_checkable
class OutcomeMarking(Protocol):
    """A source that can show an email's outcome in the mailbox (Gmail labels, IMAP
    keywords). Called when the outcome changes; idempotent; the last call wins."""

    def mark_outcome(self, source_id: str, outcome: EmailOutcome) -> None: ...


class CursorStore(Protocol):
    """Where a source keeps its sync position (Gmail's history id, IMAP's UIDVALIDITY).

    The ledger implements it, so the cursor lives with the jobs it stands for.
    """

    def get_cursor(self, source: str) -> str | None: ...

    def set_cursor(self, source: str, cursor: str) -> None: ...
