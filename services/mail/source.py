"""The one interface every mail source (Maildir/folder, Gmail API, IMAP) implements."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from services.mail.message import IncomingEmail


@runtime_checkable
class MailSource(Protocol):
    """A mailbox the poller drains.

    ``fetch`` yields every email not yet marked done, oldest first where the source
    knows. The caller calls ``mark_done(email.source_id)`` only after every attachment
    of that email is durably recorded, so an email whose processing crashed part-way
    is simply fetched again on the next poll (the ledger makes the repeat harmless).
    ``mark_done`` is idempotent.
    """

    name: str

    def fetch(self) -> Iterator[IncomingEmail]: ...

    def mark_done(self, source_id: str) -> None: ...
