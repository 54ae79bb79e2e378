"""A circuit breaker whose state lives in a pluggable store.

Several Celery worker processes submit to the same NCB; if each kept its own
counter, a dead NCB would take ``workers x threshold`` timeouts to notice. With the
Redis store they share one counter, one "open until" and one half-open probe.

States, derived from the store on every call:

* closed: fewer than ``threshold`` consecutive transient failures;
* open: the ``open`` key exists (it expires after ``cooldown_s``): fail fast;
* half-open: the threshold was reached but the ``open`` key expired: exactly one
  caller (whoever takes the ``probe`` key) may try; success closes the circuit,
  failure opens it for another cool-down.
"""

from __future__ import annotations

import logging
import threading
import time
from enum import StrEnum
from typing import Protocol

import redis

from services import metrics

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitOpen(Exception):
    """The breaker refused the call; ``remaining_s`` until a probe may be tried."""

    def __init__(self, remaining_s: float) -> None:
        super().__init__(f"circuit open for another {remaining_s:.2f}s")
        self.remaining_s = remaining_s


class BreakerStore(Protocol):
    """Where breaker state lives. Every key carries a TTL so nothing wedges forever."""

    def failures(self, name: str) -> int: ...

    def add_failure(self, name: str, ttl_s: float) -> int:
        """Count one more consecutive failure; return the new count."""
        ...

    def open(self, name: str, cooldown_s: float) -> None: ...

    def open_remaining(self, name: str) -> float:
        """Seconds left in the open state (0 when not open)."""
        ...

    def try_probe(self, name: str, ttl_s: float) -> bool:
        """Take the single half-open probe slot; False if someone holds it."""
        ...

    def reset(self, name: str) -> None: ...


class MemoryBreakerStore:
    """Process-local store (one worker, tests, the CLI)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}  # key -> (value, expires_at)

    def _get(self, key: str) -> tuple[int, float] | None:
        item = self._values.get(key)
        if item is not None and item[1] <= time.monotonic():
            del self._values[key]
            return None
        return item

    def failures(self, name: str) -> int:
        with self._lock:
            item = self._get(f"{name}:failures")
            return item[0] if item else 0

    def add_failure(self, name: str, ttl_s: float) -> int:
        with self._lock:
            item = self._get(f"{name}:failures")
            count = (item[0] if item else 0) + 1
            self._values[f"{name}:failures"] = (count, time.monotonic() + ttl_s)
            return count

    def open(self, name: str, cooldown_s: float) -> None:
        with self._lock:
            self._values[f"{name}:open"] = (1, time.monotonic() + cooldown_s)
            self._values.pop(f"{name}:probe", None)

    def open_remaining(self, name: str) -> float:
        with self._lock:
            item = self._get(f"{name}:open")
            return max(0.0, item[1] - time.monotonic()) if item else 0.0

    def try_probe(self, name: str, ttl_s: float) -> bool:
        with self._lock:
            if self._get(f"{name}:probe") is not None:
                return False
            self._values[f"{name}:probe"] = (1, time.monotonic() + ttl_s)
            return True

    def reset(self, name: str) -> None:
        with self._lock:
            for suffix in ("failures", "open", "probe"):
                self._values.pop(f"{name}:{suffix}", None)


class RedisBreakerStore:
    """Store shared by every worker process, in Redis keys with TTLs.

    If Redis itself fails the breaker fails *open* (lets calls through): losing the
    breaker must not stop submissions that NCB would accept.
    """

    def __init__(self, client: redis.Redis, prefix: str = "claims-ocr:breaker") -> None:
        self._r = client
        self._prefix = prefix

    def _key(self, name: str, suffix: str) -> str:
        return f"{self._prefix}:{name}:{suffix}"

    def failures(self, name: str) -> int:
        try:
            value = self._r.get(self._key(name, "failures"))
        except redis.RedisError as exc:
            log.warning("breaker store unreachable (failures): %s", type(exc).__name__)
            return 0
        return int(value) if value is not None else 0

    def add_failure(self, name: str, ttl_s: float) -> int:
        key = self._key(name, "failures")
        try:
            pipe = self._r.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, max(1, int(ttl_s * 1000)))
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            log.warning("breaker store unreachable (add_failure): %s", type(exc).__name__)
            return 0
        return int(count)

    def open(self, name: str, cooldown_s: float) -> None:
        try:
            pipe = self._r.pipeline(transaction=True)
            pipe.set(self._key(name, "open"), 1, px=max(1, int(cooldown_s * 1000)))
            pipe.delete(self._key(name, "probe"))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("breaker store unreachable (open): %s", type(exc).__name__)

    def open_remaining(self, name: str) -> float:
        try:
            ms = self._r.pttl(self._key(name, "open"))
        except redis.RedisError as exc:
            log.warning("breaker store unreachable (open_remaining): %s", type(exc).__name__)
            return 0.0
        return ms / 1000 if ms and ms > 0 else 0.0

    def try_probe(self, name: str, ttl_s: float) -> bool:
        try:
            px = max(1, int(ttl_s * 1000))
            return bool(self._r.set(self._key(name, "probe"), 1, nx=True, px=px))
        except redis.RedisError as exc:
            log.warning("breaker store unreachable (try_probe): %s", type(exc).__name__)
            return True

    def reset(self, name: str) -> None:
        try:
            self._r.delete(*(self._key(name, s) for s in ("failures", "open", "probe")))
        except redis.RedisError as exc:
            log.warning("breaker store unreachable (reset): %s", type(exc).__name__)


class CircuitBreaker:
    """Counts consecutive transient failures and fails fast while NCB is down.

    ``probe_ttl_s`` bounds how long one half-open probe may hold the slot (a worker
    that dies mid-probe must not keep the circuit half-open forever): set it above
    the client's request timeout.
    """

    def __init__(
        self,
        store: BreakerStore | None = None,
        *,
        name: str = "ncb",
        threshold: int = 5,
        cooldown_s: float = 30.0,
        probe_ttl_s: float = 60.0,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.store: BreakerStore = store or MemoryBreakerStore()
        self.name = name
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.probe_ttl_s = probe_ttl_s
        # The count must outlive the cool-down, or the half-open state is never seen.
        self._failure_ttl_s = max(10 * cooldown_s, probe_ttl_s * 2, 60.0)

    @property
    def state(self) -> BreakerState:
        """For the sweep, health pages and metrics (``claims_ncb_circuit_state``)."""
        if self.store.open_remaining(self.name) > 0:
            state = BreakerState.OPEN
        elif self.store.failures(self.name) >= self.threshold:
            state = BreakerState.HALF_OPEN
        else:
            state = BreakerState.CLOSED
        metrics.record_circuit_state(state)
        return state

    def hold(self, seconds: float) -> None:
        """Open the circuit for ``seconds`` whatever the failure count (NCB refused our
        credentials, or asked everyone to wait): every worker stops calling until then.

        Never shortens a longer hold already in place: an earlier ``Retry-After`` (or
        auth pause) still stands when a later, shorter one arrives.
        """
        remaining = self.store.open_remaining(self.name)
        if remaining >= seconds:
            log.info("circuit %s already held for %.1fs", self.name, remaining)
            return
        log.warning("circuit %s held open for %.1fs", self.name, seconds)
        self.store.open(self.name, seconds)
        metrics.record_circuit_state(BreakerState.OPEN)

    def before_call(self) -> bool:
        """Raise :class:`CircuitOpen` or allow the call; True if it is the probe."""
        remaining = self.store.open_remaining(self.name)
        if remaining > 0:
            metrics.record_circuit_state(BreakerState.OPEN)
            raise CircuitOpen(remaining)
        if self.store.failures(self.name) < self.threshold:
            return False
        metrics.record_circuit_state(BreakerState.HALF_OPEN)
        if self.store.try_probe(self.name, self.probe_ttl_s):
            log.info("circuit %s half-open: probing", self.name)
            return True
        # Someone else is probing; let them find out before anyone else tries.
        raise CircuitOpen(min(self.cooldown_s, self.probe_ttl_s))

    def record_success(self) -> None:
        if self.store.failures(self.name) >= self.threshold:
            log.info("circuit %s closed", self.name)
        self.store.reset(self.name)
        metrics.record_circuit_state(BreakerState.CLOSED)

    def record_failure(self) -> None:
        count = self.store.add_failure(self.name, self._failure_ttl_s)
        if count >= self.threshold:
            log.warning(
                "circuit %s open for %.1fs after %d failures", self.name, self.cooldown_s, count
            )
            self.store.open(self.name, self.cooldown_s)
            metrics.record_circuit_state(BreakerState.OPEN)
