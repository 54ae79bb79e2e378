"""The audit log: one row per job, whatever happened to it.

Ops read it as a spreadsheet (the Google Sheets implementation comes later), so a
row is a flat list of cells in fixed column order, and ``append`` is idempotent per
job id: a retried task never adds a second row. The first row written for a job
wins; later calls for the same job are no-ops.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
from collections.abc import Iterator, Sequence
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
    "submitted_at",
    "ncb_reference",
    "amount",
    "service_date",
    "invoice_number",
    "policy_number",
    "confidence",
    "route",
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


@dataclass(frozen=True)
class AuditRow:
    """What the audit log keeps about one job.

    ``route`` is the decision ("submitted", "review", "rejected", "duplicate", ...);
    ``actor`` who made it ("system" or a reviewer's id).
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

    def __post_init__(self) -> None:
        if not self.job_id:
            raise ValueError("job_id is required")

    def to_cells(self) -> list[str]:
        """Cells in :data:`COLUMNS` order; free text is guarded against formulas."""
        values = {
            "job_id": _text_cell(self.job_id),
            "email_id": _text_cell(self.email_id),
            "received_at": self.received_at.isoformat(),
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else "",
            "ncb_reference": _text_cell(self.ncb_reference),
            "amount": f"{self.amount:.2f}" if self.amount is not None else "",
            "service_date": self.service_date.isoformat() if self.service_date else "",
            "invoice_number": _text_cell(self.invoice_number),
            "policy_number": _text_cell(self.policy_number),
            "confidence": f"{self.confidence:.4f}" if self.confidence is not None else "",
            "route": _text_cell(self.route),
            "actor": _text_cell(self.actor),
        }
        return [values[c] for c in COLUMNS]

    @classmethod
    def from_cells(cls, cells: Sequence[str]) -> AuditRow:
        """Inverse of :meth:`to_cells` (short rows are padded with empty cells)."""
        v = dict(zip(COLUMNS, [*cells, *[""] * (len(COLUMNS) - len(cells))], strict=True))
        return cls(
            job_id=_from_text_cell(v["job_id"]) or "",
            email_id=_from_text_cell(v["email_id"]) or "",
            received_at=datetime.fromisoformat(v["received_at"]),
            submitted_at=datetime.fromisoformat(v["submitted_at"]) if v["submitted_at"] else None,
            ncb_reference=_from_text_cell(v["ncb_reference"]),
            amount=Decimal(v["amount"]) if v["amount"] else None,
            service_date=date.fromisoformat(v["service_date"]) if v["service_date"] else None,
            invoice_number=_from_text_cell(v["invoice_number"]),
            policy_number=_from_text_cell(v["policy_number"]),
            confidence=float(v["confidence"]) if v["confidence"] else None,
            route=_from_text_cell(v["route"]) or "",
            actor=_from_text_cell(v["actor"]) or "",
        )


class AuditLog(Protocol):
    """Where audit rows go: a local CSV now, a Google Sheet later."""

    def append(self, row: AuditRow) -> None:
        """Add ``row`` unless a row for ``row.job_id`` already exists."""
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

    def append(self, row: AuditRow) -> None:
        fd = open_private(self.path, os.O_RDWR | os.O_APPEND)
        with os.fdopen(fd, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._catch_up(fh)
                if row.job_id in self._seen:
                    return
                out = io.StringIO()
                writer = csv.writer(out, lineterminator="\n")
                if self._offset == 0:
                    writer.writerow(COLUMNS)
                writer.writerow(row.to_cells())
                data = out.getvalue().encode("utf-8")
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                self._offset += len(data)
                self._seen.add(row.job_id)
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
                    yield AuditRow.from_cells(cells)

    def _catch_up(self, fh: io.BufferedRandom | io.BufferedReader) -> None:
        """Fold rows other processes appended since our last look into ``_seen``."""
        st = os.fstat(fh.fileno())
        if st.st_ino != self._inode or st.st_size < self._offset:
            # First look, or the file was replaced/truncated: start over.
            self._seen.clear()
            self._offset = 0
            self._inode = st.st_ino
        if st.st_size == self._offset:
            return
        fh.seek(self._offset)
        chunk = fh.read(st.st_size - self._offset)
        reader = csv.reader(io.StringIO(chunk.decode("utf-8"), newline=""))
        for i, cells in enumerate(reader):
            if self._offset == 0 and i == 0:
                continue  # header
            if cells:
                self._seen.add(_from_text_cell(cells[0]) or "")
        self._offset = st.st_size
