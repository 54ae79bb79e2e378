"""``/api/v1/stats``: the dashboard's numbers (see ``services.ledger.stats``)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.errors import error_responses
from services.api.jobs import Ctx, Viewer
from services.api.models import Stats
from services.ledger.stats import ledger_stats

router = APIRouter(prefix="/api/v1", tags=["stats"])


@router.get(
    "/stats",
    response_model=Stats,
    summary="Counts, rates, review queue and processing times",
    responses=error_responses(401, 403, 429, 500),
)
def stats(ctx: Ctx, caller: Viewer) -> Stats:
    return Stats.of(ledger_stats(ctx.ledger))
