"""The Google stand-in as one FastAPI app (each API's routes live in their own module)."""

from __future__ import annotations

from fastapi import FastAPI

from services.demo.google_standin import drive, gmail, oauth, sheets
from services.demo.google_standin.state import GoogleStandinState


def create_app(state: GoogleStandinState | None = None) -> FastAPI:
    state = state or GoogleStandinState()
    app = FastAPI(title="Google APIs stand-in", docs_url=None, redoc_url=None)
    app.state.standin = state
    for module in (oauth, gmail, drive, sheets):
        app.include_router(module.router(state))
    return app
