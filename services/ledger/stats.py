"""Numbers for the operators' dashboard, read from the ledger on both databases.

Kept apart from ``ledger.py`` because these are reporting queries, not part of the job
lifecycle. Windows count jobs by when they were recorded (``jobs.created_at``): today
(since 00:00 UTC), the last 7 days and the last 30 days. Percentiles are computed here,
not in SQL, because SQLite has no percentile function; the rows read are one timestamp
pair per finished job of the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, select

from services.ledger.models import Job, JobEvent
from services.ledger.states import JobState

if TYPE_CHECKING:
    from services.ledger.ledger import Ledger

S = JobState
#: A claim that reached NCB.
SUBMITTED_STATES = (S.SUBMITTED, S.DONE)
#: A claim whose fate is decided: it reached NCB or a person rejected it.
DECIDED_STATES = (S.SUBMITTED, S.DONE, S.REJECTED)


@dataclass(frozen=True)
class WindowStats:
    """What happened to the jobs recorded since ``since``.

    ``straight_through_rate``: of the decided jobs (submitted, done or rejected), the share
    that reached NCB without ever waiting for a person. ``review_rate``: of the jobs that
    were routed (reached ``ready`` or ``needs_review`` at least once), the share that went
    to a person. ``processing_p50_s``/``p95_s``: from recorded to ``done``, for done jobs.
    Rates and averages are None when nothing counts towards them.
    """

    since: datetime
    total: int
    by_state: dict[JobState, int]
    straight_through_rate: float | None
    review_rate: float | None
    average_confidence: float | None
    processing_p50_s: float | None
    processing_p95_s: float | None


@dataclass(frozen=True)
class LedgerStats:
    generated_at: datetime
    review_queue: int  # jobs in needs_review now
    oldest_review_age_s: float | None  # how long the longest-waiting one has waited
    windows: dict[str, WindowStats]  # "today", "7d", "30d"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (a value that occurred), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def window_stats(ledger: Ledger, since: datetime) -> WindowStats:
    """Counts, rates, confidence and processing time of the jobs recorded since ``since``."""
    recent = Job.created_at >= since
    reviewed = exists().where(JobEvent.job_id == Job.id, JobEvent.to_state == S.NEEDS_REVIEW)
    routed = exists().where(
        JobEvent.job_id == Job.id, JobEvent.to_state.in_([S.READY, S.NEEDS_REVIEW])
    )
    done_at = (
        select(Job.created_at, func.max(JobEvent.at))
        .join(JobEvent, JobEvent.job_id == Job.id)
        .where(recent, Job.state == S.DONE, JobEvent.to_state == S.DONE)
        .group_by(Job.id, Job.created_at)
    )
    count = select(func.count()).select_from(Job).where(recent)
    with ledger._read() as session:
        found = dict(
            session.execute(select(Job.state, func.count()).where(recent).group_by(Job.state)).all()
        )
        decided = session.scalar(count.where(Job.state.in_(DECIDED_STATES))) or 0
        straight = (
            session.scalar(count.where(Job.state.in_(SUBMITTED_STATES), ~reviewed.correlate(Job)))
            or 0
        )
        n_routed = session.scalar(count.where(routed.correlate(Job))) or 0
        n_reviewed = session.scalar(count.where(reviewed.correlate(Job))) or 0
        confidence = session.scalar(select(func.avg(Job.confidence)).where(recent))
        durations = [
            (finished - created).total_seconds()
            for created, finished in session.execute(done_at).all()
            if finished is not None
        ]
    by_state = {state: found.get(state, 0) for state in JobState}
    return WindowStats(
        since=since,
        total=sum(by_state.values()),
        by_state=by_state,
        straight_through_rate=_ratio(straight, decided),
        review_rate=_ratio(n_reviewed, n_routed),
        average_confidence=None if confidence is None else float(confidence),
        processing_p50_s=percentile(durations, 0.50),
        processing_p95_s=percentile(durations, 0.95),
    )


def ledger_stats(ledger: Ledger, now: datetime | None = None) -> LedgerStats:
    """The dashboard's numbers as of ``now`` (default: the current time)."""
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    windows = {
        "today": window_stats(ledger, midnight),
        "7d": window_stats(ledger, now - timedelta(days=7)),
        "30d": window_stats(ledger, now - timedelta(days=30)),
    }
    with ledger._read() as session:
        queue, oldest = session.execute(
            select(func.count(), func.min(Job.updated_at)).where(Job.state == S.NEEDS_REVIEW)
        ).one()
    oldest_at = _aware(oldest)
    return LedgerStats(
        generated_at=now,
        review_queue=int(queue or 0),
        oldest_review_age_s=None if oldest_at is None else (now - oldest_at).total_seconds(),
        windows=windows,
    )


def _aware(value: datetime | str | None) -> datetime | None:
    """An aggregate's datetime: SQLite hands ``min()`` back as text, without a zone."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
