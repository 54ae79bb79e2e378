"""``GET /metrics``: Prometheus' text format, no API key (scrapers sit on the private
network; nothing in it is claim data). Left out of the OpenAPI schema: it is for
Prometheus, not for API clients.

What it serves is built by ``create_app`` (``services.metrics.api_registry``): this
process's own metrics and, where the wiring hands one in, the scrape-time gauges of the
whole pipeline (jobs per state, queues, exception queue, outbox, mail source, disk),
which only the API exports.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
