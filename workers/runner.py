"""``claims-ocr run``: the whole pipeline on one machine, as real Celery processes.

Starts the OCR worker, the submit + poll worker and beat (``celery -A workers.worker``).
Production (the default) starts only after :mod:`services.preflight` finds nothing
missing: Redis, NCB's URL and key, a named mailbox. ``--demo`` runs on the embedded
defaults instead: the bundled sample inbox, the NCB stand-in, Redis when ``REDIS_URL``
answers and an embedded SQLite broker otherwise. ``--once`` polls the mailbox once,
waits until every job is at rest, prints a JSON summary and exits.
"""

from __future__ import annotations

import json
import os
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
from services.demo import install_sample_inbox
from services.ledger import JobState, Ledger
from services.logs import get_logger
from services.mail import MaildirSource
from services.preflight import production_warnings, redact_url, startup_problems
from workers.wiring import Resources

log = get_logger(__name__)

#: States in which a job still has work ahead of it without a person.
WORKING_STATES = (
    JobState.RECEIVED,
    JobState.OCR_PENDING,
    JobState.EXTRACTED,
    JobState.READY,
    JobState.SUBMITTING,
    JobState.SUBMITTED,
)


class StartupRefused(Exception):
    """The settings name problems to fix first; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def demo_broker(settings: Settings) -> str:
    """Redis when it answers, else the embedded SQLite broker (demo only)."""
    if redis_answers(settings.celery_broker_url):
        return settings.celery_broker_url
    path = (settings.data_dir / "broker.sqlite").resolve()
    log.warning(
        "Redis does not answer: the demo uses the embedded broker",
        redis=redact_url(settings.celery_broker_url),
        broker=str(path),
    )
    return f"sqla+sqlite:///{path}"


class WorkerProcesses:
    """Celery worker (and beat) processes started with a given environment."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_worker(
        self, name: str, queues: str, concurrency: int, log_level: str
    ) -> subprocess.Popen[bytes]:
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
                log_level,
            ],
        )

    def start_beat(self, schedule_file: Path, log_level: str) -> subprocess.Popen[bytes]:
        return self._start("beat", ["beat", "-s", str(schedule_file), "-l", log_level])

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "--quiet", "-A", "workers.worker", *args],
            env={**self.env, "CLAIMS_OCR_PROCESS": name},
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
    """Start the pipeline; raises :class:`StartupRefused` before starting anything."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    broker = demo_broker(settings) if settings.demo else settings.celery_broker_url
    problems = startup_problems(settings, broker_answers=redis_answers(broker))
    if problems:
        raise StartupRefused(problems)
    for warning in production_warnings(settings):
        log.warning(warning)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.demo and settings.maildir_path is None and install_sample_inbox(settings.maildir):
        log.info("copied the bundled sample inbox", maildir=str(settings.maildir))
    ledger = Ledger(settings.ledger_url)
    ledger.migrate()

    with ExitStack() as stack:
        stack.callback(ledger.close)
        ncb_url = settings.ncb_api_base_url
        if settings.demo and not ncb_url:
            from services.demo.ncb_standin import StandinServer

            standin = StandinServer(
                api_key=settings.ncb_api_key.get_secret_value(),
                record_path=settings.data_dir / "ncb-standin.jsonl",
            )
            standin.start()
            stack.callback(standin.stop)
            ncb_url = standin.url
            log.info("NCB stand-in listening", url=ncb_url)

        overrides = {
            "CLAIMS_OCR_ENV": settings.env,
            "CELERY_BROKER_URL": broker,
            "NCB_API_BASE_URL": ncb_url,
            "CLAIMS_OCR_DATA_DIR": str(settings.data_dir.resolve()),
            "DATABASE_URL": settings.ledger_url,
            "MAILDIR_PATH": str(settings.maildir.resolve()),
            "LOG_LEVEL": settings.log_level,
        }
        if once:
            # A one-shot run should not wait a production-sized sweep interval to
            # notice that NCB came back or that a message went missing.
            overrides.setdefault("SWEEP_INTERVAL_S", os.environ.get("SWEEP_INTERVAL_S", "3"))
        workers = WorkerProcesses({**os.environ, **overrides}, settings.data_dir / "logs")
        stack.callback(workers.stop)
        level = settings.log_level
        workers.start_worker("ocr", "ocr", concurrency=1, log_level=level)
        workers.start_worker("submit", "submit,poll", concurrency=2, log_level=level)
        workers.start_beat(settings.data_dir / "celerybeat-schedule", log_level=level)
        if not once:
            log.info("claims-ocr running; Ctrl-C stops it", env=settings.env)
            return _serve_forever(workers)
        resources = Resources(settings.model_copy(update={"broker_url": broker}))
        stack.callback(resources.close)
        resources.dispatcher.poll()
        return _run_once(settings, ledger, workers, started_at, clock, timeout_s)


def _serve_forever(workers: WorkerProcesses) -> int:
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop["now"]:
            dead = workers.dead()
            if dead:
                log.error("worker process exited", dead=dead)
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    return 0


def _run_once(
    settings: Settings,
    ledger: Ledger,
    workers: WorkerProcesses,
    started_at: datetime,
    clock: float,
    timeout_s: float,
) -> int:
    deadline = time.monotonic() + timeout_s
    settled = crashed = False
    # Wait for the poll to record the emails, then for every job to come to rest.
    while time.monotonic() < deadline and not settled:
        time.sleep(1.0)
        if workers.dead():
            crashed = True
            log.error("worker process exited", dead=workers.dead(), logs=str(workers.log_dir))
            break
        settled = not _pending_emails(settings) and summary(ledger, started_at)["in_progress"] == 0
    if not settled and not crashed:
        log.error("jobs still in progress at the timeout", timeout_s=timeout_s)
    result: dict[str, float] = {**summary(ledger, started_at)}
    result["seconds"] = round(time.monotonic() - clock, 1)
    print(json.dumps(result), flush=True)
    return 0 if settled else 1


def _pending_emails(settings: Settings) -> bool:
    """True while the source still holds emails the poller has not marked done."""
    return any(True for _ in MaildirSource(settings.maildir).fetch())
