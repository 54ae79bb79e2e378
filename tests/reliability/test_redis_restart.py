"""Redis, the broker and result store, dies mid-run and comes back.

The test starts its own ``redis-server`` (AOF on, fsync on every write, no RDB) on a
free port and runs ``claims-ocr run --demo --once`` against it with three sample emails.
Once the poll has recorded the jobs and they are still on their way (OCR or NCB ahead),
Redis is killed with SIGKILL, left down for a few seconds and restarted on the same port
from the same AOF folder.

"Lost nothing, doubled nothing": the run still ends with exit 0 and every job at rest;
each of the three claims reached NCB exactly once (one Idempotency-Key each, each one a
``done`` job with its NCB reference); and ``claims-ocr check`` finds no breach (every done
email recorded, one audit row and one archived file per done job, nothing overdue).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from services.demo.ncb_standin import read_records
from services.ledger import JobState, Ledger
from tests.e2e.test_pipeline import finish_run, run_env, start_run
from tests.reliability.support import (
    EMAILS,
    RedisServer,
    Watcher,
    assert_each_claim_once,
    make_inbox,
    mid_run,
    run_check,
)

pytestmark = pytest.mark.slow

REDIS_DOWN_S = 6.0


def test_redis_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    make_inbox(data_dir, EMAILS)
    server = RedisServer(tmp_path / "redis")
    ledger_url = f"sqlite:///{data_dir / 'ledger.db'}"
    timings: dict[str, float] = {}
    proc = None
    try:
        server.start()
        env = run_env(data_dir, server.url, STALE_AFTER_S="20")
        proc = start_run(env, tmp_path)

        def kill_redis_for_a_while(counts: dict[JobState, int]) -> bool:
            if not mid_run(counts):
                return False
            server.kill()
            timings["killed"] = time.monotonic()
            time.sleep(REDIS_DOWN_S)
            server.start()
            timings["back"] = time.monotonic()
            return True

        watcher = Watcher(proc, ledger_url, kill_redis_for_a_while)
        summary = finish_run(proc)
        ended = time.monotonic()
        watcher.join()
        assert watcher.acted_at is not None, "the run ended before Redis could be killed"

        ledger = Ledger(ledger_url)
        claims = read_records(data_dir / "ncb-standin.jsonl")
        assert_each_claim_once(ledger, claims, expected=3)
        assert summary["in_progress"] == 0 and summary["failed"] == 0
        assert summary["submitted"] == 3
        # Nothing is left in the mailbox: every email was recorded and marked done.
        assert not list((data_dir / "inbox").glob("*.eml"))

        check = run_check(env, data_dir / "ncb-standin.jsonl", tmp_path)
        assert check.returncode == 0, check.stdout + check.stderr
        print(
            json.dumps(
                {
                    "redis_down_s": round(timings["back"] - timings["killed"], 1),
                    "states_when_killed": {str(k): v for k, v in watcher.seen.items()},
                    "run_ended_s_after_redis_back": round(ended - timings["back"], 1),
                    "claims_once": len(claims),
                }
            )
        )
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.kill()
