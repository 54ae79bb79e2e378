"""The :class:`services.dispatch.Dispatcher` on Celery: one message per step, by task name.

Messages are sent by name with the routes of ``workers.app``, so a process that only
queues work (the command line, the admin API) never imports the tasks. A broker that
does not answer is reported quickly as ``DispatchError`` instead of blocking the caller:
the ledger already holds the job's state and the sweep re-queues it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from services.dispatch import DispatchError

# A publish waits at most about this long for a broker that does not answer.
_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.0, "interval_step": 0.5, "interval_max": 1}


class CeleryDispatcher:
    def __init__(self, app: Celery, *, ocr_batch_size: int) -> None:
        self.app = app
        self.ocr_batch_size = max(1, ocr_batch_size)

    def poll(self) -> None:
        self._send("claims.poll", [])

    def ocr(self, job_ids: Sequence[str]) -> None:
        ids = list(job_ids)
        for start in range(0, len(ids), self.ocr_batch_size):
            self._send("claims.ocr", [ids[start : start + self.ocr_batch_size]])

    def submit(self, job_id: str) -> None:
        self._send("claims.submit", [job_id])

    def finalize(self, job_id: str) -> None:
        self._send("claims.finalize", [job_id])

    def deliver(self) -> None:
        self._send("claims.deliver", [])

    def _send(self, name: str, args: list[Any]) -> None:
        try:
            self.app.send_task(name, args=args, retry=True, retry_policy=_RETRY_POLICY)
        except (OperationalError, OSError) as exc:
            raise DispatchError(f"{name} not queued: {type(exc).__name__}") from exc
