"""Worker heartbeats in Redis: each Celery node says every few seconds which queues it
consumes, so the API's readiness can tell "no OCR worker is alive" from "the OCR queue is
just long" without talking to Celery itself.

One key per node, ``claims-ocr:heartbeat:<node>``, that expires after ``TTL_S``: a node
that died (or froze) drops out on its own; nothing has to clean up after it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable

import redis

PREFIX = "claims-ocr:heartbeat:"
INTERVAL_S = 15.0
TTL_S = 60


def beat_once(client: redis.Redis, node: str, queues: Iterable[str]) -> None:
    body = json.dumps({"queues": sorted(queues), "at": time.time()})
    client.set(PREFIX + node, body, ex=TTL_S)


def start_heartbeat(
    client: redis.Redis, node: str, queues: Iterable[str], interval_s: float = INTERVAL_S
) -> threading.Event:
    """Beat in a daemon thread until the returned event is set; a failed beat is retried
    on the next tick (Redis away for a moment must not kill the worker)."""
    stop = threading.Event()
    names = list(queues)

    def run() -> None:
        while not stop.is_set():
            with contextlib.suppress(redis.RedisError):
                beat_once(client, node, names)
            stop.wait(interval_s)

    threading.Thread(target=run, daemon=True, name="claims-ocr-heartbeat").start()
    return stop


def live_nodes(client: redis.Redis) -> dict[str, list[str]]:
    """Node name -> the queues it consumes, for every node whose heartbeat has not expired."""
    nodes: dict[str, list[str]] = {}
    for key in client.scan_iter(match=PREFIX + "*", count=100):
        raw = client.get(key)
        if raw is None:
            continue
        name = (key.decode() if isinstance(key, bytes) else str(key)).removeprefix(PREFIX)
        try:
            nodes[name] = list(json.loads(raw)["queues"])
        except (ValueError, KeyError, TypeError):
            continue
    return nodes
