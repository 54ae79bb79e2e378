"""Claim data on disk is owner-only, even in a process started with a permissive umask.

The ledger (policy numbers, names, amounts), attachment bytes, the archive, the audit
log and the stand-in's record were 0644 in 0755 folders: readable by every local user.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.blobs import LocalBlobStore
from services.demo.ncb_standin import StandinServer
from services.ledger import Ledger
from services.ncb import ClaimSubmission, NcbClient
from services.records import AuditRow, CsvAuditLog, LocalArchive
from tests.support.ledger_helpers import new_job


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A process started from a shell with the common 0022 umask."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def assert_owner_only(root: Path) -> list[Path]:
    """Every folder and file under ``root`` (and ``root``) has no group or other bits."""
    seen = [root, *root.rglob("*")]
    loose = {
        str(p.relative_to(root.parent)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in seen
        if p.stat().st_mode & 0o077
    }
    assert loose == {}
    return seen


def test_blob_store_folders_and_files(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "data" / "blobs")
    key = blobs.put(b"receipt bytes")
    seen = assert_owner_only(tmp_path / "data")
    assert any(p.name == key for p in seen)


def test_archive_folders_files_and_index(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path / "data" / "archive")
    where = archive.store("job-1", "receipt.jpg", b"original", datetime(2024, 12, 15, tzinfo=UTC))
    seen = assert_owner_only(tmp_path / "data")
    assert Path(where) in seen and archive.find("job-1") == where


def test_audit_log_and_its_folder(tmp_path: Path) -> None:
    audit = CsvAuditLog(tmp_path / "data" / "audit" / "audit.csv")
    audit.append(
        AuditRow(
            job_id="job-1",
            email_id="mail-1",
            received_at=datetime(2024, 12, 15, tzinfo=UTC),
            route="submitted",
            amount=Decimal("150.00"),
            service_date=date(2024, 12, 15),
            policy_number="POL-1",
        )
    )
    assert (tmp_path / "data" / "audit" / "audit.csv") in assert_owner_only(tmp_path / "data")


def test_an_existing_loose_audit_log_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "audit.csv"
    path.touch(mode=0o644)
    CsvAuditLog(path).append(
        AuditRow(job_id="job-1", email_id="m", received_at=datetime.now(UTC), route="review")
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sqlite_ledger_and_its_wal_and_shm_files(tmp_path: Path) -> None:
    db = tmp_path / "data" / "ledger.db"
    with Ledger(f"sqlite:///{db}") as ledger:
        ledger.migrate()
        new_job(ledger)
        files = assert_owner_only(tmp_path / "data")
        # While a connection is open, WAL mode keeps both side files.
        assert {db, db.with_name("ledger.db-wal"), db.with_name("ledger.db-shm")} <= set(files)
        for path in (db, db.with_name("ledger.db-wal"), db.with_name("ledger.db-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_ledger_left_world_readable_by_an_older_run_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger(f"sqlite:///{db}") as ledger:
        ledger.migrate()
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    with Ledger(f"sqlite:///{db}") as ledger:
        new_job(ledger)
        assert_owner_only(tmp_path)


def test_standin_record_file(tmp_path: Path) -> None:
    record = tmp_path / "claims.jsonl"
    claim = ClaimSubmission(
        event_date=date(2024, 12, 15),
        amount=Decimal("150.00"),
        invoice_number="RCP-1",
        policy_number="POL-1",
        source_email_id="mail-1",
        source_filename="r.jpg",
        extraction_confidence=0.95,
    )
    with StandinServer(api_key="k", record_path=record) as ncb, NcbClient(ncb.url, "k") as c:
        assert c.submit("job-1", claim).status_code == 201
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
