"""Showing each email's outcome in its mailbox (Gmail labels, IMAP keywords).

Once every job of an email is at rest, the mailbox says so: processed, needs review or
failed; and again when a person's action changes it. The ledger remembers what the
mailbox shows, so each change is sent once, and a failure is simply tried again on the
next poll. Mail is marked only from the ledger's state, never ahead of it.
"""

from __future__ import annotations

from services.ledger import Ledger
from services.logs import get_logger
from services.mail import EmailOutcome, MailSource, MailSourceError, OutcomeMarking

log = get_logger(__name__)


def mark_outcomes(source: MailSource, ledger: Ledger, *, limit: int = 200) -> int:
    """Mark the emails whose outcome changed; returns how many were marked."""
    if not isinstance(source, OutcomeMarking):
        return 0
    marked = 0
    for email in ledger.sources.to_mark(source.name, limit=limit):
        try:
            source.mark_outcome(email.source_id, EmailOutcome(email.outcome))
        except MailSourceError as exc:  # the mailbox itself is down: stop for this poll
            log.warning("marking outcomes stopped", status=exc.status)
            break
        except Exception as exc:  # the next poll tries again
            log.warning(
                "marking the email's outcome failed",
                email_id=email.email_id,
                error=type(exc).__name__,
            )
            continue
        ledger.sources.marked(email.email_id, email.outcome)
        marked += 1
    if marked:
        log.info("email outcomes shown in the mailbox", emails=marked)
    return marked
