"""Prometheus metrics: every family of the contract (``monitoring/metrics.md``) defined once.

The alerts and dashboards in ``monitoring/`` query these names; ``METRIC_NAMES`` lists them
(counters with their ``_total``) and the tests hold it, the contract and the monitoring
files to each other.

Two kinds, as the contract says:

- Worker metrics (counters, histograms, a few gauges) are counted by the process that does
  the work through the small ``record_*`` functions below, which the domain steps call.
  With ``PROMETHEUS_MULTIPROC_DIR`` set (the runner and compose set one folder per
  service) prometheus_client keeps them in files, so what Celery's prefork children count
  is served by their node's main process (:func:`process_registry`).
- Collector gauges (jobs per state, queue depths, the exception queue, the outbox, mail
  source health, the data disk) are computed at scrape time by :class:`StateCollector`,
  which only the admin API registers, so each is exported once, not once per service.

Labels never carry ids or claim data: only states, reason codes, field names, kinds and
names of things we run.
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from services.logs import get_logger

if TYPE_CHECKING:
    import redis

    from services.ledger.ledger import Ledger

log = get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
REVISION_ENV = "CLAIMS_OCR_REVISION"
#: The Celery queues whose depth is exported (Redis lists named like the queue).
QUEUES = ("ocr", "submit", "poll")
CIRCUIT_STATES = {"closed": 0, "half-open": 1, "half_open": 1, "open": 2}
_CONFIDENCE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))

# -- worker metrics ---------------------------------------------------------------------

EMAILS_RECEIVED = Counter("claims_emails_received", "Emails recorded by a poll.", ["source"])
ATTACHMENTS_RECEIVED = Counter(
    "claims_attachments_received",
    "Attachments recorded by a poll (outcome: job, skipped, duplicate, quarantined).",
    ["source", "outcome"],
)
JOB_TRANSITIONS = Counter(
    "claims_job_transitions", "Job state changes in the ledger.", ["from_state", "to_state"]
)
OCR_PAGES = Counter("claims_ocr_pages", "Pages read by the OCR engine.", ["engine", "device"])
ROUTE_DECISIONS = Counter(
    "claims_route_decisions",
    "Where OCR sent a claim (submit or review) and why (reason code, or none).",
    ["route", "reason"],
)
NCB_SUBMISSIONS = Counter(
    "claims_ncb_submissions",
    "Submissions to NCB by outcome (submitted, rejected, deferred, auth_failed, "
    "unavailable, not_ready).",
    ["outcome"],
)
MAIL_SYNCS = Counter("claims_mail_syncs", "Polls of a mail source by status.", ["source", "status"])
RECORDS_DELIVERED = Counter(
    "claims_records_delivered", "Audit rows and archive copies written.", ["kind"]
)
RECORDS_POSTPONED = Counter(
    "claims_records_postponed", "Audit rows and archive copies put off after a failure.", ["kind"]
)
TASK_RUNS = Counter(
    "claims_task_runs", "Celery task runs by outcome (ok, error).", ["task", "outcome"]
)

OCR_BATCH_PAGES = Histogram(
    "claims_ocr_batch_pages", "Pages per OCR batch.", buckets=(1, 2, 4, 8, 16, 32, 64)
)
OCR_BATCH_SECONDS = Histogram(
    "claims_ocr_batch_seconds",
    "Seconds to read one OCR batch (decoding, engine calls, extraction).",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
FIELD_CONFIDENCE = Histogram(
    "claims_field_confidence",
    "Confidence of each extracted field.",
    ["field"],
    buckets=_CONFIDENCE_BUCKETS,
)
CLAIM_CONFIDENCE = Histogram(
    "claims_claim_confidence", "Overall confidence of a claim.", buckets=_CONFIDENCE_BUCKETS
)
NCB_REQUEST_SECONDS = Histogram(
    "claims_ncb_request_seconds",
    "Seconds per HTTP request to NCB (each attempt).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECEIVED_TO_SUBMITTED_SECONDS = Histogram(
    "claims_received_to_submitted_seconds",
    "Seconds from an email's arrival to NCB accepting its claim.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400),
)

MAIL_LAST_SUCCESS = Gauge(
    "claims_mail_last_success_timestamp_seconds",
    "Unix time of the last successful poll of a mail source.",
    ["source"],
    multiprocess_mode="max",
)
NCB_CIRCUIT_STATE = Gauge(
    "claims_ncb_circuit_state",
    "NCB circuit breaker: 0 closed, 1 half_open, 2 open (as last read from the shared breaker).",
    multiprocess_mode="mostrecent",
)
BUILD_INFO = Gauge(
    "claims_build_info",
    "Always 1; the labels say what runs.",
    ["version", "revision", "engine", "device"],
    multiprocess_mode="max",
)

#: Made at scrape time by :class:`GpuCollector` (the OCR worker, only where NVML finds a GPU).
GPU_GAUGES: Mapping[str, str] = {
    "claims_gpu_utilization_ratio": "GPU busy share over the last sample period (0..1).",
    "claims_gpu_memory_used_bytes": "GPU memory in use.",
    "claims_gpu_memory_total_bytes": "GPU memory in all.",
}

#: Made at scrape time by :class:`StateCollector` (the admin API only): name -> (help, labels).
STATE_GAUGES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "claims_jobs": ("Jobs per state now.", ("state",)),
    "claims_queue_depth": ("Messages waiting in a Celery queue (ocr, submit, poll).", ("queue",)),
    "claims_exception_queue_size": ("Jobs waiting for a person (needs_review).", ()),
    "claims_exception_oldest_age_seconds": (
        "Age of the oldest needs_review job (0 when none).",
        (),
    ),
    "claims_outbox_pending": ("Records waiting to be written (audit, archive).", ("kind",)),
    "claims_outbox_oldest_age_seconds": (
        "Age of the oldest record waiting (0 when none).",
        ("kind",),
    ),
    "claims_mail_source_healthy": ("1 when the last poll of the source was ok.", ("source",)),
    "claims_mail_source_auth_revoked": (
        "1 when the last poll of the source said auth_revoked.",
        ("source",),
    ),
    "claims_data_disk_free_bytes": ("Free bytes on the filesystem holding the data.", ()),
    "claims_data_disk_size_bytes": ("Size of the filesystem holding the data.", ()),
}

_COUNTERS = (
    EMAILS_RECEIVED,
    ATTACHMENTS_RECEIVED,
    JOB_TRANSITIONS,
    OCR_PAGES,
    ROUTE_DECISIONS,
    NCB_SUBMISSIONS,
    MAIL_SYNCS,
    RECORDS_DELIVERED,
    RECORDS_POSTPONED,
    TASK_RUNS,
)
_OTHERS: tuple[Histogram | Gauge, ...] = (
    OCR_BATCH_PAGES,
    OCR_BATCH_SECONDS,
    FIELD_CONFIDENCE,
    CLAIM_CONFIDENCE,
    NCB_REQUEST_SECONDS,
    RECEIVED_TO_SUBMITTED_SECONDS,
    MAIL_LAST_SUCCESS,
    NCB_CIRCUIT_STATE,
    BUILD_INFO,
)
#: Every family name exported, as the contract writes it (counters with ``_total``).
METRIC_NAMES: tuple[str, ...] = (
    *(f"{c._name}_total" for c in _COUNTERS),
    *(m._name for m in _OTHERS),
    *GPU_GAUGES,
    *STATE_GAUGES,
)
#: Each family's label names (for the tests: none may carry an id or claim data).
METRIC_LABELS: Mapping[str, tuple[str, ...]] = {
    **{f"{c._name}_total": tuple(c._labelnames) for c in _COUNTERS},
    **{m._name: tuple(m._labelnames) for m in _OTHERS},
    **dict.fromkeys(GPU_GAUGES, ("gpu",)),
    **{name: labels for name, (_, labels) in STATE_GAUGES.items()},
}

#: The OCR engine and device this process runs (labels of ``claims_ocr_pages``).
_process_labels = {"engine": "none", "device": "none"}


# -- what the steps call ----------------------------------------------------------------


def record_email_received(source: str) -> None:
    EMAILS_RECEIVED.labels(source).inc()


def record_attachment(source: str, outcome: str) -> None:
    """``outcome``: job, skipped, duplicate or quarantined."""
    ATTACHMENTS_RECEIVED.labels(source, outcome).inc()


def record_mail_sync(source: str, status: str) -> None:
    MAIL_SYNCS.labels(source, status).inc()
    if status == "ok":
        MAIL_LAST_SUCCESS.labels(source).set(time.time())


def record_transitions(moves: Iterable[tuple[str, str]]) -> None:
    """Committed ledger state changes, as ``(from_state, to_state)``."""
    for from_state, to_state in moves:
        JOB_TRANSITIONS.labels(from_state, to_state).inc()


def record_ocr_batch(engine: str, pages: int, seconds: float) -> None:
    """One OCR batch: its pages (read, on this process's device) and how long it took."""
    OCR_PAGES.labels(engine, _process_labels["device"]).inc(pages)
    OCR_BATCH_PAGES.observe(pages)
    OCR_BATCH_SECONDS.observe(seconds)


def record_confidence(field_confidence: Mapping[str, float], confidence: float) -> None:
    for name, value in field_confidence.items():
        FIELD_CONFIDENCE.labels(name).observe(value)
    CLAIM_CONFIDENCE.observe(confidence)


def record_route(route: str, reasons: Sequence[str]) -> None:
    """One decision per reason code (``none`` when the claim had none)."""
    for reason in reasons or ("none",):
        ROUTE_DECISIONS.labels(route, reason).inc()


def record_ncb_submission(outcome: str) -> None:
    NCB_SUBMISSIONS.labels(outcome).inc()


def observe_ncb_request(seconds: float) -> None:
    NCB_REQUEST_SECONDS.observe(seconds)


def record_circuit_state(state: str) -> None:
    """The shared breaker's state as this process last saw it (closed, half-open, open)."""
    NCB_CIRCUIT_STATE.set(CIRCUIT_STATES.get(state, 0))


def record_received_to_submitted(received_at: datetime, submitted_at: datetime) -> None:
    """Email received -> NCB accepted (naive times are UTC, as the ledger stores them)."""
    seconds = (_utc(submitted_at) - _utc(received_at)).total_seconds()
    RECEIVED_TO_SUBMITTED_SECONDS.observe(max(0.0, seconds))


def record_delivery(kind: str, *, delivered: int = 0, postponed: int = 0) -> None:
    if delivered:
        RECORDS_DELIVERED.labels(kind).inc(delivered)
    if postponed:
        RECORDS_POSTPONED.labels(kind).inc(postponed)


def record_task_run(task: str, outcome: str) -> None:
    """``outcome``: ok or error."""
    TASK_RUNS.labels(task, outcome).inc()


# -- process set-up ---------------------------------------------------------------------


def package_version() -> str:
    try:
        return version("claims-ocr")
    except PackageNotFoundError:
        return "unknown"


def revision() -> str:
    """The git revision the deployment says it built (``CLAIMS_OCR_REVISION``)."""
    return os.environ.get(REVISION_ENV, "").strip() or "unknown"


def set_build_info(engine: str, device: str) -> None:
    """``claims_build_info`` = 1, and the engine/device labels of pages read here."""
    _process_labels.update(engine=engine, device=device)
    BUILD_INFO.labels(package_version(), revision(), engine, device).set(1)


def multiprocess_dir() -> Path | None:
    folder = os.environ.get(MULTIPROC_ENV)
    return Path(folder) if folder else None


def process_registry() -> CollectorRegistry:
    """What this process (and, in multiprocess mode, its forked children) counted."""
    folder = multiprocess_dir()
    if folder is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return registry


def serve_metrics(port: int, *, extra: Sequence[Collector] = ()) -> bool:
    """Serve ``/metrics`` on ``port`` (all interfaces) from a thread; False if it could not.

    A port in use is logged, not fatal: a worker without metrics still does its work.
    """
    if port <= 0:
        return False
    registry = process_registry()
    if extra:
        merged = CollectorRegistry()
        merged.register(_Delegate(registry))
        for collector in extra:
            merged.register(collector)
        registry = merged
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        log.error("metrics port not available", port=port, error=type(exc).__name__)
        return False
    log.info("metrics served", port=port, multiprocess=multiprocess_dir() is not None)
    return True


def api_registry(state: Collector | None) -> CollectorRegistry:
    """The admin API's ``/metrics``: its process metrics and the scrape-time gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Delegate(process_registry()))
    if state is not None:
        registry.register(state)
    return registry


class _Delegate(Collector):
    """Another registry's metrics inside this one."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


# -- scrape-time collectors -------------------------------------------------------------


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _age_s(when: datetime | None, now: datetime) -> float:
    return 0.0 if when is None else max(0.0, (now - _utc(when)).total_seconds())


class StateCollector(Collector):
    """The pipeline's state at scrape time, from the ledger, Redis and the data disk.

    Each part is read on its own: one that fails (Redis down) is left out of that scrape
    and logged, the others are still exported.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        redis_client: redis.Redis | None,
        mail_source: str,
        data_paths: Sequence[Path],
    ) -> None:
        self.ledger = ledger
        self.redis = redis_client
        self.mail_source = mail_source
        self.data_paths = tuple(data_paths)

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        for part in (self._jobs, self._queues, self._exceptions, self._outbox, self._mail):
            try:
                families = list(part(now))
            except Exception as exc:
                log.warning("metrics part not read", part=part.__name__, error=type(exc).__name__)
                continue
            yield from families
        try:
            yield from self._disk()
        except OSError as exc:
            log.warning("metrics part not read", part="disk", error=type(exc).__name__)

    @staticmethod
    def _family(name: str) -> GaugeMetricFamily:
        help_text, labels = STATE_GAUGES[name]
        return GaugeMetricFamily(name, help_text, labels=list(labels) if labels else None)

    def _jobs(self, _now: datetime) -> Iterator[Metric]:
        family = self._family("claims_jobs")
        for state, count in self.ledger.counts().items():
            family.add_metric([str(state)], count)
        yield family

    def _queues(self, _now: datetime) -> Iterator[Metric]:
        if self.redis is None:
            return  # the embedded demo broker is no Redis: nothing to measure
        family = self._family("claims_queue_depth")
        for queue in QUEUES:
            family.add_metric([queue], int(self.redis.llen(queue)))
        yield family

    def _exceptions(self, now: datetime) -> Iterator[Metric]:
        page = self.ledger.list_jobs(states=["needs_review"], sort="updated_at", limit=1)
        size = self._family("claims_exception_queue_size")
        size.add_metric([], page.total)
        age = self._family("claims_exception_oldest_age_seconds")
        age.add_metric([], _age_s(page.items[0].updated_at if page.items else None, now))
        yield from (size, age)

    def _outbox(self, now: datetime) -> Iterator[Metric]:
        from services.ledger.outbox import KINDS

        pending = self._family("claims_outbox_pending")
        age = self._family("claims_outbox_oldest_age_seconds")
        for kind in KINDS:
            backlog = self.ledger.outbox.backlog(kind)
            pending.add_metric([kind], backlog.pending)
            age.add_metric([kind], _age_s(backlog.oldest_created_at, now))
        yield from (pending, age)

    def _mail(self, _now: datetime) -> Iterator[Metric]:
        health = self.ledger.sources.health(self.mail_source)
        healthy = self._family("claims_mail_source_healthy")
        healthy.add_metric([self.mail_source], 1 if health.status == "ok" else 0)
        revoked = self._family("claims_mail_source_auth_revoked")
        revoked.add_metric([self.mail_source], 1 if health.status == "auth_revoked" else 0)
        yield from (healthy, revoked)

    def _disk(self) -> Iterator[Metric]:
        """The fullest filesystem of those holding the data (DATA_DIR, BLOB_DIR)."""
        usages = [shutil.disk_usage(p) for p in self.data_paths if p.exists()]
        if not usages:
            return
        worst = min(usages, key=lambda u: u.free / u.total if u.total else 1.0)
        free = self._family("claims_data_disk_free_bytes")
        free.add_metric([], worst.free)
        size = self._family("claims_data_disk_size_bytes")
        size.add_metric([], worst.total)
        yield from (free, size)


class GpuCollector(Collector):
    """GPU use and memory per device, read through NVML at scrape time."""

    def __init__(self, nvml: Any, count: int) -> None:
        self._nvml = nvml
        self._count = count

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(name, h, labels=["gpu"]) for name, h in GPU_GAUGES.items()
        }
        sampled = False
        for index in range(self._count):
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                busy = self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except Exception as exc:  # a GPU that fell off the bus: say so, skip it
                log.warning("GPU not read", gpu=index, error=type(exc).__name__)
                continue
            gpu = [str(index)]
            families["claims_gpu_utilization_ratio"].add_metric(gpu, busy / 100.0)
            families["claims_gpu_memory_used_bytes"].add_metric(gpu, memory.used)
            families["claims_gpu_memory_total_bytes"].add_metric(gpu, memory.total)
            sampled = True
        if sampled:
            yield from families.values()


def gpu_collector() -> GpuCollector | None:
    """A collector for the GPUs NVML finds (``nvidia-ml-py``, the ``gpu`` extra); None
    where it is not installed, there is no driver or no GPU: nothing is exported then."""
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
        count = int(nvml.nvmlDeviceGetCount())
    except Exception as exc:  # ImportError, NVMLError (no driver, no device) alike
        log.info("no GPU metrics", reason=type(exc).__name__)
        return None
    return GpuCollector(nvml, count) if count > 0 else None
