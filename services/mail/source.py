"""The one interface every mail source (Maildir/folder, Gmail API, IMAP) implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
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
