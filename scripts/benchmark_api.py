"""How fast the admin API lists jobs on a ledger of realistic size, on SQLite and PostgreSQL.

Fills a fresh ledger (a SQLite file in a temporary folder; and a fresh PostgreSQL
database, created and dropped here, when 127.0.0.1:5432 answers) with ``--jobs`` jobs by
bulk insert, then times over real HTTP (uvicorn in a thread, one client, sequential):

* ``jobs first page``     GET /api/v1/jobs?limit=50
* ``jobs filtered``       GET /api/v1/jobs?state=needs_review&state=failed
                            &min_confidence=0.3&sort=-confidence
* ``jobs received 7d``    GET /api/v1/jobs?received_from=<7 days ago>&sort=-created_at
* ``jobs deep cursor``    GET /api/v1/jobs?cursor=<the job half-way down>
* ``exceptions``          GET /api/v1/exceptions?limit=50
* ``exceptions deep``     GET /api/v1/exceptions?cursor=<half-way down the queue>

and prints p50/p95 in milliseconds per case and database. Every request also counts the
matching jobs (``total``) and checks the API key, as the real ones do.

    .venv/bin/python scripts/benchmark_api.py --jobs 100000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.api.app import create_app
from services.blobs import LocalBlobStore
from services.config import Settings
from services.ledger import JobState, Ledger, job_cursor
from services.ledger.models import Email, Job, JobEvent
from services.logs import configure_logging
from services.threaded_server import ThreadedServer

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
S = JobState
#: (state, share) of a ledger that has run for a while: about 10% waits for review.
STATE_MIX: tuple[tuple[JobState, float], ...] = (
    (S.DONE, 0.60),
    (S.NEEDS_REVIEW, 0.10),
    (S.SKIPPED, 0.08),
    (S.DUPLICATE, 0.05),
    (S.SUBMITTED, 0.05),
    (S.REJECTED, 0.04),
    (S.READY, 0.03),
    (S.FAILED, 0.03),
    (S.RECEIVED, 0.02),
)
REVIEW_CODES = ("low_confidence", "missing_policy_number", "missing_invoice_number", "ncb_400")
CHUNK = 5000


class NoDispatch:
    """The benchmark approves nothing; a dispatcher is only required to build the app."""

    def poll(self) -> None: ...
    def ocr(self, job_ids: Sequence[str]) -> None: ...
    def submit(self, job_id: str) -> None: ...
    def finalize(self, job_id: str) -> None: ...
    def deliver(self) -> None: ...


def _rows(n: int, rng: random.Random, now: datetime) -> Iterator[tuple[dict[str, Any], ...]]:
    """(email, job, event...) rows for ``n`` jobs, one email per job."""
    states = [s for s, _ in STATE_MIX]
    weights = [w for _, w in STATE_MIX]
    for _ in range(n):
        created = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        state = rng.choices(states, weights)[0]
        email_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
        read = state not in (S.RECEIVED, S.SKIPPED, S.DUPLICATE)
        confidence = round(rng.betavariate(8, 2), 4) if read else None
        updated = created + timedelta(seconds=rng.uniform(5, 600))
        code = {
            S.NEEDS_REVIEW: rng.choice(REVIEW_CODES),
            S.FAILED: "corrupt_pdf",
            S.SKIPPED: "tiny_inline_image",
            S.DUPLICATE: "duplicate",
            S.REJECTED: "rejected",
        }.get(state)
        received = created - timedelta(seconds=rng.uniform(1, 300))
        email = {
            "id": email_id,
            "source": "maildir",
            "source_id": uuid.uuid4().hex,
            "message_id": f"<{uuid.uuid4().hex}@bench>",
            "received_at": received,
            "sender_hash": uuid.uuid4().hex * 2,
            "attachment_count": 1,
            "created_at": created,
        }
        job = {
            "id": job_id,
            "email_id": email_id,
            "part_index": 0,
            "filename": "receipt.jpg",
            "content_type": "image/jpeg",
            "size_bytes": rng.randint(20_000, 2_000_000),
            "sha256": uuid.uuid4().hex * 2,
            "blob_key": uuid.uuid4().hex * 2,
            "state": state,
            "reason_code": code,
            "retry_count": 0,
            "confidence": confidence,
            "route": ("review" if state is S.NEEDS_REVIEW else "submit") if read else None,
            "page_count": 1 if read else None,
            "received_at": received,
            "created_at": created,
            "updated_at": updated,
        }
        events = [
            {"job_id": job_id, "at": created, "from_state": None, "to_state": S.RECEIVED},
            {"job_id": job_id, "at": updated, "from_state": S.RECEIVED, "to_state": state},
        ]
        for event in events:
            event["actor"] = "bench"
        yield email, job, *events[: 1 if state is S.RECEIVED else 2]


def fill(ledger: Ledger, n: int, seed: int = 7) -> float:
    """Insert ``n`` jobs (and their emails and events) in bulk; returns the seconds taken."""
    started = time.perf_counter()
    rng = random.Random(seed)
    now = datetime.now(UTC)
    emails: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []

    def flush() -> None:
        with ledger.engine.begin() as conn:
            conn.execute(insert(Email), emails)
            conn.execute(insert(Job), jobs)
            conn.execute(insert(JobEvent), events)
        emails.clear()
        jobs.clear()
        events.clear()

    for email, job, *trail in _rows(n, rng, now):
        emails.append(email)
        jobs.append(job)
        events.extend(trail)
        if len(jobs) >= CHUNK:
            flush()
    if jobs:
        flush()
    return time.perf_counter() - started


def _timed(
    client: httpx.Client, path: str, params: Any, headers: dict[str, str], n: int
) -> list[float]:
    for _ in range(min(5, n)):
        client.get(path, params=params, headers=headers).raise_for_status()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path, params=params, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(fraction * len(ordered)) - 1)]


def measure(ledger: Ledger, folder: Path, requests: int) -> list[tuple[str, float, float, int]]:
    """Each case's (name, p50 ms, p95 ms, items on the page)."""
    settings = Settings(REDIS_URL="redis://127.0.0.1:1/0", API_RATE_LIMIT="1000000/minute")
    app = create_app(
        ledger=ledger,
        blobs=LocalBlobStore(folder / "blobs"),
        dispatcher=NoDispatch(),
        settings=settings,
    )
    key = ledger.apikeys.create(f"bench-{uuid.uuid4().hex[:6]}", "viewer").key
    headers = {"Authorization": f"Bearer {key}"}
    total = ledger.list_jobs(limit=1).total
    middle = ledger.list_jobs(limit=1, offset=total // 2).items[0]
    queue = ledger.list_jobs(states=["needs_review"], limit=1)
    queue_middle = ledger.list_jobs(states=["needs_review"], limit=1, offset=queue.total // 2)
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    cases: list[tuple[str, str, Any]] = [
        ("jobs first page", "/api/v1/jobs", {"limit": 50}),
        (
            "jobs filtered",
            "/api/v1/jobs",
            [
                ("state", "needs_review"),
                ("state", "failed"),
                ("min_confidence", "0.3"),
                ("sort", "-confidence"),
                ("limit", "50"),
            ],
        ),
        (
            "jobs received 7d",
            "/api/v1/jobs",
            {"received_from": week_ago, "sort": "-created_at", "limit": 50},
        ),
        (
            "jobs deep cursor",
            "/api/v1/jobs",
            {"cursor": job_cursor("created_at", middle), "limit": 50},
        ),
        ("exceptions", "/api/v1/exceptions", {"limit": 50}),
        (
            "exceptions deep",
            "/api/v1/exceptions",
            {"cursor": job_cursor("created_at", queue_middle.items[0]), "limit": 50},
        ),
    ]
    results = []
    with ThreadedServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for name, path, params in cases:
            times = _timed(client, path, params, headers, requests)
            items = len(client.get(path, params=params, headers=headers).json()["items"])
            results.append((name, statistics.median(times), _percentile(times, 0.95), items))
    return results


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh database's URL, dropped afterwards; None when PostgreSQL does not answer."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"claims_ocr_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def run_one(
    label: str, url: str, folder: Path, jobs: int, requests: int, extra: Sequence[str] = ()
) -> None:
    with Ledger(url) as ledger:
        ledger.migrate()
        seconds = fill(ledger, jobs)
        with ledger.engine.begin() as conn:
            for ddl in extra:
                conn.exec_driver_sql(ddl)
            conn.exec_driver_sql("ANALYZE")
        print(f"\n{label}: {jobs:,} jobs inserted in {seconds:.1f} s", flush=True)
        print(f"{'case':<20} {'p50 ms':>8} {'p95 ms':>8} {'items':>6}")
        for name, p50, p95, items in measure(ledger, folder, requests):
            print(f"{name:<20} {p50:>8.1f} {p95:>8.1f} {items:>6}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the ledger (100000)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per case (100)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--extra-ddl",
        action="append",
        default=[],
        metavar="SQL",
        help="run this after filling (e.g. a CREATE INDEX to try before it goes into a "
        "migration); repeatable",
    )
    args = parser.parse_args(argv)
    configure_logging("WARNING", "console")  # the table only, not an access line per request
    with tempfile.TemporaryDirectory(prefix="claims-ocr-bench-") as tmp:
        folder = Path(tmp)
        sqlite_url = f"sqlite:///{folder / 'ledger.db'}"
        run_one("sqlite", sqlite_url, folder, args.jobs, args.requests, args.extra_ddl)
        if not args.no_postgres:
            with postgres_database() as url:
                if url is None:
                    print("\npostgresql: not reachable at 127.0.0.1:5432; skipped")
                else:
                    run_one("postgresql", url, folder, args.jobs, args.requests, args.extra_ddl)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
