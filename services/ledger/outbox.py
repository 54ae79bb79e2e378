"""The records outbox: audit rows and archive uploads owed for finished jobs.

Finalising a job queues its records here in the same transaction that ends the job's
submission step, so a record is never lost and never queued twice (one item per kind
and job). Deliverers take items in order under a lease (a compare-and-set on
``leased_until``), so two workers never write the same batch at once; an item whose
lease ran out (its worker died) is taken again, and because ``attempts`` shows it was
tried, the deliverer first asks the destination whether it already landed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update

from services.ledger.models import Job, OutboxItem, utcnow
from services.ledger.states import JobState

if TYPE_CHECKING:
    from services.ledger.ledger import Ledger

AUDIT = "audit"
ARCHIVE = "archive"
KINDS = (AUDIT, ARCHIVE)


@dataclass(frozen=True)
class PendingRecord:
    id: int
    kind: str
    job_id: str
    payload: dict[str, Any] = field(repr=False)
    attempts: int  # including the one this lease is for
    created_at: datetime


@dataclass(frozen=True)
class OutboxBacklog:
    pending: int
    oldest_created_at: datetime | None


class RecordOutbox:
    """The outbox side of the ledger (``ledger.outbox``)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def enqueue(self, job_id: str, records: dict[str, dict[str, Any]]) -> int:
        """Queue ``{kind: payload}`` for ``job_id``; kinds already queued are left alone.

        Returns how many were new. Only a ``submitted`` or ``done`` job has records.
        """

        def work(session: Any) -> int:
            state = session.scalar(select(Job.state).where(Job.id == job_id))
            if state not in (JobState.SUBMITTED, JobState.DONE):
                raise ValueError(f"job {job_id} is {state}: only submitted jobs have records")
            have = set(session.scalars(select(OutboxItem.kind).where(OutboxItem.job_id == job_id)))
            now = utcnow()
            new = [k for k in records if k not in have]
            for kind in new:
                session.add(
                    OutboxItem(
                        kind=kind, job_id=job_id, payload=records[kind], created_at=now, attempts=0
                    )
                )
            session.flush()
            return len(new)

        return self._ledger._write_retrying_conflict(work)

    def lease(self, kind: str, limit: int, lease_s: float) -> list[PendingRecord]:
        """Take up to ``limit`` due items of ``kind``, oldest first, for ``lease_s`` seconds.

        Items behind a still-leased older item are not taken, so delivery stays in order
        even with several deliverers (the second one simply finds nothing to do).
        """
        now = utcnow()
        until = now + timedelta(seconds=lease_s)
        with self._ledger._write() as session:
            held = session.scalar(
                select(func.count())
                .select_from(OutboxItem)
                .where(OutboxItem.kind == kind, OutboxItem.delivered_at.is_(None))
                .where(OutboxItem.leased_until > now)
            )
            if held:
                return []
            rows = session.scalars(
                select(OutboxItem)
                .where(OutboxItem.kind == kind, OutboxItem.delivered_at.is_(None))
                .where(or_(OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at <= now))
                .order_by(OutboxItem.id)
                .limit(limit)
            ).all()
            taken = []
            for row in rows:
                won = session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == row.id, OutboxItem.attempts == row.attempts)
                    .values(leased_until=until, attempts=row.attempts + 1)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                if won == 1:
                    taken.append(
                        PendingRecord(
                            row.id, kind, row.job_id, row.payload, row.attempts + 1, row.created_at
                        )
                    )
            return taken

    def delivered(self, ids: Sequence[int], location: dict[int, str] | None = None) -> None:
        """Mark items delivered (with where the archive put each file)."""
        now = utcnow()
        with self._ledger._write() as session:
            for item_id in ids:
                session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == item_id)
                    .values(
                        delivered_at=now,
                        leased_until=None,
                        last_error=None,
                        location=(location or {}).get(item_id),
                    )
                    .execution_options(synchronize_session=False)
                )

    def postpone(self, ids: Sequence[int], error: str, retry_after_s: float) -> None:
        """Give items back after a failed delivery; they are due again after the wait."""
        now = utcnow()
        due = now + timedelta(seconds=retry_after_s)
        with self._ledger._write() as session:
            session.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_(list(ids)), OutboxItem.delivered_at.is_(None))
                .values(leased_until=None, next_attempt_at=due, last_error=error[:255])
                .execution_options(synchronize_session=False)
            )

    def undelivered_kinds(self, job_id: str) -> set[str]:
        """Kinds queued for ``job_id`` and not yet delivered."""
        with self._ledger._read() as session:
            return set(
                session.scalars(
                    select(OutboxItem.kind).where(
                        OutboxItem.job_id == job_id, OutboxItem.delivered_at.is_(None)
                    )
                )
            )

    def queued_kinds(self, job_id: str) -> set[str]:
        with self._ledger._read() as session:
            return set(session.scalars(select(OutboxItem.kind).where(OutboxItem.job_id == job_id)))

    def jobs_delivered(self, job_ids: Sequence[str]) -> list[str]:
        """Those of ``job_ids`` whose every queued record is delivered."""
        if not job_ids:
            return []
        with self._ledger._read() as session:
            waiting = set(
                session.scalars(
                    select(OutboxItem.job_id).where(
                        OutboxItem.job_id.in_(list(job_ids)), OutboxItem.delivered_at.is_(None)
                    )
                )
            )
            queued = set(
                session.scalars(
                    select(OutboxItem.job_id).where(OutboxItem.job_id.in_(list(job_ids)))
                )
            )
        return [j for j in job_ids if j in queued and j not in waiting]

    def has_due(self) -> bool:
        """Whether any record is waiting and due (not leased, not waiting out a failure)."""
        now = utcnow()
        with self._ledger._read() as session:
            return (
                session.scalar(
                    select(OutboxItem.id)
                    .where(OutboxItem.delivered_at.is_(None))
                    .where(
                        or_(OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at <= now)
                    )
                    .where(or_(OutboxItem.leased_until.is_(None), OutboxItem.leased_until <= now))
                    .limit(1)
                )
                is not None
            )

    def backlog(self, kind: str) -> OutboxBacklog:
        with self._ledger._read() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(OutboxItem.created_at)).where(
                    OutboxItem.kind == kind, OutboxItem.delivered_at.is_(None)
                )
            ).one()
        return OutboxBacklog(int(count), oldest)
