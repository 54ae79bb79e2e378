"""``claims-ocr run``: the whole pipeline on one machine, as real Celery processes.

Starts the OCR worker, the submit + poll worker and beat (``celery -A workers.worker``),
and, unless ``--once``, the admin API (``claims-ocr api`` on ``API_HOST:API_PORT``).
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
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import redis
from kombu import Connection, Queue
from sqlalchemy.exc import DBAPIError

from services.config import Settings
from services.demo import install_sample_inbox
from services.dispatch import DispatchError
from services.ledger import WORKING_STATES, JobState, Ledger
from services.logs import get_logger
from services.mail import MaildirSource
from services.preflight import production_warnings, redact_url, startup_problems
from services.private_files import private_dirs
from services.sentry import init_sentry
from workers.app import QUEUES, transport_options
from workers.multiproc import MULTIPROC_ENV, fresh_dir
from workers.wiring import Resources

log = get_logger(__name__)
T = TypeVar("T")


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
    url = f"sqla+sqlite:///{path}"
    private_dirs(path.parent)  # a first run: the data folder is not there yet
    declare_queues(url)
    return url


def declare_queues(url: str) -> None:
    """Create the embedded broker's tables and queues before any worker starts.

    kombu's SQL transport creates them on first use; four processes doing that at once on
    a new file race (a UNIQUE constraint error in one of them), so the parent does it
    alone first.
    """
    with Connection(url, transport_options=transport_options(url)) as connection:
        channel = connection.channel()
        for name in QUEUES:
            Queue(name)(channel).declare()


@dataclass(frozen=True)
class RestartPolicy:
    """How a child that died is brought back, and when to stop trying.

    A child that dies is restarted after ``first_delay_s``, doubling with each death in a
    row up to ``max_delay_s``. A death after ``stable_after_s`` of uptime starts the count
    again. ``give_up_after`` deaths in a row, each before ``stable_after_s``, mean it cannot
    run here (a broken install, a wrong setting): the run gives up rather than spin.
    """

    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    stable_after_s: float = 60.0
    give_up_after: int = 10

    def delay(self, deaths_in_a_row: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, deaths_in_a_row - 1))


class GaveUp(Exception):
    """A child kept dying soon after each start; ``name`` says which."""

    def __init__(self, name: str, deaths: int) -> None:
        super().__init__(f"{name} died {deaths} times in a row soon after starting")
        self.name = name
        self.deaths = deaths


@dataclass
class _Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    started: float
    restarts: int = 0
    deaths_in_a_row: int = 0
    #: When a dead child is due to start again (``None`` while it runs).
    restart_at: float | None = None


def exit_reason(returncode: int) -> str:
    """``exit 3`` or ``SIGKILL``: how a child ended, for the log."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit {returncode}"


class WorkerProcesses:
    """Celery worker (and beat) processes, kept running until :meth:`stop`.

    :meth:`supervise` (called by the run's loop about once a second) restarts a child that
    died, with the backoff of :class:`RestartPolicy`, and raises :class:`GaveUp` when one
    keeps dying. Each child's output is appended to ``log_dir/NAME.log``. With
    ``metrics_dir``, each child counts its metrics in ``metrics_dir/NAME``
    (``PROMETHEUS_MULTIPROC_DIR``), emptied each time it starts.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        policy: RestartPolicy | None = None,
        *,
        metrics_dir: Path | None = None,
    ) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.policy = policy or RestartPolicy()
        self.metrics_dir = metrics_dir
        self.children: dict[str, _Child] = {}
        #: Each child's own settings on top of ``env`` (e.g. its METRICS_PORT).
        self.child_env: dict[str, dict[str, str]] = {}

    def start_worker(
        self, name: str, queues: str, concurrency: int, log_level: str, *, metrics_port: int = 0
    ) -> subprocess.Popen[bytes]:
        self.child_env[name] = {"METRICS_PORT": str(metrics_port)}
        return self.start(
            name,
            celery_argv(
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
            ),
        )

    def start_api(self, host: str, port: int) -> subprocess.Popen[bytes]:
        """The admin API, supervised like the workers (``claims-ocr api``)."""
        argv = [sys.executable, "-m", "workers.cli", "api", "--host", host, "--port", str(port)]
        return self.start("api", argv)

    def start_beat(
        self, schedule_file: Path, log_level: str, *, metrics_port: int = 0
    ) -> subprocess.Popen[bytes]:
        self.child_env["beat"] = {"METRICS_PORT": str(metrics_port)}
        return self.start("beat", celery_argv("beat", "-s", str(schedule_file), "-l", log_level))

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` as the child ``name`` and keep it running."""
        proc = self._spawn(name, argv)
        self.children[name] = _Child(name, argv, proc, started=time.monotonic())
        return proc

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**self.env, **self.child_env.get(name, {}), "CLAIMS_OCR_PROCESS": name}
        if self.metrics_dir is not None:
            env[MULTIPROC_ENV] = str(fresh_dir(self.metrics_dir / name))
        with (self.log_dir / f"{name}.log").open("ab") as out:
            return subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def pid(self, name: str) -> int | None:
        """The running child's pid (``None`` while it waits to be restarted)."""
        child = self.children[name]
        return child.proc.pid if child.restart_at is None else None

    def supervise(self) -> None:
        """Restart children that died (after their backoff); :class:`GaveUp` if one can't run."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is None:
                returncode = child.proc.poll()
                if returncode is not None:
                    self._schedule_restart(child, returncode, now)
            elif now >= child.restart_at:
                child.proc = self._spawn(child.name, child.argv)
                child.started = time.monotonic()
                child.restart_at = None
                child.restarts += 1
                log.warning(
                    "child process restarted",
                    child=child.name,
                    pid=child.proc.pid,
                    restarts=child.restarts,
                )

    def _schedule_restart(self, child: _Child, returncode: int, now: float) -> None:
        uptime = now - child.started
        if uptime >= self.policy.stable_after_s:
            child.deaths_in_a_row = 0
        child.deaths_in_a_row += 1
        if child.deaths_in_a_row >= self.policy.give_up_after:
            log.error(
                "child process keeps dying; giving up",
                child=child.name,
                exit=exit_reason(returncode),
                deaths_in_a_row=child.deaths_in_a_row,
                restarts=child.restarts,
                logs=str(self.log_dir / f"{child.name}.log"),
            )
            raise GaveUp(child.name, child.deaths_in_a_row)
        delay = self.policy.delay(child.deaths_in_a_row)
        child.restart_at = now + delay
        log.error(
            "child process died; restarting it",
            child=child.name,
            pid=child.proc.pid,
            exit=exit_reason(returncode),
            uptime_s=round(uptime, 1),
            restarts=child.restarts,
            deaths_in_a_row=child.deaths_in_a_row,
            restart_in_s=delay,
        )

    def stop(self, timeout_s: float = 30.0, hurry: Callable[[], bool] = lambda: False) -> None:
        """Warm shutdown (SIGTERM: finish the current task), then kill what is left.

        ``hurry`` returning True (a second Ctrl-C) cuts the wait short.
        """
        procs = [c.proc for c in self.children.values() if c.restart_at is None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if hurry():
                break
            time.sleep(0.1)
        for name, child in self.children.items():
            if child.proc.poll() is None:
                log.warning("child process did not stop in time; killing it", child=name)
                child.proc.kill()
            child.proc.wait()
        self.children.clear()


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` yet (so the API can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def celery_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "--quiet", "-A", "workers.worker", *args]


class StopRequest:
    """SIGINT and SIGTERM ask the run to stop: the loops see it and shut down in order.

    Both handlers are installed explicitly: a run started in the background from a script
    inherits SIGINT as ignored, and would otherwise not stop on Ctrl-C or ``kill -INT``.
    SIGHUP (the terminal closed) stops it too, unless it is ignored (``nohup``).
    """

    def __init__(self) -> None:
        self.signals: list[int] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        wanted = [signal.SIGINT, signal.SIGTERM]
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            wanted.append(signal.SIGHUP)
        for sig in wanted:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    def __bool__(self) -> bool:
        return bool(self.signals)

    @property
    def name(self) -> str:
        return signal.Signals(self.signals[0]).name if self.signals else ""

    def hurry(self) -> bool:
        """A second request: stop waiting for tasks to finish."""
        return len(self.signals) > 1


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


def metrics_ports(first: int) -> dict[str, int]:
    """Each child's ``/metrics`` port: METRICS_PORT for the OCR worker, +1 for the submit
    worker, +2 for beat (the API serves its own on API_PORT); all 0 (off) when it is 0."""
    return {name: first + i if first else 0 for i, name in enumerate(("ocr", "submit", "beat"))}


def run(settings: Settings, *, once: bool, timeout_s: float) -> int:
    """Start the pipeline; raises :class:`StartupRefused` before starting anything."""
    # Owner-only files: the ledger, blobs, logs and archive hold claimants' data, and the
    # children inherit the mask.
    os.umask(0o077)
    init_sentry(settings, "runner")
    stop = StopRequest()
    stop.install()
    try:
        return _run(settings, once=once, timeout_s=timeout_s, stop=stop)
    finally:
        stop.restore()


def _run(settings: Settings, *, once: bool, timeout_s: float, stop: StopRequest) -> int:
    started_at = datetime.now(UTC)
    clock = time.monotonic()
    broker = demo_broker(settings) if settings.demo else settings.celery_broker_url
    problems = startup_problems(settings, broker_answers=redis_answers(broker))
    if not once and not port_free(settings.api_host, settings.api_port):
        problems.append(
            f"API_PORT {settings.api_port} on {settings.api_host} is in use (another "
            "claims-ocr run?); stop it or set API_PORT"
        )
    if problems:
        raise StartupRefused(problems)
    for warning in production_warnings(settings):
        log.warning(warning)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    folder_demo = settings.demo and settings.mail_source == "maildir" and not settings.maildir_path
    if folder_demo and install_sample_inbox(settings.maildir):
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

        google: dict[str, str] = {}
        if settings.demo and settings.uses_google and not settings.google_api_root_url:
            from services.demo.google_demo import start_google_standin

            google_standin, google = start_google_standin(settings)
            stack.callback(google_standin.stop)
            log.info("Google stand-in listening", url=google_standin.url)

        overrides = {
            **google,
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
        workers = WorkerProcesses(
            {**os.environ, **overrides},
            settings.data_dir / "logs",
            metrics_dir=fresh_dir(settings.data_dir.resolve() / "metrics"),
        )
        stack.callback(workers.stop, hurry=stop.hurry)
        level = settings.log_level
        ports = metrics_ports(settings.metrics_port)
        workers.start_worker("ocr", "ocr", settings.ocr_processes, level, metrics_port=ports["ocr"])
        workers.start_worker("submit", "submit,poll", 2, level, metrics_port=ports["submit"])
        workers.start_beat(
            settings.data_dir / "celerybeat-schedule", level, metrics_port=ports["beat"]
        )
        if not once:
            workers.start_api(settings.api_host, settings.api_port)
            url = f"http://{settings.api_host}:{settings.api_port}"
            log.info("admin API starting", url=url, review_page=f"{url}/review", docs=f"{url}/docs")
            log.info("claims-ocr running; Ctrl-C or SIGTERM stops it", env=settings.env)
            return _serve_forever(workers, stop)
        resources = Resources(settings.model_copy(update={"broker_url": broker}))
        stack.callback(resources.close)
        resources.dispatcher.poll()
        return _run_once(
            settings, ledger, workers, stop, started_at, clock, timeout_s, resources.dispatcher.poll
        )


def _serve_forever(workers: WorkerProcesses, stop: StopRequest) -> int:
    """Keep the children running until a stop is asked for (0) or one cannot run (1)."""
    try:
        while not stop:
            workers.supervise()
            time.sleep(0.5)
    except GaveUp:
        return 1
    log.info("stopping on request", signal=stop.name)
    return 0


def _run_once(
    settings: Settings,
    ledger: Ledger,
    workers: WorkerProcesses,
    stop: StopRequest,
    started_at: datetime,
    clock: float,
    timeout_s: float,
    poll_again: Callable[[], None],
    repoll_after_s: float = 10.0,
) -> int:
    """Wait for the poll to record the emails, then for every job to come to rest.

    A child that dies meanwhile is restarted (the ledger and the sweep carry its work
    over). A poll cut short (the ledger dropped its connection mid-email) leaves that
    email in the mailbox, so while the mailbox is not drained a poll is queued again
    every ``repoll_after_s`` (polls are safe to repeat), instead of waiting for beat's
    next one. Exit status 0 means every job came to rest; a stop request or the timeout
    ends the wait early, and the summary still says what is left in progress.
    """
    deadline = time.monotonic() + timeout_s
    settled = False
    last_poll = time.monotonic()
    try:
        while time.monotonic() < deadline and not settled and not stop:
            time.sleep(1.0)
            workers.supervise()
            drained = _ledger_says(lambda: _mailbox_read(settings, ledger, started_at))
            settled = drained and _ledger_says(lambda: _no_work_left(ledger, started_at))
            if not settled and time.monotonic() - last_poll > repoll_after_s:
                if not drained:
                    try:
                        poll_again()
                    except DispatchError as exc:  # the broker is away: the next round
                        log.warning("poll not queued", error=str(exc))
                last_poll = time.monotonic()
    except GaveUp:
        pass
    else:
        if stop and not settled:
            log.warning("stopping on request before every job came to rest", signal=stop.name)
        elif not settled:
            log.error("jobs still in progress at the timeout", timeout_s=timeout_s)
    result: dict[str, float] = {**_retrying(lambda: summary(ledger, started_at))}
    result["seconds"] = round(time.monotonic() - clock, 1)
    print(json.dumps(result), flush=True)
    return 0 if settled else 1


def _ledger_says(check: Callable[[], bool]) -> bool:
    """``check()``, where a database that drops the connection (a restart, a failover) is
    a "not yet", not a reason to stop the run: the workers reconnect on their own, and so
    does this check."""
    try:
        return check()
    except DBAPIError as exc:
        log.warning("ledger not reachable; checking again", error=type(exc).__name__)
        return False


def _no_work_left(ledger: Ledger, since: datetime) -> bool:
    return summary(ledger, since)["in_progress"] == 0


def _retrying(read: Callable[[], T], attempts: int = 10) -> T:
    """``read()``, tried again a second later while the database drops the connection."""
    for _ in range(attempts - 1):
        try:
            return read()
        except DBAPIError as exc:
            log.warning("ledger not reachable; trying again", error=type(exc).__name__)
            time.sleep(1.0)
    return read()


def _mailbox_read(settings: Settings, ledger: Ledger, since: datetime) -> bool:
    """True once the mailbox is drained and shows every email's outcome.

    A folder is looked at directly; a remote mailbox (Gmail, IMAP) is drained when a
    poll since the start succeeded, and shows the outcomes when none is left to mark.
    """
    if settings.mail_source == "maildir":
        return not any(True for _ in MaildirSource(settings.maildir).fetch())
    health = ledger.sources.health(settings.mail_source)
    polled = health.last_success_at is not None and health.last_success_at >= since
    return polled and not ledger.sources.to_mark(settings.mail_source, limit=1)
