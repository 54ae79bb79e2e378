"""The admin HTTP API: ``create_app`` builds it from collaborators it is handed.

Nothing is wired here (``workers.wiring.api_app`` does that from ``Settings``), so tests
build the same app on their own ledger, blobs and a recording dispatcher. The API never
imports Celery: next steps are queued through the ``Dispatcher`` it is given, exactly
as ``claims-ocr review`` does.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from prometheus_client.registry import Collector

from services import metrics
from services.api import exceptions, health, jobs, stats
from services.api import metrics as metrics_route
from services.api.context import ApiContext
from services.api.errors import install_error_handlers
from services.api.health import HealthCheck, ledger_check
from services.api.middleware import ApiCors, ApiMiddleware
from services.api.ratelimit import RateLimiter
from services.blobs import BlobStore
from services.config import Settings
from services.dispatch import Dispatcher
from services.ledger import Ledger
from services.ocr.pages import PageLimits


def create_app(
    *,
    ledger: Ledger,
    blobs: BlobStore,
    dispatcher: Dispatcher,
    settings: Settings,
    health_checks: Mapping[str, HealthCheck] | None = None,
    page_limits: PageLimits | None = None,
    rate_limiter: RateLimiter | None = None,
    metrics_collector: Collector | None = None,
) -> FastAPI:
    """The API over these collaborators.

    ``health_checks`` default to the ledger alone; ``page_limits`` (how pages are
    decoded, as OCR decodes them) default to ``PageLimits()``; ``rate_limiter`` defaults
    to ``API_RATE_LIMIT`` counted in Redis at ``REDIS_URL`` when it answers, else in
    memory. ``metrics_collector`` (the pipeline's scrape-time gauges) is added to this
    process's own metrics on ``GET /metrics``.
    """
    from services.api.review_page import router as review_router

    app = FastAPI(
        title="claims-ocr admin API",
        version="1",
        description=(
            "Jobs, the review queue and reviewer actions. Every /api/v1 route needs an API "
            "key (`Authorization: Bearer <key>` or `X-API-Key`); roles: viewer (read), "
            "reviewer (+ approve, reject, retry), admin."
        ),
        redoc_url=None,
    )
    app.state.api = ApiContext(
        ledger=ledger,
        blobs=blobs,
        dispatcher=dispatcher,
        settings=settings,
        page_limits=page_limits or PageLimits(),
        limiter=rate_limiter
        or RateLimiter.from_settings(settings.api_rate_limit, settings.redis_url),
        health_checks=dict(health_checks) if health_checks else {"ledger": ledger_check(ledger)},
    )
    app.state.metrics_registry = metrics.api_registry(metrics_collector)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(exceptions.router)
    app.include_router(stats.router)
    app.include_router(review_router)
    app.include_router(metrics_route.router)
    origins = settings.api_cors_origin_list
    if origins:
        app.add_middleware(
            ApiCors,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    # Added last, so outermost: the request id and the limits apply to everything.
    app.add_middleware(ApiMiddleware, max_body_bytes=settings.api_max_body_bytes)
    return app
