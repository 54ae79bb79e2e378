"""Requests per API key in a moving window, shared by every API process through Redis.

Redis when ``REDIS_URL`` answers at start, so several API processes count together;
otherwise each process counts alone in memory (one machine, the demo). A moving window
rather than a fixed one so a client cannot double its rate across a window's edge.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from services.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0


def redis_answers(url: str) -> bool:
    if not url.startswith(("redis://", "rediss://")):
        return False
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


class RateLimiter:
    """``hit(identity)``: count one request and say whether it may go ahead."""

    def __init__(self, rate: str, storage: Storage, *, namespace: str = "claims-ocr-api") -> None:
        self.items: list[RateLimitItem] = parse_many(rate)
        self.storage = storage
        self.namespace = namespace
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, rate: str, redis_url: str) -> RateLimiter:
        if redis_answers(redis_url):
            storage: Storage = RedisStorage(redis_url, key_prefix="claims-ocr:ratelimit")
            log.info("api rate limits shared through Redis")
        else:
            storage = MemoryStorage()
            log.info("api rate limits counted per process (Redis does not answer)")
        return cls(rate, storage)

    def hit(self, identity: str) -> Verdict:
        for item in self.items:
            if not self._limiter.hit(item, self.namespace, identity):
                stats = self._limiter.get_window_stats(item, self.namespace, identity)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                return Verdict(False, wait)
        return Verdict(True)
