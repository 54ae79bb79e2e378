"""Helpers for the fault suite: a private redis-server, a private PostgreSQL database,
a ledger watcher that acts once mid-run, and the closing checks every fault test ends with.

The run itself is the end-to-end suite's: ``tests.e2e.test_pipeline`` starts
``python -m workers.cli run --demo --once`` with the same environment.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from services.demo import SAMPLE_INBOX_DIR
from services.ledger import WORKING_STATES, JobState, Ledger
from tests.support.ledger_fixtures import PG_ADMIN_DSN, PG_HOST

#: The three sample emails the fault tests process (three claims for NCB).
EMAILS = ["01_clinic_en_subject.eml", "02_pharmacy_ms_body.eml", "10_forwarded_tiff.eml"]


def make_inbox(data_dir: Path, names: list[str]) -> Path:
    inbox = data_dir / "inbox"
    inbox.mkdir(parents=True)
    for name in names:
        shutil.copy2(SAMPLE_INBOX_DIR / name, inbox / name)
    return inbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a free port, AOF fsynced on every write, so a
    SIGKILL loses nothing that was acknowledged; restarted on the same port and folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        # Opened in the folder, which holds the AOF: a second start appends to the log.
        log = (self.folder / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                assert self.proc.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not answer"
                time.sleep(0.1)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; what survives is what the AOF holds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database of the test's own: ``(name, SQLAlchemy URL)``,
    dropped (with FORCE) afterwards. Raises ``psycopg.OperationalError`` when the server
    does not answer (the caller skips)."""
    admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    name = f"claims_ocr_reliability_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name, f"postgresql+psycopg://postgres@{PG_HOST}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def terminate_backends(database: str) -> int:
    """Cut every connection to ``database`` (as a failover or a server restart does)."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def jobs_by_state(ledger_url: str) -> dict[JobState, int]:
    """Jobs per state (empty while the schema does not exist yet)."""
    ledger = Ledger(ledger_url)
    try:
        found = ledger.list_jobs(limit=1000).items
    except Exception:
        return {}
    finally:
        ledger.close()
    counts: dict[JobState, int] = {}
    for job in found:
        counts[job.state] = counts.get(job.state, 0) + 1
    return counts


@dataclass
class Watcher:
    """Polls the ledger of a running ``run`` in a thread and calls ``act`` with the jobs
    per state until it returns True (it acted). Timestamps let the test report timings."""

    proc: subprocess.Popen[str]
    ledger_url: str
    act: Callable[[dict[JobState, int]], bool]
    acted_at: float | None = None
    seen: dict[JobState, int] = field(default_factory=dict)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + 180
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                time.sleep(0.2)
                counts = jobs_by_state(self.ledger_url)
                if counts and self.act(counts):
                    self.seen = counts
                    self.acted_at = time.monotonic()
                    return
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def join(self) -> None:
        self.thread.join(30)
        if self.error is not None:
            raise self.error


def mid_run(counts: dict[JobState, int]) -> bool:
    """Jobs are recorded and at least one is still on its way (OCR or NCB still ahead)."""
    return any(counts.get(state, 0) for state in WORKING_STATES[:4])


def run_check(env: dict[str, str], record: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``claims-ocr check --ncb-record RECORD`` against the run's settings."""
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "check", "--ncb-record", str(record), "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_each_claim_once(ledger: Ledger, claims: list[dict], expected: int) -> None:
    """NCB holds each submitted job's claim exactly once; no job is still on its way."""
    keys = [c["idempotency_key"] for c in claims]
    assert len(keys) == len(set(keys)), f"NCB received a claim twice: {sorted(keys)}"
    done = ledger.list_jobs(states=[JobState.DONE], limit=1000).items
    assert sorted(keys) == sorted(job.id for job in done)
    assert len(done) == expected, f"{len(done)} claims done, expected {expected}"
    assert all(job.ncb_reference for job in done)
    assert not ledger.jobs_in(WORKING_STATES), "a job is still in progress"
