"""What ``celery -A workers.worker`` loads: the app from this environment's settings, and
the hooks that give each worker process its logging, resources and log context.

- ``setup_logging``: structlog for Celery's own loggers and ours (``LOG_LEVEL``,
  ``LOG_FORMAT``), instead of Celery's handlers.
- ``worker_process_init``: each pool process builds its resources after the fork, and a
  process that consumes the ``ocr`` queue loads (warms) the OCR engine before its first
  task instead of during it.
- ``worker_process_shutdown``: connections and pools are closed.
- ``task_prerun`` / ``task_postrun``: the task id and the job ids it was given are bound to
  every log line of the task, so one grep for a ``job_id`` follows a claim.
- ``worker_init`` / ``beat_init``: the node's main process serves ``/metrics`` on
  ``METRICS_PORT`` (what its prefork children counted too, through multiprocess mode;
  an OCR node adds its GPUs where NVML finds any); ``task_success`` / ``task_failure``
  count task runs. Sentry reports errors when ``SENTRY_DSN`` is set.
- ``worker_ready``: the node beats its heartbeat into Redis (``services.heartbeats``)
  for the API's readiness.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from celery import Task, signals

from services.config import get_settings
from services.logs import bind_contextvars, clear_contextvars, configure_logging, get_logger
from workers.multiproc import node_multiproc_env

# Multiprocess metrics need their folder before prometheus_client is first imported.
os.environ.update(node_multiproc_env(get_settings().data_dir, sys.argv))

import redis

from services import metrics
from services.heartbeats import start_heartbeat
from services.sentry import init_sentry
from workers.app import make_app
from workers.wiring import close_process_resources, ocr_threads, process_resources

log = get_logger(__name__)


def _setup_logging(**_: Any) -> None:
    s = get_settings()
    configure_logging(s.log_level, s.log_format, process=os.environ.get("CLAIMS_OCR_PROCESS"))


# Now, so that what Celery says while it starts is logged the same way, and again when
# Celery asks (instead of installing its own handlers).
_setup_logging()
signals.setup_logging.connect(_setup_logging)
app = make_app(get_settings())
init_sentry(get_settings(), os.environ.get("CLAIMS_OCR_PROCESS") or "worker")


@signals.worker_init.connect
def _serve_worker_metrics(sender: Any = None, **_: Any) -> None:
    s = get_settings()
    metrics.set_build_info(s.ocr_engine, s.ocr_device)
    consumes = (sender.app if sender is not None else app).amqp.queues.consume_from
    gpu = metrics.gpu_collector() if "ocr" in consumes else None
    metrics.serve_metrics(s.metrics_port, extra=[gpu] if gpu else [])


@signals.worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Tell the API's readiness this node is alive and which queues it serves."""
    broker = get_settings().celery_broker_url
    if not broker.startswith(("redis://", "rediss://")):
        return
    node = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    start_heartbeat(redis.Redis.from_url(broker), node, app.amqp.queues.consume_from)


@signals.beat_init.connect
def _serve_beat_metrics(**_: Any) -> None:
    s = get_settings()
    metrics.set_build_info(s.ocr_engine, s.ocr_device)
    metrics.serve_metrics(s.metrics_port)


@signals.task_success.connect
def _count_success(sender: Task | None = None, **_: Any) -> None:
    metrics.record_task_run(sender.name if sender else "unknown", "ok")


@signals.task_failure.connect
def _count_failure(sender: Task | None = None, **_: Any) -> None:
    metrics.record_task_run(sender.name if sender else "unknown", "error")


@signals.worker_process_init.connect
def _build_process_resources(**_: Any) -> None:
    resources = process_resources()
    if "ocr" in app.amqp.queues.consume_from:
        started = time.perf_counter()
        engine = resources.ocr_engine
        log.info(
            "OCR engine loaded",
            engine=type(engine).__name__,
            device=resources.settings.ocr_device,
            threads=ocr_threads(resources.settings),
            pid=os.getpid(),
            seconds=round(time.perf_counter() - started, 2),
        )


@signals.worker_process_shutdown.connect
def _close_process_resources(**_: Any) -> None:
    close_process_resources()


@signals.task_prerun.connect
def _bind_task_context(
    task_id: str | None = None, task: Task | None = None, args: tuple[Any, ...] = (), **_: Any
) -> None:
    clear_contextvars()
    context: dict[str, Any] = {"task_id": task_id, "task": task.name if task else None}
    if args and isinstance(args[0], str):
        context["job_id"] = args[0]
    elif args and isinstance(args[0], list):
        context["job_ids"] = args[0]
    bind_contextvars(**context)


@signals.task_postrun.connect
def _clear_task_context(**_: Any) -> None:
    clear_contextvars()
