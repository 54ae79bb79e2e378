"""Delivering the records outbox: audit rows in batches, originals one by one.

Runs after every finalised job and on the sweep, so records written while Sheets or
Drive was down go out, in the order they were queued, as soon as it answers again. A
job is marked ``done`` once every record it owes is delivered, so ``done`` keeps its
meaning: NCB has the claim, the audit log has its row and the archive its original.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services import metrics
from services.blobs import BlobStore
from services.ledger import InvalidTransition, Ledger, StaleState
from services.ledger.outbox import ARCHIVE, AUDIT, PendingRecord
from services.logs import bound_contextvars, get_logger
from services.records.archive import Archive
from services.records.audit import (
    COLUMNS,
    AuditLog,
    AuditRow,
    RecordsMisconfigured,
    RecordsUnavailable,
)

log = get_logger(__name__)

ACTOR = "submitter"
#: How long one deliverer holds a batch; a deliverer that died gives it up after this.
LEASE_S = 300.0
#: How long a batch waits after a failure the destination did not time itself.
RETRY_AFTER_S = 60.0
#: Audit rows per Sheets request (one request per month tab in the batch).
AUDIT_BATCH = 200
ARCHIVE_BATCH = 20


@dataclass
class DeliveryReport:
    audit_rows: int = 0
    archived: int = 0
    postponed: int = 0
    done: int = 0


def audit_payload(row: AuditRow) -> dict[str, str]:
    """The row as the outbox stores it: its cells by column name."""
    return dict(zip(COLUMNS, row.to_cells(), strict=True))


def archive_payload(
    *, filename: str, blob_key: str, received_at: datetime, email_id: str
) -> dict[str, str]:
    return {
        "filename": filename,
        "blob_key": blob_key,
        "received_at": received_at.isoformat(),
        "email_id": email_id,
    }


def deliver_records(
    ledger: Ledger,
    *,
    audit: AuditLog,
    archive: Archive,
    blobs: BlobStore,
    lease_s: float = LEASE_S,
    retry_after_s: float = RETRY_AFTER_S,
    max_batches: int = 10,
) -> DeliveryReport:
    """Deliver what is due, a few batches at most, and mark fully delivered jobs done."""
    report = DeliveryReport()
    touched: dict[str, str] = {}  # job id -> email id, for the log lines
    deliverers: list[tuple[str, int, Callable[[list[PendingRecord]], bool]]] = [
        (
            AUDIT,
            AUDIT_BATCH,
            lambda items: _deliver_audit(ledger, audit, items, report, retry_after_s),
        ),
        (
            ARCHIVE,
            ARCHIVE_BATCH,
            lambda items: _deliver_archive(ledger, archive, blobs, items, report, retry_after_s),
        ),
    ]
    for kind, batch, deliver in deliverers:
        for _ in range(max_batches):
            items = ledger.outbox.lease(kind, batch, lease_s)
            if not items:
                break
            touched.update((i.job_id, i.payload.get("email_id", "")) for i in items)
            with _lease_given_back_on_error(ledger, items):
                if not deliver(items):
                    break  # the destination failed: the rest of this kind waits
    for job_id in ledger.outbox.jobs_delivered(list(touched)):
        with bound_contextvars(job_id=job_id, email_id=touched[job_id]):
            if mark_done(ledger, job_id):
                report.done += 1
                log.info("claim archived and audited")
    if report.audit_rows or report.archived or report.postponed:
        log.info(
            "records delivered",
            audit_rows=report.audit_rows,
            archived=report.archived,
            postponed=report.postponed,
            done=report.done,
        )
    return report


@contextmanager
def _lease_given_back_on_error(ledger: Ledger, items: list[PendingRecord]) -> Iterator[None]:
    """A deliverer that fails outside the destination's own errors (the ledger dropped
    its connection mid-batch, say) gives its lease back at once, so the next sweep can
    deliver, instead of holding the batch for ``LEASE_S``. If even that fails, the
    lease simply runs out."""
    try:
        yield
    except Exception:
        with suppress(Exception):
            ledger.outbox.postpone([i.id for i in items], "delivery interrupted", 0)
        raise


def mark_done(ledger: Ledger, job_id: str) -> int:
    """1 when this call moved the job from submitted to done; 0 if it was not there."""
    try:
        ledger.mark_done(job_id, actor=ACTOR)
    except (StaleState, InvalidTransition):
        return 0
    return 1


def _deliver_audit(
    ledger: Ledger,
    audit: AuditLog,
    items: list[PendingRecord],
    report: DeliveryReport,
    retry_after_s: float,
) -> bool:
    rows = [AuditRow.from_cells([item.payload.get(c, "") for c in COLUMNS]) for item in items]
    ids = [item.id for item in items]
    try:
        audit.append_many(rows)
    except Exception as exc:  # every failure leaves the rows queued for the next pass
        _postpone(ledger, ids, exc, retry_after_s, report, "audit")
        return False
    ledger.outbox.delivered(ids)
    report.audit_rows += len(ids)
    metrics.record_delivery(AUDIT, delivered=len(ids))
    return True


def _deliver_archive(
    ledger: Ledger,
    archive: Archive,
    blobs: BlobStore,
    items: list[PendingRecord],
    report: DeliveryReport,
    retry_after_s: float,
) -> bool:
    for n, item in enumerate(items):
        p: dict[str, Any] = item.payload
        try:
            location = archive.store(
                item.job_id,
                p["filename"],
                blobs.get(p["blob_key"]),
                datetime.fromisoformat(p["received_at"]),
                email_id=p.get("email_id", ""),
            )
        except Exception as exc:
            rest = [i.id for i in items[n:]]
            _postpone(ledger, rest, exc, retry_after_s, report, "archive")
            return False
        ledger.outbox.delivered([item.id], {item.id: location})
        report.archived += 1
        metrics.record_delivery(ARCHIVE, delivered=1)
    return True


def _postpone(
    ledger: Ledger,
    ids: list[int],
    exc: Exception,
    retry_after_s: float,
    report: DeliveryReport,
    kind: str,
) -> None:
    wait = retry_after_s
    if isinstance(exc, RecordsUnavailable):
        wait = exc.retry_after_s or retry_after_s
        log.warning("records destination unavailable; will retry", kind=kind, items=len(ids))
    elif isinstance(exc, RecordsMisconfigured):
        log.error("records destination refused: fix its settings", kind=kind, detail=str(exc))
    else:
        log.exception("delivering records failed", kind=kind, error=type(exc).__name__)
    ledger.outbox.postpone(ids, f"{type(exc).__name__}: {exc}", wait)
    report.postponed += len(ids)
    metrics.record_delivery(kind, postponed=len(ids))
