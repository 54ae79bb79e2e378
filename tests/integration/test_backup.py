"""scripts/backup.py: a backup restored into empty targets equals what was backed up.

A ledger with jobs in several states, their events, an outbox and blobs is backed up with
the real command line, restored into an empty SQLite file or a fresh PostgreSQL database
and an empty blob folder, and compared table by table, row by row, and blob by blob.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, inspect, select, table, text

from services.blobs import LocalBlobStore
from services.ledger import Ledger
from tests.support.ledger_fixtures import PG_ADMIN_DSN, PG_HOST
from tests.support.ledger_helpers import drive, new_email, new_job

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "backup.py"
STATES = ["received", "needs_review", "ready", "done", "rejected", "failed@ready"]


def run_backup(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fill(url: str, blob_dir: Path) -> None:
    """Jobs in several states (with their event trails), blobs for each, an outbox row."""
    blobs = LocalBlobStore(blob_dir)
    with Ledger(url) as ledger:
        ledger.migrate()
        email = new_email(ledger)
        for index, state in enumerate(STATES):
            key = blobs.put(f"receipt {index} {uuid.uuid4()}".encode() * 100)
            job = new_job(ledger, email_id=email, part_index=index, sha256=key)
            drive(ledger, job, state)
            if state == "done":
                ledger.outbox.enqueue(job, {"audit": {"row": index}, "archive": {"blob": key}})
    (blob_dir / "ab").mkdir(exist_ok=True)
    (blob_dir / "ab" / ".incoming-half-written").write_bytes(b"not a blob yet")


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, in a stable order."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            out = {}
            for name in sorted(inspect(conn).get_table_names()):
                result = conn.execute(select(text("*")).select_from(table(name)))
                out[name] = sorted((tuple(row) for row in result), key=repr)
            return out
    finally:
        engine.dispose()


def blob_bytes(blob_dir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(blob_dir).as_posix(): p.read_bytes()
        for p in blob_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".incoming-")
    }


def backup_and_restore(source_url: str, target_url: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """Fill, back up and restore; return the source and target blob folders and the backup."""
    source_blobs, target_blobs = tmp_path / "blobs", tmp_path / "restored-blobs"
    fill(source_url, source_blobs)
    made = run_backup(
        "backup", "--database-url", source_url, "--blob-dir", source_blobs, "--out", tmp_path / "b"
    )
    assert made.returncode == 0, made.stderr
    folder = Path(json.loads(made.stdout)["backup"])
    restored = run_backup(
        "restore", folder, "--database-url", target_url, "--blob-dir", target_blobs
    )
    assert restored.returncode == 0, restored.stderr
    return source_blobs, target_blobs, folder


def assert_same(source_url: str, target_url: str, source_blobs: Path, target_blobs: Path) -> None:
    before, after = rows(source_url), rows(target_url)
    assert set(before) >= {"emails", "jobs", "job_events", "record_outbox"}
    assert before["jobs"] and before["job_events"] and before["record_outbox"]
    assert after == before
    assert blob_bytes(source_blobs)
    assert blob_bytes(target_blobs) == blob_bytes(source_blobs)


def test_sqlite_backup_restores_every_row_and_blob(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    target_url = f"sqlite:///{tmp_path / 'restored' / 'ledger.db'}"
    source_blobs, target_blobs, folder = backup_and_restore(source_url, target_url, tmp_path)
    assert_same(source_url, target_url, source_blobs, target_blobs)

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["ledger"]["kind"] == "sqlite"
    assert manifest["blobs"]["count"] == len(STATES)
    assert manifest["ledger"]["tables"]["jobs"] == len(STATES)
    assert oct((folder / "ledger.sqlite3").stat().st_mode & 0o777) == "0o600"
    # The restored ledger is a working one: the ledger opens it and sees every job.
    with Ledger(target_url) as ledger:
        ledger.migrate()
        assert sum(ledger.counts().values()) == len(STATES)


def test_restore_refuses_a_non_empty_target_unless_forced(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    target_url = f"sqlite:///{tmp_path / 'restored.db'}"
    source_blobs, target_blobs, folder = backup_and_restore(source_url, target_url, tmp_path)

    again = run_backup("restore", folder, "--database-url", target_url, "--blob-dir", target_blobs)
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr and "--force" in again.stderr

    # A ledger changed since is put back as it was with --force.
    with Ledger(target_url) as ledger:
        new_job(ledger)
    (target_blobs / "stray").write_bytes(b"x")
    forced = run_backup(
        "restore", folder, "--database-url", target_url, "--blob-dir", target_blobs, "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert_same(source_url, target_url, source_blobs, target_blobs)


def test_restore_refuses_a_damaged_backup(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    source_blobs = tmp_path / "blobs"
    fill(source_url, source_blobs)
    made = run_backup(
        "backup", "--database-url", source_url, "--blob-dir", source_blobs, "--out", tmp_path / "b"
    )
    folder = Path(json.loads(made.stdout)["backup"])
    with (folder / "blobs.tar").open("r+b") as tar:
        tar.seek(600)
        tar.write(b"corrupted")
    target_blobs = tmp_path / "restored-blobs"
    target = tmp_path / "restored.db"
    refused = run_backup(
        "restore", folder, "--database-url", f"sqlite:///{target}", "--blob-dir", target_blobs
    )
    assert refused.returncode == 1
    assert "checksum" in refused.stderr
    assert not target.exists() and not target_blobs.exists()


@pytest.fixture
def fresh_databases() -> Iterator[tuple[str, str]]:
    """Two new, empty PostgreSQL databases (source and target), dropped afterwards."""
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore not installed (apt-get install postgresql-client)")
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}: {exc}")
    names = [f"claims_ocr_backup_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        source, target = (f"postgresql+psycopg://postgres@{PG_HOST}/{n}" for n in names)
        yield source, target
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            for name in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@pytest.mark.postgres
def test_postgresql_backup_restores_every_row_and_blob(
    fresh_databases: tuple[str, str], tmp_path: Path
) -> None:
    source_url, target_url = fresh_databases
    source_blobs, target_blobs, folder = backup_and_restore(source_url, target_url, tmp_path)
    assert_same(source_url, target_url, source_blobs, target_blobs)
    assert json.loads((folder / "manifest.json").read_text())["ledger"]["kind"] == "postgresql"

    # The append-only trail's triggers came along: the restored trail refuses an UPDATE.
    engine = create_engine(target_url)
    try:
        with pytest.raises(Exception, match=r"append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE job_events SET actor = 'x'"))
    finally:
        engine.dispose()

    # A non-empty database is refused.
    again = run_backup("restore", folder, "--database-url", target_url, "--blob-dir", target_blobs)
    assert again.returncode == 1 and "has tables" in again.stderr
