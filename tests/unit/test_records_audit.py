"""CsvAuditLog: one row per job id, round-trips, formula guard, several processes."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from services.records import COLUMNS, AuditRow, CsvAuditLog

KL = ZoneInfo("Asia/Kuala_Lumpur")


def row(job_id: str = "job-1", **changes: object) -> AuditRow:
    values: dict[str, object] = {
        "job_id": job_id,
        "email_id": "18c2f0a",
        "received_at": datetime(2024, 12, 18, 10, 40, 5, tzinfo=KL),
        "submitted_at": datetime(2024, 12, 18, 10, 42, tzinfo=KL),
        "ncb_reference": "CLM-2024-567890",
        "amount": Decimal("150.00"),
        "service_date": date(2024, 12, 15),
        "invoice_number": "RCP-2024-001234",
        "policy_number": "POL-67890",
        "confidence": 0.94,
        "route": "submitted",
        "actor": "system",
    }
    values.update(changes)
    return AuditRow(**values)  # type: ignore[arg-type]


def test_append_is_idempotent_per_job_and_round_trips(tmp_path: Path):
    log = CsvAuditLog(tmp_path / "audit.csv")
    first = row()
    log.append(first)
    log.append(first)
    log.append(row(route="review", actor="ops@example.com"))  # same job: ignored

    assert list(log.rows()) == [first]
    with (tmp_path / "audit.csv").open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == list(COLUMNS)
    assert len(lines) == 2
    assert log.contains("job-1") and not log.contains("job-2")


def test_empty_optional_fields_round_trip(tmp_path: Path):
    log = CsvAuditLog(tmp_path / "audit.csv")
    review = AuditRow(
        job_id="job-9",
        email_id="m9",
        received_at=datetime(2024, 1, 2, 3, 4, tzinfo=KL),
        route="review",
    )
    log.append(review)
    assert list(log.rows()) == [review]


def test_separate_instances_share_the_file(tmp_path: Path):
    path = tmp_path / "nested" / "audit.csv"
    a, b = CsvAuditLog(path), CsvAuditLog(path)
    a.append(row("job-1"))
    b.append(row("job-1"))  # b learns of a's row from the file
    b.append(row("job-2"))
    a.append(row("job-2"))
    assert [r.job_id for r in CsvAuditLog(path).rows()] == ["job-1", "job-2"]


def test_formula_like_text_is_neutralised_and_restored(tmp_path: Path):
    log = CsvAuditLog(tmp_path / "audit.csv")
    evil = row(invoice_number='=HYPERLINK("http://x","y")', policy_number="+60123")
    log.append(evil)
    cells = evil.to_cells()
    assert cells[COLUMNS.index("invoice_number")].startswith("'=")
    assert cells[COLUMNS.index("policy_number")] == "'+60123"
    assert list(log.rows()) == [evil]


def test_text_with_commas_quotes_and_newlines_stays_one_row(tmp_path: Path):
    log = CsvAuditLog(tmp_path / "audit.csv")
    tricky = row(invoice_number='A, "B"\nC')
    log.append(tricky)
    log.append(row("job-2"))
    log.append(tricky)
    assert [r.invoice_number for r in log.rows()] == ['A, "B"\nC', "RCP-2024-001234"]


WRITER = """
import sys, time
from datetime import datetime, timezone
from services.records import AuditRow, CsvAuditLog
path, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
log = CsvAuditLog(path)
shared = [f"shared-{i}" for i in range(60)]
if int(me) % 2:
    shared.reverse()
while time.time() < start:
    time.sleep(0.001)
now = datetime.now(timezone.utc)
for job in shared + [f"own-{me}-{i}" for i in range(10)]:
    log.append(AuditRow(job_id=job, email_id=me, received_at=now, route="submitted"))
"""


def test_concurrent_processes_write_one_row_per_job(tmp_path: Path):
    path = tmp_path / "audit.csv"
    start = time.time() + 1.5  # all writers begin together, after interpreter start-up
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), str(start)])
        for n in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]

    with path.open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == list(COLUMNS)
    assert all(len(cells) == len(COLUMNS) for cells in lines[1:])  # no torn rows
    job_ids = [cells[0] for cells in lines[1:]]
    assert len(job_ids) == len(set(job_ids)) == 60 + 4 * 10


def test_new_columns_round_trip_and_are_guarded(tmp_path: Path):
    log = CsvAuditLog(tmp_path / "audit.csv")
    full = row(
        sender="=a***@example.com",
        attachment="+receipt.pdf",
        provider="@Klinik",
        tax_amount=Decimal("9.00"),
        state="submitted",
    )
    cells = dict(zip(COLUMNS, full.to_cells(), strict=True))
    assert (cells["sender"], cells["attachment"], cells["provider"]) == (
        "'=a***@example.com",
        "'+receipt.pdf",
        "'@Klinik",
    )
    assert (cells["tax_amount"], cells["state"]) == ("9.00", "submitted")
    log.append(full)
    assert list(log.rows()) == [full]
    assert AuditRow.from_cells(full.to_cells()[:3]).state == "done"  # short row: defaults


def test_append_many_skips_known_and_repeated_jobs(tmp_path: Path):
    log = CsvAuditLog(tmp_path / "audit.csv")
    assert log.append_many([row("job-1"), row("job-2"), row("job-1", route="review")]) == 2
    assert log.append_many([row("job-2"), row("job-3")]) == 1
    assert log.append_many([]) == 0
    assert [(r.job_id, r.route) for r in log.rows()] == [
        ("job-1", "submitted"),
        ("job-2", "submitted"),
        ("job-3", "submitted"),
    ]


OLD_HEADER = (
    "job_id,email_id,received_at,submitted_at,ncb_reference,amount,service_date,"
    "invoice_number,policy_number,confidence,route,actor"
)


def test_a_file_with_the_old_header_keeps_its_columns(tmp_path: Path):
    """A file started before sender/attachment/... were added still reads and appends."""
    path = tmp_path / "audit.csv"
    path.write_text(
        OLD_HEADER
        + "\nold-1,m1,2024-12-18T10:40:05+08:00,,,150.00,,INV-1,POL-1,,submitted,system\n"
    )
    log = CsvAuditLog(path)
    log.append(row("job-2", sender="a***@example.com"))
    with path.open(newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == OLD_HEADER.split(",")
    assert all(len(cells) == len(lines[0]) for cells in lines)
    old, new = list(log.rows())
    assert (old.job_id, old.amount, old.invoice_number, old.route) == (
        "old-1",
        Decimal("150.00"),
        "INV-1",
        "submitted",
    )
    assert (new.job_id, new.policy_number, new.sender) == ("job-2", "POL-67890", None)
    assert log.contains("old-1") and log.contains("job-2")
