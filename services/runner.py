"""``claims-ocr run``: the whole pipeline on one machine, on embedded defaults.

Starts real Celery worker processes (OCR, submit + poll) and beat, over Redis when
``REDIS_URL`` answers and otherwise over an embedded SQLite broker, plus the NCB
stand-in when no ``NCB_API_BASE_URL`` is set. ``--once`` polls the mailbox once, waits
until every job is at rest, prints a JSON summary and exits.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import redis

from services.config import Settings
from services.ledger import JobState, Ledger

log = logging.getLogger(__name__)

#: States in which a job still has work ahead of it without a person.
WORKING_STATES = (
    JobState.RECEIVED,
    JobState.OCR_PENDING,
    JobState.EXTRACTED,
    JobState.READY,
    JobState.SUBMITTING,
    JobState.SUBMITTED,
)


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def choose_broker(settings: Settings) -> str:
    if redis_answers(settings.redis_url):
        return settings.redis_url
    path = (settings.data_dir / "broker.sqlite").resolve()
    log.warning("Redis at REDIS_URL does not answer: using the embedded broker (%s)", path)
    return f"sqla+sqlite:///{path}"


def prepare_inbox(settings: Settings) -> None:
    """On a first run with the default inbox, start from the bundled sample inbox."""
    if settings.maildir_path is not None or settings.maildir.exists():
        return
    from services.samples import SAMPLE_INBOX_DIR

    settings.maildir.mkdir(parents=True)
    for eml in sorted(SAMPLE_INBOX_DIR.glob("*.eml")):
        shutil.copy2(eml, settings.maildir / eml.name)
    log.info("copied the bundled sample inbox into %s", settings.maildir)


class WorkerProcesses:
    """Celery worker (and beat) processes started with a given environment."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_worker(self, name: str, queues: str, concurrency: int) -> subprocess.Popen[bytes]:
        return self._start(
            name,
            [
                "worker",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],
        )

    def start_beat(self, schedule_file: Path) -> subprocess.Popen[bytes]:
        return self._start("beat", ["beat", "-s", str(schedule_file), "-l", "info"])

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        self.procs[name] = proc
        return proc

    def stop(self, timeout_s: float = 30.0) -> None:
        """Warm shutdown (SIGTERM: finish the current task), then kill what is left."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def dead(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]


def summary(ledger: Ledger, since: datetime) -> dict[str, int]:
    s = ledger.summary(since=since)
    by = s.by_state
    return {
        "emails": s.emails,
        "attachments": s.attachments,
        "submitted": by[JobState.SUBMITTED] + by[JobState.DONE],
        "needs_review": by[JobState.NEEDS_REVIEW],
        "failed": by[JobState.FAILED],
        "duplicate": by[JobState.DUPLICATE],
        "skipped": by[JobState.SKIPPED],
        "rejected": by[JobState.REJECTED],
        "in_progress": sum(by[state] for state in WORKING_STATES),
    }


def run(settings: Settings, *, once: bool, timeout_s: float) -> int:
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepare_inbox(settings)
    ledger = Ledger(settings.ledger_url)
    ledger.migrate()
    broker = choose_broker(settings)

    with ExitStack() as stack:
        ncb_url = settings.ncb_api_base_url
        if not ncb_url:
            from services.ncb.standin import StandinServer

            standin = StandinServer(
                api_key=settings.ncb_api_key.get_secret_value(),
                record_path=settings.data_dir / "ncb-standin.jsonl",
            )
            standin.start()
            stack.callback(standin.stop)
            ncb_url = standin.url
            log.info("NCB stand-in listening on %s", ncb_url)

        env = {
            **os.environ,
            "CELERY_BROKER_URL": broker,
            "NCB_API_BASE_URL": ncb_url,
            "CLAIMS_OCR_DATA_DIR": str(settings.data_dir.resolve()),
            "DATABASE_URL": settings.ledger_url,
        }
        if once:
            # A one-shot run should not wait a production-sized sweep interval to
            # notice that NCB came back or that a message went missing.
            env.setdefault("SWEEP_INTERVAL_S", "3")
        workers = WorkerProcesses(env, settings.data_dir / "logs")
        stack.callback(workers.stop)
        workers.start_worker("ocr", "ocr", concurrency=1)
        workers.start_worker("submit", "submit,poll", concurrency=2)
        workers.start_beat(settings.data_dir / "celerybeat-schedule")
        if not once:
            log.info("claims-ocr running; Ctrl-C stops it (logs in %s)", workers.log_dir)
            return _serve_forever(workers)
        return _run_once(settings, ledger, workers, broker, started_at, clock, timeout_s)


def _serve_forever(workers: WorkerProcesses) -> int:
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop["now"]:
            dead = workers.dead()
            if dead:
                log.error("worker process(es) exited: %s", ", ".join(dead))
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    return 0


def _run_once(
    settings: Settings,
    ledger: Ledger,
    workers: WorkerProcesses,
    broker: str,
    started_at: datetime,
    clock: float,
    timeout_s: float,
) -> int:
    from celery import Celery

    client = Celery("claims_ocr", broker=broker)
    client.conf.task_routes = {"claims.*": {"queue": "poll"}}
    client.send_task("claims.poll", queue="poll")
    deadline = time.monotonic() + timeout_s
    settled = crashed = False
    # Wait for the poll to record the emails, then for every job to come to rest.
    while time.monotonic() < deadline and not settled:
        time.sleep(1.0)
        if workers.dead():
            crashed = True
            log.error(
                "worker process(es) exited: %s (see %s)", ", ".join(workers.dead()), workers.log_dir
            )
            break
        settled = not _pending_emails(settings) and summary(ledger, started_at)["in_progress"] == 0
    if not settled and not crashed:
        log.error("jobs were still in progress after %.0fs", timeout_s)
    result = summary(ledger, started_at)
    result["seconds"] = round(time.monotonic() - clock, 1)
    print(json.dumps(result), flush=True)
    return 0 if settled else 1


def _pending_emails(settings: Settings) -> bool:
    """True while the source still holds emails the poller has not marked done."""
    from services.mail import MaildirSource

    return any(True for _ in MaildirSource(settings.maildir).fetch())
