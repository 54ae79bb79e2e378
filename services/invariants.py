"""Invariants of the whole pipeline, checked read-only against the ledger and its records.

The ledger is the truth, but a claim also leaves traces outside it: the mail source
(done emails), NCB (accepted claims), the audit log and the archive. Each step keeps
its own promise; this module checks that, taken together, nothing was lost, doubled
or left behind. It only reads (ledger, files) and never repairs: a breach is for a
person to look at, named by a code, with ids only (no PHI).

Collaborators are passed in; building them from settings is the caller's business
(``claims-ocr check`` in ``workers/cli.py``).

Reading order matters while the pipeline runs: list done emails *before* calling
:func:`check_invariants` (an email is recorded before it is marked done), and the
ledger is read in one snapshot *before* the audit log, NCB's claims and the archive
(a job is archived and audited before it is marked done), so a live pipeline does not
look broken.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Connection, String, func, inspect, select, type_coerce
from sqlalchemy.exc import SQLAlchemyError

from services.ledger import WHOLE_EMAIL_PART, WORKING_STATES, JobState, Ledger
from services.ledger.ledger import fit
from services.ledger.models import Email, Job, JobEvent
from services.mail import parse_email
from services.mail.maildir import DONE_DIR, is_maildir
from services.records import Archive

S = JobState

#: States whose job must be in NCB exactly once.
SENT_STATES = frozenset({S.SUBMITTED, S.DONE})
#: States a job in NCB can never be in: it never reached the submitter.
NEVER_SENT_STATES = frozenset({S.RECEIVED, S.OCR_PENDING, S.EXTRACTED, S.DUPLICATE, S.SKIPPED})
KNOWN_STATES = frozenset(s.value for s in JobState)
_CHUNK = 500


@dataclass(frozen=True)
class Breach:
    """One broken invariant: a stable code, a sentence with counts, the offending ids."""

    code: str
    message: str
    ids: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return max(len(self.ids), 1)


@dataclass
class Verdict:
    """What was checked (counts) and what was found broken."""

    breaches: list[Breach] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.breaches

    @property
    def codes(self) -> set[str]:
        return {b.code for b in self.breaches}

    def add(self, code: str, message: str, ids: Iterable[str] = ()) -> None:
        self.breaches.append(Breach(code, message, tuple(ids)))

    def to_dict(self, max_ids: int = 100) -> dict[str, Any]:
        """JSON-ready; ``ids`` cut to ``max_ids`` per breach (``count`` is the full number)."""
        return {
            "ok": self.ok,
            "breaches": [
                {
                    "code": b.code,
                    "count": b.count,
                    "message": b.message,
                    "ids": list(b.ids[:max_ids]),
                }
                for b in self.breaches
            ],
            "checked": dict(self.checked),
        }


@runtime_checkable
class AuditRows(Protocol):
    """An audit log that can list the job id of each of its rows (CSV and Sheets)."""

    def job_ids(self) -> Iterable[str]: ...


@dataclass(frozen=True)
class DoneEmail:
    """An email file its source has marked done, to be matched against the ledger.

    ``alias`` is the name it had before a folder source renamed it to avoid a clash
    in ``done/`` (``x.eml`` kept as ``x.1.eml``): the ledger knows it by either.
    """

    source: str
    source_id: str
    path: Path
    alias: str | None = None


def default_deadlines(
    stale_after_s: float, sweep_interval_s: float, submit_stale_after_s: float | None = None
) -> dict[JobState, float]:
    """Seconds a job may rest in each working state before it counts as lost.

    The sweep re-queues work older than its step's stale time (``submit_stale_after_s``
    for ``submitting``, else ``stale_after_s``) and runs every ``sweep_interval_s``; a
    job still resting two sweeps after that was not picked up.
    """
    margin = 2 * sweep_interval_s
    deadlines = dict.fromkeys(WORKING_STATES, stale_after_s + margin)
    if submit_stale_after_s is not None:
        deadlines[S.SUBMITTING] = submit_stale_after_s + margin
    return deadlines


def list_done_emails(path: Path) -> list[DoneEmail]:
    """The emails a Maildir (``cur/`` with the S flag) or folder (``done/*.eml``) has done.

    Mirrors ``MaildirSource``'s own layout rules, reading only names (no content yet).
    """
    if not path.is_dir():
        return []
    done: list[DoneEmail] = []
    if is_maildir(path):
        for f in sorted((path / "cur").iterdir()):
            key, sep, flags = f.name.partition(":2,")
            if f.is_file() and not f.name.startswith(".") and sep and "S" in flags:
                done.append(DoneEmail("maildir", key, f))
        return done
    folder = path / DONE_DIR
    if not folder.is_dir():
        return []
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.name.lower().endswith(".eml"):
            renamed = re.fullmatch(r"(.+)\.\d+(\.eml)", f.name, flags=re.IGNORECASE)
            alias = renamed.group(1) + renamed.group(2) if renamed else None
            done.append(DoneEmail("folder", f.name, f, alias))
    return done


def check_invariants(
    ledger: Ledger,
    *,
    audit: AuditRows,
    archive: Archive,
    deadlines: Mapping[JobState, float],
    done_emails: Sequence[DoneEmail] | None = None,
    ncb_claims: Sequence[Mapping[str, Any]] | None = None,
    ready_held: bool = False,
    max_email_bytes: int | None = None,
    max_attachment_bytes: int | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Check every invariant; read-only.

    ``deadlines``: seconds per working state (see :func:`default_deadlines`); states
    left out are not checked. ``ready_held``: NCB's circuit is open, so ``ready`` jobs
    are expected to wait. ``ncb_claims`` (dicts with ``idempotency_key``) and
    ``done_emails`` are checked only when given. ``max_email_bytes`` and
    ``max_attachment_bytes`` are intake's limits, so done emails are read as it read them.
    """
    verdict = Verdict()
    now = now or datetime.now(UTC)
    try:
        with _snapshot(ledger) as conn:
            if not _has_schema(conn):
                verdict.add("ledger_schema_missing", "The ledger has no schema (never migrated).")
                return verdict
            _check_states(conn, verdict)
            _check_deadlines(conn, verdict, deadlines, ready_held, now)
            sent = _job_ids(conn, SENT_STATES)
            done = _job_ids(conn, {S.DONE})
            if ncb_claims is not None:
                _check_ncb(conn, verdict, ncb_claims, sent)
            _check_audit(conn, verdict, audit, done)
            recorded = _recorded_parts(conn, done_emails or ())
    except SQLAlchemyError as exc:
        verdict.add("ledger_unreadable", f"The ledger could not be read ({type(exc).__name__}).")
        return verdict
    _check_archive(verdict, archive, done)
    if done_emails is not None:
        _check_done_emails(verdict, done_emails, recorded, max_email_bytes, max_attachment_bytes)
    return verdict


# -- the ledger snapshot -----------------------------------------------------------------


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[Connection]:
    """One read transaction for the whole check, so every query sees the same moment.

    Rolled back at the end: nothing is written, nothing is ever committed.
    """
    with ledger.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin() as transaction:
            try:
                yield conn
            finally:
                transaction.rollback()


def _has_schema(conn: Connection) -> bool:
    found = inspect(conn)
    return all(found.has_table(name) for name in ("emails", "jobs", "job_events"))


#: The state column as stored, so a value no ``JobState`` knows is seen, not raised on.
_RAW_STATE = type_coerce(Job.__table__.c.state, String())


def _check_states(conn: Connection, verdict: Verdict) -> None:
    """(1) every job is in one known state; every email counts the jobs it has."""
    counts = dict(conn.execute(select(_RAW_STATE, func.count()).group_by(_RAW_STATE)).all())
    verdict.checked["jobs"] = sum(counts.values())
    verdict.checked["emails"] = conn.scalar(select(func.count()).select_from(Email)) or 0
    unknown = [
        row[0]
        for row in conn.execute(
            select(Job.id).where(_RAW_STATE.not_in(sorted(KNOWN_STATES))).order_by(Job.id)
        )
    ]
    if unknown:
        verdict.add(
            "job_state_unknown",
            f"{len(unknown)} job(s) in a state the pipeline does not know.",
            unknown,
        )
    # ``record_attachment`` counts every job it records for an email, the one that stands
    # for the whole email included, so the count must equal all of the email's jobs.
    jobs_of = (
        select(func.count()).select_from(Job).where(Job.email_id == Email.id).scalar_subquery()
    )
    mismatched = [
        row[0]
        for row in conn.execute(
            select(Email.id).where(Email.attachment_count != jobs_of).order_by(Email.id)
        )
    ]
    if mismatched:
        verdict.add(
            "attachment_count_mismatch",
            f"{len(mismatched)} email(s) whose attachment count differs from their jobs.",
            mismatched,
        )


def _check_deadlines(
    conn: Connection,
    verdict: Verdict,
    deadlines: Mapping[JobState, float],
    ready_held: bool,
    now: datetime,
) -> None:
    """(2) no job rests in a working state past its deadline."""
    for state in WORKING_STATES:
        limit = deadlines.get(state)
        if limit is None:
            continue
        if state is S.READY and ready_held:
            held = conn.scalar(select(func.count()).select_from(Job).where(Job.state == state))
            verdict.checked["ready_held_by_breaker"] = held or 0
            continue
        overdue = [
            row[0]
            for row in conn.execute(
                select(Job.id)
                .where(Job.state == state, Job.updated_at < now - timedelta(seconds=limit))
                .order_by(Job.updated_at, Job.id)
            )
        ]
        if overdue:
            verdict.add(
                "job_overdue",
                f"{len(overdue)} job(s) in {state.value} longer than {limit:.0f}s.",
                overdue,
            )


def _job_ids(conn: Connection, states: Iterable[JobState]) -> set[str]:
    return set(conn.scalars(select(Job.id).where(Job.state.in_(list(states)))))


def _states_of(conn: Connection, job_ids: Iterable[str]) -> dict[str, str]:
    """Stored state of each of ``job_ids`` that exists (missing ids are left out)."""
    found: dict[str, str] = {}
    for chunk in _chunks(sorted(set(job_ids))):
        rows = conn.execute(select(Job.id, _RAW_STATE).where(Job.id.in_(chunk)))
        found.update({job_id: state for job_id, state in rows})
    return found


def _check_ncb(
    conn: Connection, verdict: Verdict, claims: Sequence[Mapping[str, Any]], sent: set[str]
) -> None:
    """(3) NCB holds each sent job's claim exactly once, and nothing we never sent."""
    keys = Counter(str(c.get("idempotency_key") or "") for c in claims)
    verdict.checked["ncb_claims"] = len(claims)
    missing = sorted(sent - keys.keys())
    if missing:
        verdict.add(
            "ncb_claim_missing",
            f"{len(missing)} submitted or done job(s) with no claim in NCB.",
            missing,
        )
    doubled = sorted(key for key, n in keys.items() if n > 1 and key)
    if doubled:
        verdict.add(
            "ncb_claim_duplicated", f"{len(doubled)} claim(s) NCB holds more than once.", doubled
        )
    states = _states_of(conn, (k for k in keys if k and k not in sent))
    orphans = sorted(
        key
        for key in keys
        if key not in sent and (key not in states or states[key] in NEVER_SENT_STATES)
    )
    if orphans:
        verdict.add(
            "ncb_claim_without_job",
            f"{len(orphans)} claim(s) in NCB that no job of ours sent.",
            [k or "<no idempotency key>" for k in orphans],
        )


def _check_audit(conn: Connection, verdict: Verdict, audit: AuditRows, done: set[str]) -> None:
    """(4) one audit row per done job: none missing, none twice, none for other jobs."""
    try:
        rows = Counter(audit.job_ids())
    except (OSError, ValueError) as exc:
        verdict.add("audit_unreadable", f"The audit log could not be read ({type(exc).__name__}).")
        return
    verdict.checked["audit_rows"] = sum(rows.values())
    verdict.checked["done_jobs"] = len(done)
    missing = sorted(done - rows.keys())
    if missing:
        verdict.add("audit_row_missing", f"{len(missing)} done job(s) with no audit row.", missing)
    doubled = sorted(job_id for job_id, n in rows.items() if n > 1)
    if doubled:
        verdict.add(
            "audit_row_duplicated", f"{len(doubled)} job(s) with more than one audit row.", doubled
        )
    others = [job_id for job_id in rows if job_id not in done]
    states = _states_of(conn, others)
    unexpected = sorted(
        job_id for job_id in others if not _finalizing(conn, job_id, states.get(job_id))
    )
    if unexpected:
        verdict.add(
            "audit_row_unexpected",
            f"{len(unexpected)} audit row(s) for jobs that are not done.",
            unexpected,
        )


def _finalizing(conn: Connection, job_id: str, state: str | None) -> bool:
    """A submitted job is audited just before it is marked done (or failed right after)."""
    if state == S.SUBMITTED.value:
        return True
    if state != S.FAILED.value:
        return False
    failed_from = conn.scalar(
        select(type_coerce(JobEvent.__table__.c.from_state, String()))
        .where(JobEvent.job_id == job_id, JobEvent.to_state == S.FAILED)
        .order_by(JobEvent.id.desc())
        .limit(1)
    )
    return bool(failed_from == S.SUBMITTED.value)


def _check_archive(verdict: Verdict, archive: Archive, done: set[str]) -> None:
    """(4) every done job's original is in the archive."""
    missing = sorted(job_id for job_id in done if archive.find(job_id) is None)
    if missing:
        verdict.add(
            "archive_file_missing", f"{len(missing)} done job(s) with no archived file.", missing
        )


# -- done emails -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recorded:
    email_id: str
    parts: frozenset[int]


def _recorded_parts(
    conn: Connection, done_emails: Iterable[DoneEmail]
) -> dict[tuple[str, str], _Recorded]:
    """``(source, source_id)`` -> the ledger's email and its jobs' part indices."""
    wanted: dict[str, set[str]] = {}
    for done in done_emails:
        for source_id in filter(None, (done.source_id, done.alias)):
            wanted.setdefault(done.source, set()).add(fit(Email, "source_id", source_id))
    emails: dict[tuple[str, str], str] = {}
    for source, source_ids in wanted.items():
        for chunk in _chunks(sorted(source_ids)):
            rows = conn.execute(
                select(Email.source_id, Email.id).where(
                    Email.source == source, Email.source_id.in_(chunk)
                )
            )
            emails.update({(source, sid): email_id for sid, email_id in rows})
    parts: dict[str, set[int]] = {email_id: set() for email_id in emails.values()}
    for chunk in _chunks(sorted(parts)):
        for email_id, part in conn.execute(
            select(Job.email_id, Job.part_index).where(Job.email_id.in_(chunk))
        ):
            parts[email_id].add(part)
    return {key: _Recorded(eid, frozenset(parts[eid])) for key, eid in emails.items()}


def _check_done_emails(
    verdict: Verdict,
    done_emails: Sequence[DoneEmail],
    recorded: Mapping[tuple[str, str], _Recorded],
    max_email_bytes: int | None,
    max_attachment_bytes: int | None,
) -> None:
    """(5) every email marked done is in the ledger with a job for each attachment."""
    not_recorded: list[str] = []
    incomplete: list[str] = []
    read = 0
    for done in done_emails:
        try:
            data = done.path.read_bytes()
        except FileNotFoundError:
            continue  # moved away since it was listed: nothing to hold against the ledger
        read += 1
        record = _lookup(recorded, done)
        if record is None:
            # A file name can carry a member's name: name the email by its content hash,
            # as intake's logs do (``email_sha256``).
            not_recorded.append("sha256:" + hashlib.sha256(data).hexdigest()[:16])
            continue
        expected = _expected_parts(done, data, max_email_bytes, max_attachment_bytes)
        if expected is None:  # intake could not read it: one job stands for the email
            if WHOLE_EMAIL_PART not in record.parts:
                incomplete.append(record.email_id)
        elif not expected <= record.parts and WHOLE_EMAIL_PART not in record.parts:
            incomplete.append(record.email_id)
    verdict.checked["done_emails"] = read
    if not_recorded:
        verdict.add(
            "done_email_not_recorded",
            f"{len(not_recorded)} email(s) marked done in the source but not in the ledger.",
            not_recorded,
        )
    if incomplete:
        verdict.add(
            "done_email_attachment_missing",
            f"{len(incomplete)} email(s) marked done with attachments not recorded as jobs.",
            sorted(incomplete),
        )


def _lookup(recorded: Mapping[tuple[str, str], _Recorded], done: DoneEmail) -> _Recorded | None:
    for source_id in filter(None, (done.source_id, done.alias)):
        found = recorded.get((done.source, fit(Email, "source_id", source_id)))
        if found is not None:
            return found
    return None


def _expected_parts(
    done: DoneEmail, data: bytes, max_email_bytes: int | None, max_attachment_bytes: int | None
) -> frozenset[int] | None:
    """Part indices intake would have recorded; None when it could not read the email."""
    if max_email_bytes is not None and len(data) > max_email_bytes:
        return None
    try:
        email = parse_email(
            data,
            source=done.source,
            source_id=done.source_id,
            max_attachment_bytes=max_attachment_bytes,
        )
    except Exception:  # intake quarantines whatever the parser raises
        return None
    return frozenset(a.part_index for a in email.attachments)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


__all__ = [
    "NEVER_SENT_STATES",
    "SENT_STATES",
    "WORKING_STATES",
    "AuditRows",
    "Breach",
    "DoneEmail",
    "Verdict",
    "check_invariants",
    "default_deadlines",
    "list_done_emails",
]
