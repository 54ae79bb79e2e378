"""What the routes work with, handed in by ``create_app`` (no wiring inside the API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request

from services.api.health import HealthCheck
from services.api.ratelimit import RateLimiter
from services.blobs import BlobStore
from services.config import Settings
from services.dispatch import Dispatcher
from services.ledger import Ledger
from services.ocr.pages import PageLimits


@dataclass(frozen=True)
class ApiContext:
    ledger: Ledger
    blobs: BlobStore
    dispatcher: Dispatcher
    settings: Settings
    page_limits: PageLimits
    limiter: RateLimiter
    health_checks: Mapping[str, HealthCheck]


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx
