"""What the ledger keeps for the mail sources: their sync cursor, their health, and
the outcome each email shows in its mailbox.

The cursor lives beside the jobs it stands for: a source advances it only after the
emails it covers are recorded, so a crash means reading some mail again (harmless:
recording is idempotent), never skipping mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.ledger.models import Email, Job, MailSourceStatus, utcnow
from services.ledger.states import WORKING_STATES, JobState

if TYPE_CHECKING:
    from services.ledger.ledger import Ledger

#: Health codes (``MailSourceError.status`` adds its own: auth_revoked, unavailable, ...).
OK = "ok"
NEVER_SYNCED = "never_synced"
PROCESSED = "processed"


@dataclass(frozen=True)
class SourceHealth:
    source: str
    status: str
    detail: str | None
    last_success_at: datetime | None
    last_attempt_at: datetime | None


@dataclass(frozen=True)
class EmailToMark:
    """An email whose mailbox outcome is behind its jobs' (see ``MailSources.to_mark``)."""

    email_id: str
    source_id: str
    outcome: str


def outcome_of(states: set[JobState]) -> str | None:
    """The mailbox outcome for an email whose jobs are in ``states``; None while working.

    Failed wins over review (it needs an engineer, not a clerk); anything else at rest
    (done, rejected, duplicate, skipped) is processed.
    """
    if not states or states & set(WORKING_STATES):
        return None
    if JobState.FAILED in states:
        return "failed"
    if JobState.NEEDS_REVIEW in states:
        return "needs_review"
    return PROCESSED


class MailSources:
    """The mail-source side of the ledger (``ledger.sources``); a ``CursorStore``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    # -- cursor (CursorStore) -----------------------------------------------------------

    def get_cursor(self, source: str) -> str | None:
        with self._ledger._read() as session:
            return session.scalar(
                select(MailSourceStatus.cursor).where(MailSourceStatus.source == source)
            )

    def set_cursor(self, source: str, cursor: str) -> None:
        with self._ledger._write() as session:
            self._row(session, source).cursor = cursor

    # -- health -------------------------------------------------------------------------

    def record_sync(self, source: str, status: str = OK, detail: str | None = None) -> None:
        """Record a poll's outcome: ``ok``, or the ``MailSourceError`` status and message."""
        now = utcnow()
        with self._ledger._write() as session:
            row = self._row(session, source)
            row.status, row.detail, row.last_attempt_at, row.updated_at = status, detail, now, now
            if status == OK:
                row.last_success_at = now

    def health(self, source: str) -> SourceHealth:
        with self._ledger._read() as session:
            row = session.get(MailSourceStatus, source)
            if row is None:
                return SourceHealth(source, NEVER_SYNCED, None, None, None)
            return SourceHealth(
                source, row.status, row.detail, row.last_success_at, row.last_attempt_at
            )

    # -- outcome shown in the mailbox ---------------------------------------------------

    def to_mark(self, source: str, limit: int = 200) -> list[EmailToMark]:
        """Emails of ``source`` whose jobs are all at rest and whose mailbox outcome differs.

        Oldest first. Only emails not yet marked or marked ``needs_review``/``failed`` are
        looked at: those can still change (a person approves, retries or rejects), while
        ``processed`` is final (its jobs are in end states). So the work per poll is
        bounded by the mail in flight and the exception queue, not the ledger's size.
        """
        candidates = (
            select(Email.id)
            .where(Email.source == source)
            .where(Email.source_outcome.is_(None) | (Email.source_outcome != PROCESSED))
            .order_by(Email.created_at, Email.id)
            .limit(limit * 5)
            .subquery()
        )
        with self._ledger._read() as session:
            rows = session.execute(
                select(Email.id, Email.source_id, Email.source_outcome, Job.state)
                .join(Job, Job.email_id == Email.id)
                .where(Email.id.in_(select(candidates.c.id)))
                .order_by(Email.created_at, Email.id)
            ).all()
        states: dict[str, set[JobState]] = {}
        meta: dict[str, tuple[str, str | None]] = {}
        for email_id, source_id, marked, state in rows:
            states.setdefault(email_id, set()).add(state)
            meta[email_id] = (source_id, marked)
        out = []
        for email_id, job_states in states.items():
            outcome = outcome_of(job_states)
            source_id, marked = meta[email_id]
            if outcome is not None and outcome != marked:
                out.append(EmailToMark(email_id, source_id, outcome))
                if len(out) >= limit:
                    break
        return out

    def marked(self, email_id: str, outcome: str) -> None:
        """Record that the mailbox now shows ``outcome`` for the email."""
        with self._ledger._write() as session:
            session.execute(
                update(Email)
                .where(Email.id == email_id)
                .values(source_outcome=outcome)
                .execution_options(synchronize_session=False)
            )

    @staticmethod
    def _row(session: Session, source: str) -> MailSourceStatus:
        row = session.get(MailSourceStatus, source)
        if row is None:
            row = MailSourceStatus(source=source, status=NEVER_SYNCED, updated_at=utcnow())
            session.add(row)
        return row
