"""NCB faults and random process kills while claims arrive: the fault suite's short run.

``scripts/load_test.py --mode steady`` sends generated claims at a steady rate through
``claims-ocr run --demo`` while an NCB stand-in of its own cycles through every fault
(503, answers slower than the client's timeout, connections dropped mid-response,
connections refused, 429 with a Retry-After past the inline cap, 401) and a random Celery
process of the run (a worker, a pool child or beat) is SIGKILLed every few seconds. The
long run is the same command with more claims (README, "Reliability").

It passes only if the script's ``claims-ocr check`` finds every invariant holding (each
claim reached NCB once, one audit row and archive file per done job, nothing overdue),
every claim came to rest, and the faults and kills really happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = 6


def test_ncb_faults_and_random_kills_while_claims_arrive_lose_nothing(
    tmp_path: Path, redis_url: str
) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/load_test.py"),
            "--mode",
            "steady",
            "--claims",
            str(CLAIMS),
            "--rate",
            "1",
            "--ncb-faults",
            "--fault-window",
            "2",
            "--kill-every",
            "20",
            "--redis-url",
            redis_url,
            "--data-dir",
            str(tmp_path / "load"),
            "--json",
            str(report_path),
            "--timeout",
            "400",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert report_path.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads(report_path.read_text())["runs"]["steady"]
    assert proc.returncode == 0, f"{run['check_output']}\n{proc.stderr[-3000:]}"
    assert run["check_exit"] == 0 and run["runner_exit"] == 0
    assert run["submitted"] + run["needs_review"] == CLAIMS and not run["other"]
    assert run["submitted"] >= CLAIMS / 2
    # The faults were met, not just scheduled: every injected answer reached a submitter.
    assert {"503", "slow", "dropped", "down", "retry_after", "401"} <= set(run["ncb_faults"])
    assert {"503", "429", "401", "dropped"} <= set(run["ncb_statuses"])
    assert run["kills"] >= 1
