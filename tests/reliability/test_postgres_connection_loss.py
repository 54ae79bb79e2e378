"""The PostgreSQL ledger drops every connection mid-run, twice.

``claims-ocr run --demo --once`` runs on a PostgreSQL database of the test's own
(``DATABASE_URL=postgresql+psycopg://...``) with three sample emails. Once the poll has
recorded the jobs and they are still on their way, every backend connection to that
database is terminated (``pg_terminate_backend``, as a failover or a server restart
does); a second time two seconds later. The pool's pre-ping replaces dead idle
connections; a step that was mid-query fails and is re-queued by the sweep
(``SWEEP_INTERVAL_S=1``); every step is safe to repeat.

"Lost nothing, doubled nothing": the run ends with exit 0 and every job at rest, each of
the three claims reached NCB exactly once, and ``claims-ocr check`` finds no breach.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from services.demo.ncb_standin import read_records
from services.ledger import JobState, Ledger
from tests.e2e.test_pipeline import run_env, start_run
from tests.reliability.support import (
    EMAILS,
    Watcher,
    assert_each_claim_once,
    make_inbox,
    mid_run,
    postgres_database,
    run_check,
    terminate_backends,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_postgres_connections_cut_mid_run_lose_nothing(tmp_path: Path, redis_url: str) -> None:
    try:
        database = postgres_database()
        name, ledger_url = database.__enter__()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    proc = None
    try:
        data_dir = tmp_path / "data"
        make_inbox(data_dir, EMAILS)
        env = run_env(data_dir, redis_url, DATABASE_URL=ledger_url)
        proc = start_run(env, tmp_path)
        cut: list[int] = []

        def cut_connections_twice(counts: dict[JobState, int]) -> bool:
            if not mid_run(counts):
                return False
            cut.append(terminate_backends(name))
            time.sleep(2)
            cut.append(terminate_backends(name))
            return True

        watcher = Watcher(proc, ledger_url, cut_connections_twice)
        started = time.monotonic()
        out, err = proc.communicate(timeout=300)
        watcher.join()
        # The run itself rides out the cut too (it checks the ledger again a second later).
        assert proc.returncode == 0, f"run failed ({proc.returncode}):\n{err[-4000:]}"
        summary = json.loads(out.strip().splitlines()[-1])
        assert watcher.acted_at is not None, "the run ended before the connections were cut"
        assert cut[0] > 0, "no connection was open to cut"

        ledger = Ledger(ledger_url)
        try:
            claims = read_records(data_dir / "ncb-standin.jsonl")
            assert_each_claim_once(ledger, claims, expected=3)
        finally:
            ledger.close()
        assert summary["in_progress"] == 0 and summary["failed"] == 0
        assert summary["submitted"] == 3
        assert not list((data_dir / "inbox").glob("*.eml"))

        check = run_check(env, data_dir / "ncb-standin.jsonl", tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        print(
            json.dumps(
                {
                    "connections_cut": cut,
                    "states_when_cut": {str(k): v for k, v in watcher.seen.items()},
                    "run_s": round(time.monotonic() - started, 1),
                    "claims_once": len(claims),
                }
            )
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        database.__exit__(None, None, None)
