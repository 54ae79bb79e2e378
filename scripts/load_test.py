#!/usr/bin/env python3
"""Load test: N generated claim emails through the whole pipeline with the stand-ins.

Each claim is a unique email (its own seeded receipt JPEG, Message-ID and policy number in
the subject) dropped into the inbox of a fresh data directory; ``claims-ocr run --demo``
(real Celery workers and beat, the NCB stand-in, the SQLite ledger or ``--database-url``)
processes them. Two modes:

- burst: every email is in the inbox before the run starts (``run --demo --once``);
- steady: emails are moved into the inbox at ``--rate`` claims/s while ``run --demo``
  serves (``POLL_INTERVAL_S=1``); it is stopped with SIGTERM once every job is at rest.

Reports claims/min, received->submitted latency p50/p95/p99 (the job's first ledger event
to its ``submitted`` event), how many went to review, the peak RSS of the runner and all
its children (sampled every 0.5 s), and the verdict of ``claims-ocr check`` (exit 1 if it
fails). OCR dominates: about 1.8 s per claim on 2 (shared) CPU cores, so the default
1,000 claims take roughly 30 minutes per mode (both: about an hour; rendering the emails
adds ~30 s). 1 claim/s is more than 2 cores keep up with, so steady then queues up too.
Try ``--claims 40 --mode burst`` (~1.5 min) first.

Faults under load (steady mode): ``--ncb-faults`` puts an NCB stand-in of the script's own
in front of the run and cycles it through 503s, answers slower than the client's timeout,
refused connections, connections dropped mid-response, 429 with a Retry-After past the
inline cap, and 401s, a healthy window between each; ``--kill-every S`` SIGKILLs a random
Celery process of the run (a worker, a pool child or beat) every S seconds. NCB's pauses
are compressed to seconds (``FAULT_ENV``). Both stop once the last claim arrived, every
NCB fault was applied and half the claims reached NCB, so the rest drains through a
healthy NCB; the checker then proves nothing was lost or doubled. The fault suite's long
run, about ten minutes:

    .venv/bin/python scripts/load_test.py --mode steady --claims 300 --rate 0.5 \
        --ncb-faults --kill-every 30
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.demo.ncb_standin import StandinServer  # noqa: E402
from services.demo.receipts import random_spec, render_receipt, to_jpeg  # noqa: E402
from services.demo.sample_inbox import (  # noqa: E402
    _POLICY,
    INBOX_ADDRESS,
    _build_message,
    _Part,
)
from services.ledger import WHOLE_EMAIL_PART, WORKING_STATES, JobState, Ledger  # noqa: E402

BASE_SEED = 7_000_000
SUBMITTED = {JobState.SUBMITTED, JobState.DONE}


# -- claims --------------------------------------------------------------------------


def claim_email(index: int, run_tag: str) -> bytes:
    """One unique claim email: a seeded receipt, its own Message-ID and policy number."""
    seed = BASE_SEED + index
    spec = random_spec(random.Random(seed))
    jpeg = to_jpeg(render_receipt(spec, seed=seed))
    part = _Part(f"receipt-{index}.jpg", "image/jpeg", jpeg, "jpeg", receipts=[spec])
    return claim_message(index, run_tag, part)


def claim_message(index: int, run_tag: str, part: _Part, prefix: str = "load") -> bytes:
    """A member's claim email carrying ``part``, numbered ``index`` (Message-ID, policy)."""
    policy_number = f"POL-{10000 + index}"
    msg = _build_message(
        sender=f"Member {index} <member{index}@example.com>",
        to=INBOX_ADDRESS,
        subject=f"Medical claim - Policy No: {policy_number} / Member ID: MB-{500000 + index}",
        body=f"Hi,\n\nPlease find my receipt attached.\n\nPolicy No: {policy_number}\n",
        html=None,
        parts=[part],
        date=format_datetime(datetime.now(UTC)),
        message_id=f"<{prefix}-{run_tag}-{index:06d}@claims-ocr.example>",
    )
    return msg.as_bytes(policy=_POLICY)


def write_claims(folder: Path, count: int, run_tag: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"claim-{index:06d}.eml"
        path.write_bytes(claim_email(index, run_tag))
        paths.append(path)
    return paths


# -- memory --------------------------------------------------------------------------


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Max over time of the summed VmRSS of ``pid`` and all its descendants."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak_kib = 0
        self.peak_processes = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = _descendants(self.pid)
            total = sum(_rss_kib(p) for p in pids)
            if total > self.peak_kib:
                self.peak_kib, self.peak_processes = total, len(pids)
            self._stop_event.wait(self.every_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# -- faults --------------------------------------------------------------------------

#: NCB's pauses compressed from minutes to seconds, so a fault cycle fits a short run; a
#: sweep quick to re-send what a killed process left behind.
FAULT_ENV = {
    "NCB_TIMEOUT_S": "2",
    "NCB_MAX_RETRY_AFTER_S": "2",
    "NCB_AUTH_PAUSE_S": "5",
    "NCB_BREAKER_COOLDOWN_S": "2",
    "NCB_RETRY_BASE_DELAY_S": "0.1",
    "NCB_RETRY_MAX_DELAY_S": "1",
    "SWEEP_INTERVAL_S": "2",
    "STALE_AFTER_S": "30",
    # Our kills, not a poison document: a job may be taken again more often.
    "MAX_OCR_ATTEMPTS": "10",
}
#: One fault cycle. The answers (503, a dropped connection, 429 with a Retry-After past
#: the inline cap, 401) are queued together for the next submissions, so they reach the
#: submitter however the claims are timed; then NCB is slow, then down, for a window each.
NCB_ANSWERS = ("503", "dropped", "retry_after", "401")
NCB_FAULTS = (*NCB_ANSWERS, "slow", "down")
_FAULTY_SUBMISSIONS = 3  # of each answer


class NcbFaults(threading.Thread):
    """Runs fault cycles on the stand-in, a healthy ``window_s`` between the phases, and
    a healthy spell after each cycle until NCB has accepted a claim."""

    def __init__(self, server: StandinServer, window_s: float) -> None:
        super().__init__(daemon=True, name="ncb-faults")
        self.server, self.window_s = server, window_s
        self.applied: list[str] = []  # each fault once it was met (answers) or ran out
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            accepted = len(self.server.state.claims)
            self._queue_answers()
            for kind in ("slow", "down"):
                if self._stop_event.wait(self.window_s):
                    return
                self._apply(kind)
                if self._stop_event.wait(self.window_s):
                    return
                self._heal()
                self.applied.append(kind)
            # NCB stays healthy until it has taken a claim: each cycle lets work through
            # (the held claims come back after NCB's pauses, and the sweep re-sends them).
            while len(self.server.state.claims) <= accepted:
                if self._stop_event.wait(0.5):
                    return

    def _queue_answers(self) -> None:
        """Queue every answer fault, then wait while submissions meet them in order."""
        state = self.server.state
        state.fail_next(503, _FAULTY_SUBMISSIONS)
        state.drop_next(_FAULTY_SUBMISSIONS)
        cap = float(FAULT_ENV["NCB_MAX_RETRY_AFTER_S"])
        state.fail_next(429, _FAULTY_SUBMISSIONS, retry_after_s=cap + self.window_s)
        state.fail_next(401, _FAULTY_SUBMISSIONS)
        total, recorded = len(NCB_ANSWERS) * _FAULTY_SUBMISSIONS, 0
        while not self._stop_event.wait(0.2):
            met = (total - state.pending_faults()) // _FAULTY_SUBMISSIONS
            self.applied.extend(NCB_ANSWERS[recorded:met])
            recorded = met
            if met == len(NCB_ANSWERS):
                return

    def _apply(self, kind: str) -> None:
        if kind == "slow":
            self.server.state.set_latency(float(FAULT_ENV["NCB_TIMEOUT_S"]) + 1.5)
        elif kind == "down":
            self.server.stop()

    def _heal(self) -> None:
        self.server.state.clear_faults()
        self.server.start()  # after "down"; a no-op while it serves

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self._heal()


def _celery_processes(root: int) -> list[int]:
    """The run's Celery processes: worker main processes, their pool children, beat."""
    found = []
    for pid in _descendants(root)[1:]:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"celery" in argv:
            found.append(pid)
    return found


class RandomKills(threading.Thread):
    """SIGKILLs a random Celery process of the run every ``every_s`` (seeded choice)."""

    def __init__(self, root: int, every_s: float, seed: int = 13) -> None:
        super().__init__(daemon=True, name="random-kills")
        self.root, self.every_s = root, every_s
        self.random = random.Random(seed)
        self.kills = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            candidates = _celery_processes(self.root)
            if not candidates:
                continue
            try:
                os.kill(self.random.choice(candidates), signal.SIGKILL)
                self.kills += 1
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# -- one run -------------------------------------------------------------------------


@dataclass
class RunResult:
    mode: str
    claims: int
    data_dir: str
    wall_s: float = 0.0
    span_s: float = 0.0
    claims_per_min: float = 0.0
    submitted: int = 0
    needs_review: int = 0
    other: dict[str, int] = field(default_factory=dict)
    latency_s: dict[str, float | None] = field(default_factory=dict)
    inbox_to_submitted_s: dict[str, float | None] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    peak_rss_processes: int = 0
    runner_exit: int | None = None
    check_exit: int | None = None
    check_output: str = ""
    ncb_faults: list[str] = field(default_factory=list)
    ncb_statuses: dict[str, int] = field(default_factory=dict)
    kills: int = 0

    @property
    def ok(self) -> bool:
        return self.check_exit == 0 and self.runner_exit == 0


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 2)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in (50, 95, 99)}


def _env(data_dir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("CELERY_BROKER_URL", "NCB_API_BASE_URL", "MAILDIR_PATH", "DATABASE_URL"):
        env.pop(name, None)
    env.update(
        CLAIMS_OCR_ENV="demo",
        CLAIMS_OCR_DATA_DIR=str(data_dir),
        REDIS_URL=args.redis_url,
        POLL_INTERVAL_S="1",
        # Beside another run on this machine: an API port of its own, no /metrics ports.
        API_PORT=str(_free_port()),
        METRICS_PORT="0",
    )
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    if args.ncb_faults or args.kill_every:
        env.update(FAULT_ENV)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ledger_url(data_dir: Path, args: argparse.Namespace) -> str:
    return args.database_url or f"sqlite:///{data_dir / 'ledger.db'}"


def _jobs(ledger: Ledger, since: datetime) -> list[Any]:
    jobs: list[Any] = []
    while True:
        page = ledger.list_jobs(created_from=since, limit=500, offset=len(jobs))
        jobs.extend(page.items)
        if len(jobs) >= page.total or not page.items:
            return jobs


def _at_rest(ledger: Ledger, since: datetime, claims: int, inbox: Path) -> bool:
    if any(inbox.glob("*.eml")):
        return False
    jobs = [j for j in _jobs(ledger, since) if j.part_index != WHOLE_EMAIL_PART]
    return len(jobs) >= claims and not any(j.state in WORKING_STATES for j in jobs)


def run_mode(mode: str, args: argparse.Namespace, data_dir: Path) -> RunResult:
    result = RunResult(mode, args.claims, str(data_dir))
    inbox, staging = data_dir / "inbox", data_dir / "staging"
    run_tag = f"{mode}-{os.getpid()}-{int(time.time())}"
    started = time.monotonic()
    print(f"[{mode}] rendering {args.claims} claim emails ...", file=sys.stderr, flush=True)
    staged = write_claims(staging, args.claims, run_tag)
    inbox.mkdir(parents=True, exist_ok=True)  # exists, so the sample inbox is not copied
    if mode == "burst":
        for path in staged:
            os.replace(path, inbox / path.name)
    print(f"[{mode}] rendered in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

    env = _env(data_dir, args)
    ncb = None
    if args.ncb_faults:
        ncb = StandinServer(record_path=data_dir / "ncb-standin.jsonl").start()
        env["NCB_API_BASE_URL"] = ncb.url
    since = datetime.now(UTC)
    argv = [sys.executable, "-m", "workers.cli", "run", "--demo"]
    timeout_s = args.timeout or 300 + 10 * args.claims
    if mode == "burst":
        argv += ["--once", "--timeout", str(timeout_s)]
    arrivals: dict[str, datetime] = {}
    with (data_dir / "runner.log").open("ab") as log_file:
        clock = time.monotonic()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        sampler = RssSampler(proc.pid)
        sampler.start()
        faults = NcbFaults(ncb, window_s=args.fault_window) if ncb is not None else None
        killer = RandomKills(proc.pid, args.kill_every) if args.kill_every else None
        for thread in (faults, killer):
            if thread is not None:
                thread.start()

        def stop_faults() -> None:
            for thread in (faults, killer):
                if thread is not None and thread.is_alive():
                    thread.stop()

        def faults_cycled() -> bool:
            return faults is None or len(faults.applied) >= len(NCB_FAULTS)

        def faults_may_stop(submitted: int) -> bool:
            """Faults end once every kind was applied and half the claims reached NCB
            under them; the rest then drain through a healthy NCB."""
            return faults_cycled() and submitted >= args.claims / 2

        try:
            if mode == "burst":
                result.runner_exit = proc.wait(timeout=timeout_s + 120)
            else:
                result.runner_exit = _serve_steady(
                    proc,
                    args,
                    staged,
                    inbox,
                    data_dir,
                    since,
                    timeout_s,
                    arrivals,
                    faults_may_stop,
                    stop_faults,
                    faults_cycled,
                )
        finally:
            stop_faults()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sampler.stop()
            if ncb is not None:
                result.ncb_statuses = _statuses(ncb.state.requests)
                ncb.stop()
        if faults is not None:
            result.ncb_faults = faults.applied
        if killer is not None:
            result.kills = killer.kills
        result.wall_s = round(time.monotonic() - clock, 1)
    result.peak_rss_mib = round(sampler.peak_kib / 1024, 1)
    result.peak_rss_processes = sampler.peak_processes
    _measure(result, _ledger_url(data_dir, args), since, arrivals)

    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "check",
            "--ncb-record",
            str(data_dir / "ncb-standin.jsonl"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    result.check_exit = check.returncode
    result.check_output = (check.stdout + check.stderr).strip()
    return result


def _serve_steady(
    proc: subprocess.Popen[bytes],
    args: argparse.Namespace,
    staged: list[Path],
    inbox: Path,
    data_dir: Path,
    since: datetime,
    timeout_s: float,
    arrivals: dict[str, datetime],
    faults_may_stop: Callable[[int], bool],
    stop_faults: Callable[[], None],
    faults_cycled: Callable[[], bool],
) -> int:
    """Feed the inbox at ``--rate``, wait until every job is at rest and the fault cycle
    has run through (jobs may come to rest during its last window), then SIGTERM.

    Faults stop once ``faults_may_stop(submitted)`` says so (never before the last
    arrival)."""
    db_file = data_dir / "ledger.db"
    while not args.database_url and not db_file.exists():  # the runner migrates it
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.2)
    time.sleep(2.0)  # let the workers and beat come up before the first arrival
    first = time.monotonic()
    for n, path in enumerate(staged):
        delay = first + n / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        target = inbox / path.name
        os.replace(path, target)
        now = time.time()
        os.utime(target, (now, now))  # delivery time = arrival, for the inbox's order
        arrivals[path.name] = datetime.fromtimestamp(now, UTC)
        if proc.poll() is not None:
            return proc.returncode
    deadline = time.monotonic() + timeout_s
    with Ledger(_ledger_url(data_dir, args)) as ledger:
        while not (_at_rest(ledger, since, len(staged), inbox) and faults_cycled()):
            submitted = sum(j.state in SUBMITTED for j in _jobs(ledger, since))
            if faults_may_stop(submitted):
                stop_faults()
            if proc.poll() is not None:
                return proc.returncode
            if time.monotonic() > deadline:
                print("[steady] timed out waiting for jobs to rest", file=sys.stderr)
                break
            time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=120)


def _measure(result: RunResult, url: str, since: datetime, arrivals: dict[str, datetime]) -> None:
    latencies, from_inbox = [], []
    first_at: datetime | None = None
    last_at: datetime | None = None
    with Ledger(url) as ledger:
        jobs = [j for j in _jobs(ledger, since) if j.part_index != WHOLE_EMAIL_PART]
        for summary in jobs:
            if summary.state in SUBMITTED:
                result.submitted += 1
            elif summary.state is JobState.NEEDS_REVIEW:
                result.needs_review += 1
            else:
                result.other[summary.state.value] = result.other.get(summary.state.value, 0) + 1
            job = ledger.get_job(summary.id)
            times = [_utc(e.at) for e in job.events]
            if not times:
                continue
            first_at = min(first_at or times[0], times[0])
            rest = next(
                (_utc(e.at) for e in job.events if e.to_state not in WORKING_STATES), times[-1]
            )
            if summary.state in SUBMITTED:
                rest = next(_utc(e.at) for e in job.events if e.to_state is JobState.SUBMITTED)
                latencies.append((rest - times[0]).total_seconds())
                name = _file_of(job.email.message_id)
                arrived = arrivals.get(name) if name else None
                if arrived is not None:
                    from_inbox.append((rest - arrived).total_seconds())
            last_at = max(last_at or rest, rest)
    if first_at and last_at and last_at > first_at:
        result.span_s = round((last_at - first_at).total_seconds(), 1)
        result.claims_per_min = round(len(jobs) / result.span_s * 60, 1)
    result.latency_s = _percentiles(latencies)
    if arrivals:
        result.inbox_to_submitted_s = _percentiles(from_inbox)


def _statuses(requests: list[dict[str, Any]]) -> dict[str, int]:
    """How NCB answered: submissions per status (``dropped`` for a cut connection)."""
    counts: dict[str, int] = {}
    for request in requests:
        status = str(request.get("status"))
        counts[status] = counts.get(status, 0) + 1
    return counts


def _file_of(message_id: str | None) -> str | None:
    """``<load-TAG-000042@...>`` -> ``claim-000042.eml``."""
    if not message_id or "@" not in message_id:
        return None
    number = message_id.split("@", 1)[0].rsplit("-", 1)[-1]
    return f"claim-{number}.eml" if number.isdigit() else None


# -- report --------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(results: list[RunResult]) -> None:
    header = (
        f"{'mode':7} {'claims':>6} {'wall s':>7} {'claims/min':>10} {'p50 s':>7} {'p95 s':>7} "
        f"{'p99 s':>7} {'submitted':>9} {'review':>6} {'other':>5} {'peak RSS MiB':>12}  check"
    )
    print(header)
    for r in results:
        lat = r.latency_s
        print(
            f"{r.mode:7} {r.claims:6d} {r.wall_s:7.1f} {r.claims_per_min:10.1f} "
            f"{_fmt(lat.get('p50')):>7} {_fmt(lat.get('p95')):>7} {_fmt(lat.get('p99')):>7} "
            f"{r.submitted:9d} {r.needs_review:6d} {sum(r.other.values()):5d} "
            f"{r.peak_rss_mib:12.1f}  {'OK' if r.check_exit == 0 else 'FAIL'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--claims", type=int, default=1000, help="claim emails per mode (1000)")
    parser.add_argument("--mode", choices=("burst", "steady", "both"), default="both")
    parser.add_argument("--rate", type=float, default=1.0, help="steady arrivals, claims/s (1.0)")
    parser.add_argument(
        "--data-dir", type=Path, help="where each mode's data goes (default: a new temp dir)"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/8",
        help="Redis for the broker and breaker; the demo falls back to an embedded broker "
        "when it does not answer (redis://127.0.0.1:6379/8)",
    )
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database for the ledger (default: SQLite)"
    )
    parser.add_argument("--timeout", type=float, help="give up after S (300 + 10 s per claim)")
    parser.add_argument(
        "--ncb-faults",
        action="store_true",
        help="steady only: cycle an NCB stand-in of our own through its faults while claims arrive",
    )
    parser.add_argument(
        "--fault-window",
        type=float,
        default=4.0,
        help="seconds NCB is slow or down, and healthy between faults (4)",
    )
    parser.add_argument(
        "--kill-every",
        type=float,
        default=0.0,
        help="steady only: SIGKILL a random Celery process of the run every S seconds",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    if args.claims < 1 or args.rate <= 0:
        parser.error("--claims must be >= 1 and --rate > 0")
    if (args.ncb_faults or args.kill_every) and args.mode != "steady":
        parser.error(
            "--ncb-faults and --kill-every need --mode steady (faults stop after "
            "the last arrival so the run can drain)"
        )
    if args.database_url and args.mode == "both":
        parser.error("with --database-url run one --mode at a time (the checker reads it all)")
    base = (args.data_dir or Path(tempfile.mkdtemp(prefix="claims-ocr-load-"))).resolve()
    if base == ROOT / "data" or ROOT / "data" in base.parents:
        parser.error("--data-dir must not be the repository's data/")
    modes = ["burst", "steady"] if args.mode == "both" else [args.mode]
    for mode in modes:
        if (base / mode).exists() and any((base / mode).iterdir()):
            parser.error(f"{base / mode} is not empty; pick another --data-dir")

    results = []
    for mode in modes:
        result = run_mode(mode, args, base / mode)
        print(f"[{mode}] claims-ocr check: {result.check_output}", flush=True)
        results.append(result)
    for r in results:
        shutil.rmtree(Path(r.data_dir) / "staging", ignore_errors=True)

    report = {
        "machine": {"cpus": os.cpu_count(), "ocr": "CPU"},
        "rate_per_s": args.rate,
        "runs": {r.mode: {k: v for k, v in vars(r).items() if k != "mode"} for r in results},
    }
    print_table(results)
    for r in results:
        if r.ncb_faults or r.kills:
            print(
                f"[{r.mode}] NCB faults: {', '.join(r.ncb_faults) or 'none'}; NCB answered "
                f"{r.ncb_statuses}; Celery processes killed: {r.kills}"
            )
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
