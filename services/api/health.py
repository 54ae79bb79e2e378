"""Liveness and readiness: ``/health`` answers while the process runs; ``/health/ready``
asks each collaborator (the ledger, the broker, the mail source, the OCR engine, NCB's
reachability and circuit, the queues, the workers' heartbeats, the outbox) and says what
is wrong, in words that carry no claim data.

Each check is a small callable handed to ``create_app``, so the wiring decides what is
checked and tests run the same checks against real services. A check that raises is
``down`` with the error's type only. Any check ``down`` makes the whole ``unhealthy``
(503: take this instance out of rotation); ``degraded`` still answers 200.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx
import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from services.heartbeats import live_nodes
from services.ledger import Ledger
from services.ledger.outbox import KINDS
from services.ncb import BreakerState, CircuitBreaker

CheckStatus = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class CheckResult:
    status: CheckStatus
    detail: str


HealthCheck = Callable[[], CheckResult]


class CheckModel(BaseModel):
    status: CheckStatus
    detail: str


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: dict[str, CheckModel]


def run_checks(checks: Mapping[str, HealthCheck]) -> Readiness:
    results: dict[str, CheckModel] = {}
    for name, check in checks.items():
        try:
            result = check()
        except Exception as exc:
            result = CheckResult("down", f"check failed: {type(exc).__name__}")
        results[name] = CheckModel(status=result.status, detail=result.detail)
    statuses = {r.status for r in results.values()}
    overall: Literal["healthy", "degraded", "unhealthy"] = (
        "unhealthy" if "down" in statuses else "degraded" if "degraded" in statuses else "healthy"
    )
    return Readiness(status=overall, checks=results)


# -- checks ----------------------------------------------------------------------------


def ledger_check(ledger: Ledger) -> HealthCheck:
    def check() -> CheckResult:
        with ledger.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return CheckResult("ok", f"{ledger.engine.dialect.name} answers")

    return check


def broker_check(client: redis.Redis | None) -> HealthCheck:
    """Redis ping; a broker that is not Redis (the demo's SQLite one) is not asked."""

    def check() -> CheckResult:
        if client is None:
            return CheckResult("ok", "the broker is not Redis; not checked")
        client.ping()
        return CheckResult("ok", "redis answers")

    return check


def mail_source_check(
    ledger: Ledger,
    source: str,
    poll_interval_s: float,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> HealthCheck:
    """Degraded when the source's last good sync is older than three poll intervals."""

    def check() -> CheckResult:
        health = ledger.sources.health(source)
        if health.last_success_at is None:
            return CheckResult("degraded", f"{source}: never synced ({health.status})")
        age = (now() - health.last_success_at).total_seconds()
        detail = f"{source}: last good sync {age:.0f} s ago ({health.status})"
        return CheckResult("degraded" if age > 3 * poll_interval_s else "ok", detail)

    return check


def ncb_circuit_check(breaker: CircuitBreaker) -> HealthCheck:
    """Reads the shared breaker's state; never probes NCB itself."""

    def check() -> CheckResult:
        state = breaker.state
        status: CheckStatus = "ok" if state is BreakerState.CLOSED else "degraded"
        return CheckResult(status, f"circuit {state}")

    return check


def queue_depth_check(
    client: redis.Redis | None, queues: Sequence[str] = ("ocr", "submit", "poll"), high: int = 1000
) -> HealthCheck:
    """Messages waiting in each Celery queue (a Redis list per queue)."""

    def check() -> CheckResult:
        if client is None:
            return CheckResult("ok", "the broker is not Redis; not measured")
        depths = {q: int(client.llen(q)) for q in queues}
        detail = ", ".join(f"{q}={n}" for q, n in depths.items())
        return CheckResult("degraded" if max(depths.values()) > high else "ok", detail)

    return check


def outbox_check(
    ledger: Ledger,
    max_age_s: float = 3600.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> HealthCheck:
    """Audit rows and archive uploads owed; degraded when one waits over ``max_age_s``."""

    def check() -> CheckResult:
        parts, stale = [], False
        for kind in KINDS:
            backlog = ledger.outbox.backlog(kind)
            age = (
                0.0
                if backlog.oldest_created_at is None
                else (now() - backlog.oldest_created_at).total_seconds()
            )
            stale = stale or age > max_age_s
            parts.append(f"{kind}={backlog.pending} (oldest {age:.0f} s)")
        return CheckResult("degraded" if stale else "ok", ", ".join(parts))

    return check


# -- routes ----------------------------------------------------------------------------

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Liveness, summary="The process is up")
def live() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/health/ready",
    response_model=Readiness,
    summary="Whether this instance can do its work, check by check",
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
)
def ready(request: Request) -> JSONResponse:
    result = run_checks(request.app.state.api.health_checks)
    return JSONResponse(
        result.model_dump(), status_code=503 if result.status == "unhealthy" else 200
    )


def ocr_engine_check(engine: str, device: str, problems: Callable[[], list[str]]) -> HealthCheck:
    """The configured engine and device, and whether this installation can run them."""

    def check() -> CheckResult:
        missing = problems()
        if missing:
            return CheckResult("down", f"{engine} on {device}: {missing[0]}")
        return CheckResult("ok", f"{engine} on {device}")

    return check


def ncb_reachability_check(base_url: str, timeout_s: float = 2.0) -> HealthCheck:
    """NCB's own ``/health``. Unreachable is degraded, not down: claims wait, none is lost."""

    def check() -> CheckResult:
        if not base_url:
            return CheckResult("degraded", "NCB_API_BASE_URL is empty")
        try:
            answer = httpx.get(f"{base_url.rstrip('/')}/health", timeout=timeout_s)
        except httpx.HTTPError as exc:
            return CheckResult("degraded", f"NCB unreachable ({type(exc).__name__})")
        if answer.status_code != 200:
            return CheckResult("degraded", f"NCB /health answered {answer.status_code}")
        return CheckResult("ok", "NCB answers")

    return check


def worker_check(
    client: redis.Redis | None, queues: Sequence[str] = ("poll", "ocr", "submit")
) -> HealthCheck:
    """A live worker (a heartbeat not yet expired) for each queue; none for one is
    degraded: its work waits in the queue, nothing is lost."""

    def check() -> CheckResult:
        if client is None:
            return CheckResult("ok", "the broker is not Redis; not checked")
        nodes = live_nodes(client)
        served = {q for consumed in nodes.values() for q in consumed}
        missing = [q for q in queues if q not in served]
        detail = f"{len(nodes)} live worker node(s)"
        if missing:
            return CheckResult("degraded", f"{detail}; none for {', '.join(missing)}")
        return CheckResult("ok", detail)

    return check
