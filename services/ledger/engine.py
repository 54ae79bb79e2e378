"""Database engines for the ledger, set up for several worker processes writing at once."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

from services.private_files import PRIVATE_FILE, open_private

log = logging.getLogger(__name__)

#: Execution option that marks a connection as about to write (see ``_begin``).
WRITE_OPTION = "ledger_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    SQLite gets WAL (readers never block the writer), a busy timeout (writers queue
    instead of failing) and foreign keys; a write transaction starts with
    ``BEGIN IMMEDIATE`` so that its read-then-write cannot fail half-way with
    "database is locked" when another process wrote in between.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)

    if (
        parsed.database
        and parsed.database != ":memory:"
        and not parsed.database.startswith("file:")
    ):
        _private_sqlite_files(Path(parsed.database))
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN (pysqlite's own is too late and deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Switch to WAL, waiting out other processes that open the same file at that moment.

    SQLite answers "database is locked" without calling the busy handler while another
    connection switches the journal mode or recovers the WAL, which is exactly what
    several workers starting at once do; so wait and try again, up to the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def _private_sqlite_files(path: Path) -> None:
    """Make the database file owner-only before SQLite opens it (it holds claim data).

    SQLite creates its ``-wal`` and ``-shm`` files with the database file's mode, so a
    0600 database (created here, or tightened if an older run left it 0644) keeps them
    0600 whatever the umask; ones left over from before are tightened too.
    """
    os.close(open_private(path, os.O_RDWR))
    for suffix in ("-wal", "-shm", "-journal"):
        extra = path.with_name(path.name + suffix)
        try:
            if extra.stat().st_mode & 0o077:
                os.chmod(extra, PRIVATE_FILE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not make %s owner-only: %s", suffix, type(exc).__name__)
