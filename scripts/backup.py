"""Back up and restore a claims-ocr deployment's state: the ledger and the blob store.

    python scripts/backup.py backup [--database-url URL] [--blob-dir DIR] [--out DIR]
    python scripts/backup.py restore BACKUP [--database-url URL] [--blob-dir DIR] [--force]

A backup is one timestamped folder: the ledger (SQLite through the online backup API, so
workers may keep writing; PostgreSQL with ``pg_dump -Fc``), a tar of ``BLOB_DIR`` and
``manifest.json`` with the sha256 of every file and blob and the row count of every table.
The ledger is copied *before* the blobs: a blob is stored before the job that names it is
recorded, so every blob the copied ledger refers to is in the copied blob store.

Restore checks every checksum first, then fills an *empty* target (a missing or empty
SQLite file, a database without tables, a missing or empty blob folder) and refuses a
non-empty one unless ``--force``. The defaults are this environment's settings
(``DATABASE_URL`` or the SQLite ledger under ``CLAIMS_OCR_DATA_DIR``, and ``BLOB_DIR``).
Everything written is readable by its owner only: it is claim data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, inspect, select, table
from sqlalchemy.engine import URL, make_url

MANIFEST = "manifest.json"
SQLITE_FILE = "ledger.sqlite3"
PG_DUMP_FILE = "ledger.pgdump"
BLOBS_FILE = "blobs.tar"
FORMAT_VERSION = 1
#: Half-written blobs (services.blobs writes to a temp file, then renames it).
INCOMPLETE_BLOB_PREFIX = ".incoming-"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


# --- small helpers --------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blob_files(blob_dir: Path) -> Iterator[Path]:
    """Every stored blob under ``blob_dir``, in a stable order (temp files left out)."""
    if not blob_dir.is_dir():
        return
    for path in sorted(blob_dir.rglob("*")):
        if path.is_file() and not path.name.startswith(INCOMPLETE_BLOB_PREFIX):
            yield path


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError(f"not a SQLite file: {url.render_as_string()}")
    return Path(url.database)


def libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string for pg_dump/pg_restore, and the password as PGPASSWORD.

    The password stays out of the command line (``ps`` shows it to every user).
    """
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def table_counts(url: URL) -> dict[str, int]:
    """Rows per table: the manifest's record of what the ledger held."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = sorted(inspect(conn).get_table_names())
            return {
                name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())
                for name in names
            }
    finally:
        engine.dispose()


def _run(argv: list[str], env: dict[str, str]) -> None:
    if shutil.which(argv[0]) is None:
        raise BackupError(f"{argv[0]} is not installed (Debian: postgresql-client)")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")


# --- backup ---------------------------------------------------------------------------------


def backup(database_url: str, blob_dir: Path, out: Path, *, now: datetime | None = None) -> Path:
    """Write one backup folder under ``out`` and return it."""
    url = make_url(database_url)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    folder = out / f"claims-ocr-{stamp}"
    if folder.exists():
        raise BackupError(f"{folder} exists already")
    folder.mkdir(parents=True, mode=0o700)

    if is_sqlite(url):
        source = sqlite_path(url)
        if not source.is_file():
            raise BackupError(f"no SQLite ledger at {source}")
        ledger_file = folder / SQLITE_FILE
        with (
            # Not read-only: a reader of a WAL database may need to create its -shm file.
            _closing(sqlite3.connect(source)) as src,
            _closing(sqlite3.connect(ledger_file)) as dst,
        ):
            src.backup(dst)
        kind = "sqlite"
    else:
        ledger_file = folder / PG_DUMP_FILE
        dsn, env = libpq(url)
        _run(["pg_dump", "-Fc", "--no-owner", "--no-privileges", "-f", str(ledger_file), dsn], env)
        kind = "postgresql"
    counts = table_counts(url)

    blobs: dict[str, dict[str, Any]] = {}
    with tarfile.open(folder / BLOBS_FILE, "w") as tar:
        for path in blob_files(blob_dir):
            name = path.relative_to(blob_dir).as_posix()
            blobs[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            tar.add(path, arcname=name, recursive=False)

    files = {path.name: sha256_file(path) for path in (ledger_file, folder / BLOBS_FILE)}
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "ledger": {"kind": kind, "file": ledger_file.name, "tables": counts},
        "blobs": {
            "file": BLOBS_FILE,
            "count": len(blobs),
            "bytes": sum(b["bytes"] for b in blobs.values()),
            "files": blobs,
        },
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return folder


class _closing:
    """``with`` for sqlite3 connections (their own ``with`` commits but does not close)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *_: object) -> None:
        self.conn.close()


# --- restore --------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest, after checking every file it lists against its checksum."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} is not a claims-ocr backup (no {MANIFEST})")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    for name, expected in manifest["files"].items():
        file = folder / name
        if not file.is_file() or sha256_file(file) != expected:
            raise BackupError(f"{file} is missing or does not match its checksum")
    return manifest


def ledger_is_empty(url: URL) -> bool:
    if is_sqlite(url):
        path = sqlite_path(url)
        if not path.exists() or path.stat().st_size == 0:
            return True
    return not table_counts(url)


def blob_dir_is_empty(blob_dir: Path) -> bool:
    return not blob_dir.exists() or not any(blob_dir.iterdir())


def restore(folder: Path, database_url: str, blob_dir: Path, *, force: bool = False) -> None:
    """Restore ``folder`` into the ledger at ``database_url`` and into ``blob_dir``."""
    manifest = read_manifest(folder)
    url = make_url(database_url)
    kind = "sqlite" if is_sqlite(url) else "postgresql"
    if manifest["ledger"]["kind"] != kind:
        raise BackupError(
            f"the backup holds a {manifest['ledger']['kind']} ledger; the target is {kind}"
        )
    if not force:
        busy = []
        if not ledger_is_empty(url):
            busy.append(f"the ledger {url.render_as_string()} has tables")
        if not blob_dir_is_empty(blob_dir):
            busy.append(f"the blob folder {blob_dir} is not empty")
        if busy:
            raise BackupError("refusing to overwrite: " + "; ".join(busy) + " (use --force)")

    ledger_file = folder / manifest["ledger"]["file"]
    if kind == "sqlite":
        target = sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if force:  # start from nothing: no pages or WAL frames of the old ledger remain
            for suffix in ("", "-wal", "-shm"):
                target.with_name(target.name + suffix).unlink(missing_ok=True)
        with (
            _closing(sqlite3.connect(f"file:{ledger_file}?mode=ro", uri=True)) as src,
            _closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
        target.chmod(0o600)
    else:
        dsn, env = libpq(url)
        argv = ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
        argv += ["--clean", "--if-exists"] if force else ["--single-transaction"]
        _run([*argv, "-d", dsn, str(ledger_file)], env)

    if force and blob_dir.exists():
        shutil.rmtree(blob_dir)
    blob_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tarfile.open(folder / manifest["blobs"]["file"]) as tar:
        tar.extractall(blob_dir, filter="data")
    for name, blob in manifest["blobs"]["files"].items():
        if sha256_file(blob_dir / name) != blob["sha256"]:
            raise BackupError(f"restored blob {name} does not match its checksum")

    restored = table_counts(url)
    if restored != manifest["ledger"]["tables"]:
        raise BackupError(f"row counts differ after restore: {restored}")


# --- command line ---------------------------------------------------------------------------


def _settings_defaults() -> tuple[str, Path]:
    from services.config import get_settings

    settings = get_settings()
    return settings.ledger_url, settings.blob_path


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="backup.py",
        description=(
            "Back up or restore the claims-ocr ledger (SQLite or PostgreSQL) and blob store. "
            "Defaults come from the settings (DATABASE_URL, CLAIMS_OCR_DATA_DIR, BLOB_DIR)."
        ),
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    make = commands.add_parser(
        "backup",
        help="write a timestamped backup folder (ledger, blobs.tar, manifest.json)",
        description=(
            "Copy the ledger (SQLite: online backup API; PostgreSQL: pg_dump -Fc) and then "
            "every blob into OUT/claims-ocr-YYYYMMDDTHHMMSSZ/, with a manifest of sha256 "
            "checksums and row counts. Safe while the pipeline runs. Prints the folder."
        ),
    )
    make.add_argument("--out", type=Path, default=Path("backups"), help="parent folder (backups)")
    back = commands.add_parser(
        "restore",
        help="restore a backup folder into an empty ledger and blob folder",
        description=(
            "Check every checksum in BACKUP/manifest.json, then restore the ledger "
            "(SQLite: into the file; PostgreSQL: pg_restore into the database) and the "
            "blobs. Refuses a target that is not empty unless --force (which replaces it)."
        ),
    )
    back.add_argument("backup", type=Path, metavar="BACKUP", help="a folder made by `backup`")
    back.add_argument(
        "--force", action="store_true", help="replace a non-empty ledger and blob folder"
    )
    for sub in (make, back):
        sub.add_argument(
            "--database-url", default=None, help="the ledger (default: the settings' ledger)"
        )
        sub.add_argument("--blob-dir", type=Path, default=None, help="default: BLOB_DIR")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.umask(0o077)
    database_url, blob_dir = args.database_url, args.blob_dir
    if database_url is None or blob_dir is None:
        default_url, default_blobs = _settings_defaults()
        database_url = database_url or default_url
        blob_dir = blob_dir or default_blobs
    try:
        if args.command == "backup":
            folder = backup(database_url, blob_dir, args.out)
            manifest = json.loads((folder / MANIFEST).read_text())
            summary = {
                "backup": str(folder),
                "tables": manifest["ledger"]["tables"],
                "blobs": manifest["blobs"]["count"],
                "blob_bytes": manifest["blobs"]["bytes"],
            }
            print(json.dumps(summary))
        else:
            restore(args.backup, database_url, blob_dir, force=args.force)
            print(json.dumps({"restored": str(args.backup), "blob_dir": str(blob_dir)}))
    except BackupError as exc:
        print(f"backup.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
