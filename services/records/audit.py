"""The audit log: one row per job, whatever happened to it.

Ops read it as a spreadsheet (:mod:`services.records.sheets`; a local CSV here), so a
row is a flat list of cells in fixed column order, and ``append`` is idempotent per
job id: a retried task never adds a second row. The first row written for a job
wins; later calls for the same job are no-ops.

Remote stores (Sheets, Drive) raise :class:`RecordsUnavailable` for what a later retry
can fix (outage, quota) and :class:`RecordsMisconfigured` for what an operator must fix
(not shared, wrong id): the deliverer handles both adapters alike.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from services.private_files import open_private

#: Column headers, in order (also the Sheets header row).
COLUMNS: tuple[str, ...] = (
    "job_id",
    "email_id",
    "received_at",
    "sender",
    "attachment",
    "submitted_at",
    "ncb_reference",
    "amount",
    "tax_amount",
    "service_date",
    "invoice_number",
    "provider",
    "policy_number",
    "confidence",
    "route",
    "state",
    "actor",
)

# Cells starting with these are formulas to Sheets/Excel; OCR text is member-supplied.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _from_text_cell(cell: str) -> str | None:
    if not cell:
        return None
    if cell.startswith("'") and cell[1:].startswith(_FORMULA_START):
        return cell[1:]
    return cell


class RecordsUnavailable(Exception):
    """The remote store cannot take the write now (outage, 5xx, quota): retry later.

    ``retry_after_s`` is the server's hint (``Retry-After``, or a quota window) when
    there is one; ``None`` leaves the back-off to the caller.
    """

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RecordsMisconfigured(Exception):
    """The remote store refuses for a reason an operator must fix (the message says what).

    Retrying does not help until then: not shared with the service account, wrong
    spreadsheet or folder id, credentials rejected.
    """


@contextmanager
def records_errors(
    translate: Callable[[BaseException], RecordsUnavailable | RecordsMisconfigured | None],
    forget: Callable[[], None],
) -> Iterator[None]:
    """Raise a remote store's failures as the two records errors the outbox understands.

    ``translate`` maps a client library's exception (``None``: not one it knows, which
    propagates as is); ``forget`` drops what the store cached, since after any failure
    nothing cached can be trusted until it is read again.
    """
    try:
        yield
    except (RecordsUnavailable, RecordsMisconfigured):
        forget()
        raise
    except Exception as exc:
        forget()
        translated = translate(exc)
        if translated is None:
            raise
        raise translated from exc


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (the HTTP-date form is not used by Google)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class AuditRow:
    """What the audit log keeps about one job.

    ``route`` is the decision ("submitted", "review", "rejected", "duplicate", ...);
    ``actor`` who made it ("system" or a reviewer's id); ``state`` the job's state
    when the row was written. ``sender`` is already masked by the caller
    (``a***@example.com``): the audit log never sees a full address.
    """

    job_id: str
    email_id: str
    received_at: datetime
    route: str
    actor: str = "system"
    submitted_at: datetime | None = None
    ncb_reference: str | None = None
    amount: Decimal | None = None
    service_date: date | None = None
    invoice_number: str | None = None
    policy_number: str | None = None
    confidence: float | None = None
    sender: str | None = None
    attachment: str | None = None
    provider: str | None = None
    tax_amount: Decimal | None = None
    state: str = "done"

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("job_id is required")

    def to_cells(self) -> list[str]:
        """Cells in :data:`COLUMNS` order; free text is guarded against formulas."""
        values = {
            "job_id": _text_cell(self.job_id),
            "email_id": _text_cell(self.email_id),
            "received_at": self.received_at.isoformat(),
            "sender": _text_cell(self.sender),
            "attachment": _text_cell(self.attachment),
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else "",
            "ncb_reference": _text_cell(self.ncb_reference),
            "amount": f"{self.amount:.2f}" if self.amount is not None else "",
            "tax_amount": f"{self.tax_amount:.2f}" if self.tax_amount is not None else "",
            "service_date": self.service_date.isoformat() if self.service_date else "",
            "invoice_number": _text_cell(self.invoice_number),
            "provider": _text_cell(self.provider),
            "policy_number": _text_cell(self.policy_number),
            "confidence": f"{self.confidence:.4f}" if self.confidence is not None else "",
            "route": _text_cell(self.route),
            "state": _text_cell(self.state),
            "actor": _text_cell(self.actor),
        }
        return [values[c] for c in COLUMNS]

    @classmethod
    def from_cells(cls, cells: Sequence[str], columns: Sequence[str] = COLUMNS) -> AuditRow:
        """Inverse of :meth:`to_cells` (short rows are padded with empty cells).

        ``columns`` names the cells when they were written under another header (an
        older file's first row); columns missing there read as empty.
        """
        v = dict.fromkeys(COLUMNS, "")
        v.update(zip(columns, cells, strict=False))
        return cls(
            job_id=_from_text_cell(v["job_id"]) or "",
            email_id=_from_text_cell(v["email_id"]) or "",
            received_at=datetime.fromisoformat(v["received_at"]),
            sender=_from_text_cell(v["sender"]),
            attachment=_from_text_cell(v["attachment"]),
            submitted_at=datetime.fromisoformat(v["submitted_at"]) if v["submitted_at"] else None,
            ncb_reference=_from_text_cell(v["ncb_reference"]),
            amount=Decimal(v["amount"]) if v["amount"] else None,
            tax_amount=Decimal(v["tax_amount"]) if v["tax_amount"] else None,
            service_date=date.fromisoformat(v["service_date"]) if v["service_date"] else None,
            invoice_number=_from_text_cell(v["invoice_number"]),
            provider=_from_text_cell(v["provider"]),
            policy_number=_from_text_cell(v["policy_number"]),
            confidence=float(v["confidence"]) if v["confidence"] else None,
            route=_from_text_cell(v["route"]) or "",
            state=_from_text_cell(v["state"]) or "done",
            actor=_from_text_cell(v["actor"]) or "",
        )


class AuditLog(Protocol):
    """Where audit rows go: a local CSV, or a Google Sheet."""

    def append(self, row: AuditRow) -> None:
        """Add ``row`` unless a row for ``row.job_id`` already exists."""
        ...

    def append_many(self, rows: Sequence[AuditRow]) -> int:
        """Add, in order, the rows whose job has no row yet; return how many were added.

        Safe to call again with a batch whose previous attempt was (partly) written.
        """
        ...

    def contains(self, job_id: str) -> bool: ...


class CsvAuditLog:
    """Audit log in a local CSV file, safe with several processes appending.

    Every append holds an exclusive ``fcntl`` lock on the file while it reads the
    rows added since its last look (to learn their job ids) and writes its own, so
    two workers finishing the same job cannot both add a row. The file is 0600 and the
    folders it creates 0700: rows carry policy numbers and amounts.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._seen: set[str] = set()
        self._offset = 0  # bytes of the file already folded into _seen
        self._inode: int | None = None
        self._header: tuple[str, ...] = COLUMNS  # the file's own header row

    def append(self, row: AuditRow) -> None:
        self.append_many([row])

    def append_many(self, rows: Sequence[AuditRow]) -> int:
        fd = open_private(self.path, os.O_RDWR | os.O_APPEND)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._catch_up(fh)
                new: dict[str, AuditRow] = {}  # first row per job wins
                for row in rows:
                    if row.job_id not in self._seen:
                        new.setdefault(row.job_id, row)
                if not new:
                    return 0
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\n")
                if self._offset == 0:
                    writer.writerow(COLUMNS)
                    self._header = COLUMNS
                for row in new.values():
                    writer.writerow(_in_order(row, self._header))
                data = out.getvalue().encode("utf-8")
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                self._offset += len(data)
                self._seen.update(new)
                return len(new)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def contains(self, job_id: str) -> bool:
        if not self.path.exists():
            return False
        with self.path.open("rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            try:
                self._catch_up(fh)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return job_id in self._seen

    def job_ids(self) -> list[str]:
        """Every row's job id, in file order, repeats kept (for ``claims-ocr check``)."""
        return [row.job_id for row in self.rows()]

    def rows(self) -> Iterator[AuditRow]:
        """Every row, in file order (for reports and tests)."""
        if not self.path.exists():
            return
        with self.path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return
            for cells in reader:
                if cells:
                    # By the file's own header: files written before a column was
                    # added still read back.
                    yield AuditRow.from_cells(cells, header)

    def _catch_up(self, fh: io.BufferedRandom | io.BufferedReader) -> None:
        """Fold rows other processes appended since our last look into ``_seen``."""
        st = os.fstat(fh.fileno())
        if st.st_ino != self._inode or st.st_size < self._offset:
            # First look, or the file was replaced/truncated: start over.
            self._seen.clear()
            self._offset = 0
            self._inode = st.st_ino
            self._header = COLUMNS
        if st.st_size == self._offset:
            return
        fh.seek(self._offset)
        chunk = fh.read(st.st_size - self._offset)
        reader = csv.reader(io.StringIO(chunk.decode("utf-8"), newline=""))
        for i, cells in enumerate(reader):
            if self._offset == 0 and i == 0:
                self._header = tuple(cells) or COLUMNS
                continue  # header
            if cells:
                self._seen.add(_from_text_cell(cells[0]) or "")
        self._offset = st.st_size


def _in_order(row: AuditRow, header: tuple[str, ...]) -> list[str]:
    """``row``'s cells under ``header``: a file started before a column was added
    keeps its own column order (the new columns are left out of that file)."""
    if header == COLUMNS:
        return row.to_cells()
    cells = dict(zip(COLUMNS, row.to_cells(), strict=True))
    return [cells.get(name, "") for name in header]
