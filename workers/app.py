"""The Celery app's definition: queues ``poll``, ``ocr`` and ``submit``, reliability, beat.

Reliability follows Celery's advice for long tasks: acknowledge late, requeue the message
when a worker process dies, prefetch one at a time, a Redis visibility timeout longer
than the longest task, and ``expires`` on periodic polls so a backlog of polls never
piles up while the poller is down. Redelivery of a job that keeps killing its worker is
capped by the ledger (attempt count per job), not by the broker.

Every process builds its app with :func:`make_app` from its ``Settings``: the worker
processes in ``workers.worker``, the command line and the runner through
``workers.wiring``. The tasks are shared tasks, so any of these apps runs or sends them.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from services.config import Settings

QUEUES = ("poll", "ocr", "submit")
TASK_ROUTES = {
    "claims.poll": {"queue": "poll"},
    "claims.sweep": {"queue": "poll"},
    "claims.deliver": {"queue": "submit"},
    "claims.ocr": {"queue": "ocr"},
    "claims.submit": {"queue": "submit"},
    "claims.finalize": {"queue": "submit"},
}

# Longest task we allow (an OCR batch on CPU) and the broker's redelivery horizon.
OCR_TIME_LIMIT_S = 15 * 60
VISIBILITY_TIMEOUT_S = 2 * OCR_TIME_LIMIT_S


def transport_options(broker: str) -> dict[str, object]:
    """Redis redelivers unacknowledged messages after the visibility timeout. The embedded
    SQL broker has no such option (and refuses unknown ones); its SQLite file is shared by
    four processes, so it waits for a lock longer than sqlite3's default 5 s."""
    if broker.startswith("redis"):
        return {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    if broker.startswith("sqla+sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {}


def make_app(settings: Settings) -> Celery:
    broker = settings.celery_broker_url
    app = Celery("claims_ocr", broker=broker, include=["workers.tasks"])
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="ocr",
        task_routes=TASK_ROUTES,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_time_limit=OCR_TIME_LIMIT_S,
        task_soft_time_limit=OCR_TIME_LIMIT_S - 60,
        broker_transport_options=transport_options(broker),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # A pool process loads the OCR models before it reports for work (seconds).
        worker_proc_alive_timeout=120,
        task_serializer="json",
        accept_content=["json"],
        enable_utc=True,
        beat_schedule={
            "poll-mailbox": {
                "task": "claims.poll",
                "schedule": settings.poll_interval_s,
                "options": {"expires": settings.poll_interval_s},
            },
            "sweep-ledger": {
                "task": "claims.sweep",
                "schedule": settings.sweep_interval_s,
                "options": {"expires": settings.sweep_interval_s},
            },
        },
    )
    return app
