"""``claims-ocr run`` keeps its processes running and stops only when asked.

Real ``python -m workers.cli run --demo`` processes, real Celery children, real signals
and real Redis: a worker's main process is killed with SIGKILL and must come back while
the run goes on; SIGINT (even when inherited as ignored, as in a script's background job)
and SIGTERM stop the run cleanly with status 0; a ``--once`` run survives a dead worker
and still submits every claim exactly once. What the run creates is owner-only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.demo import SAMPLE_INBOX_DIR
from services.demo.ncb_standin import read_records
from services.ledger import JobState, Ledger
from tests.support.net import free_ports
from tests.support.processes import children, descendants
from workers.runner import GaveUp, RestartPolicy, WorkerProcesses

pytestmark = pytest.mark.slow

EMAILS = ["01_clinic_en_subject.eml", "02_pharmacy_ms_body.eml"]
ROOT = Path(__file__).resolve().parents[2]


def make_inbox(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy2(SAMPLE_INBOX_DIR / name, folder / name)
    return folder


def run_env(data_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CLAIMS_OCR_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "SWEEP_INTERVAL_S": "1",
        "POLL_INTERVAL_S": "3600",
        "PYTHONUNBUFFERED": "1",
        "LOG_FORMAT": "json",
        "API_PORT": str(free_ports(1)[0]),  # `run` serves the API; never the default 8000
    }
    for name in ("DATABASE_URL", "NCB_API_BASE_URL", "MAILDIR_PATH", "CELERY_BROKER_URL"):
        env.pop(name, None)
    env.update(extra)
    return env


def start_in_background(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """Like ``claims-ocr run ... &`` in a script: SIGINT arrives already ignored."""
    command = shlex.join([sys.executable, "-m", "workers.cli", "run", "--demo", *args])
    with log.open("w") as out:
        return subprocess.Popen(
            ["/bin/sh", "-c", f"trap '' INT; exec {command}"],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_family(proc: subprocess.Popen[str]) -> None:
    """After a failed check: kill the run and every process under it, leaving no orphans."""
    if proc.poll() is None:
        family = descendants(proc.pid)
        proc.kill()
        proc.wait()
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def submit_worker(run_pid: int) -> int | None:
    """The submit worker's main process among the run's children."""
    for kid in children(run_pid):
        if b"submit@" in _cmdline(kid) and _alive(kid):
            return kid
    return None


def wait_for(what: Callable[[], object], timeout_s: float, message: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(message)


def runner_events(log: Path) -> list[dict]:
    lines = log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def restarted(log: Path, child: str) -> bool:
    events = runner_events(log)
    died = [
        e
        for e in events
        if e["event"] == "child process died; restarting it"
        and e["child"] == child
        and e["exit"] == "SIGKILL"
        and e["level"] == "error"
    ]
    back = [
        e
        for e in events
        if e["event"] == "child process restarted" and e["child"] == child and e["restarts"] == 1
    ]
    return bool(died and back)


def assert_owner_only(*paths: Path) -> None:
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.name} is {oct(mode)}: readable beyond its owner"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_killed_worker_comes_back_and_the_run_stops_only_when_asked(
    tmp_path: Path, redis_url: str, stop_signal: signal.Signals
) -> None:
    data_dir = tmp_path / "data"  # the run creates it
    inbox = make_inbox(tmp_path / "inbox", EMAILS[:1])
    log = tmp_path / "run.log"
    env = run_env(data_dir, redis_url, MAILDIR_PATH=str(inbox))
    proc = start_in_background([], env, log)
    try:
        first = wait_for(lambda: submit_worker(proc.pid), 60, "the submit worker never started")
        assert isinstance(first, int)
        doomed = [first, *descendants(first)]
        os.kill(first, signal.SIGKILL)

        again = wait_for(
            lambda: (pid := submit_worker(proc.pid)) not in (None, first) and pid,
            30,
            "the submit worker was not restarted",
        )
        assert proc.poll() is None, "the run ended when one worker died"
        wait_for(lambda: restarted(log, "submit"), 10, "the restart was not logged")
        assert again != first

        # Everything the run and its children created is owner-only.
        logs = sorted((data_dir / "logs").glob("*.log"))
        assert {p.stem for p in logs} >= {"ocr", "submit", "beat"}
        assert_owner_only(data_dir, data_dir / "ledger.db", data_dir / "logs", *logs)

        family = [*doomed, *descendants(proc.pid)]
        celery = [pid for pid in family if b"celery" in _cmdline(pid)]
        assert len(celery) >= 3
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        kill_family(proc)

    # Nothing it started is left behind: the workers, their pools, beat.
    wait_for(
        lambda: not any(_alive(pid) for pid in family),
        5,
        f"processes left running: {[pid for pid in family if _alive(pid)]}",
    )
    events = runner_events(log)
    assert any(
        e["event"] == "stopping on request" and e["signal"] == stop_signal.name for e in events
    )


def test_once_survives_a_killed_worker_and_submits_each_claim_once(
    tmp_path: Path, redis_url: str
) -> None:
    data_dir = tmp_path / "data"
    make_inbox(data_dir / "inbox", EMAILS)
    log = tmp_path / "run.log"
    env = run_env(data_dir, redis_url)
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "run", "--demo", "--once", "--timeout", "120"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    killed = threading.Event()

    def kill_submit_worker_while_ocr_runs() -> None:
        """Kill it once the poll recorded the claims and before any of them is sent."""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            pid = submit_worker(proc.pid)
            try:
                ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
                try:
                    recorded = ledger.jobs_in([JobState.OCR_PENDING, JobState.EXTRACTED])
                    sent = ledger.jobs_in([JobState.SUBMITTING, JobState.SUBMITTED, JobState.DONE])
                finally:
                    ledger.close()
            except Exception:  # the ledger or its schema may not exist yet
                continue
            if pid and recorded and not sent:
                os.kill(pid, signal.SIGKILL)
                killed.set()
                return

    watcher = threading.Thread(target=kill_submit_worker_while_ocr_runs, daemon=True)
    watcher.start()
    try:
        out, _ = proc.communicate(timeout=150)
    finally:
        kill_family(proc)
    watcher.join(5)

    assert killed.is_set(), "the submit worker was never caught between poll and submit"
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert restarted(log, "submit")
    summary = json.loads(out.strip().splitlines()[-1])
    # Every claim came to rest; the ones sent (all after the kill) reached NCB once each.
    assert summary["in_progress"] == 0 and summary["failed"] == 0
    assert summary["submitted"] + summary["needs_review"] == len(EMAILS)
    assert summary["submitted"] >= 1
    claims = read_records(data_dir / "ncb-standin.jsonl")
    keys = [claim["idempotency_key"] for claim in claims]
    assert len(keys) == len(set(keys)), "a claim reached NCB twice"
    ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
    try:
        assert sorted(keys) == sorted(ledger.jobs_in([JobState.DONE]))
    finally:
        ledger.close()
    assert len(keys) == summary["submitted"]


def test_a_child_that_keeps_dying_makes_the_run_give_up(tmp_path: Path) -> None:
    """A broken install must not spin forever: N quick deaths in a row end the run."""
    policy = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, stable_after_s=30, give_up_after=4)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert RestartPolicy().delay(1) == 1.0 and RestartPolicy().delay(20) == 60.0

    workers = WorkerProcesses(os.environ, tmp_path / "logs", policy)
    workers.start("broken", [sys.executable, "-c", "raise SystemExit(3)"])
    workers.start("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    steady = workers.pid("steady")
    started = time.monotonic()
    try:
        with pytest.raises(GaveUp) as gave_up:
            while time.monotonic() - started < 20:
                workers.supervise()
                time.sleep(0.02)
        assert gave_up.value.name == "broken" and gave_up.value.deaths == 4
        assert workers.children["broken"].restarts == 3
        assert workers.pid("steady") == steady, "a healthy child was restarted"
    finally:
        workers.stop(timeout_s=5)
    assert not _alive(steady)
    assert not workers.children
