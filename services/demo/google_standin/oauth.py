"""Placeholder: routes come with the oauth adapter."""

from __future__ import annotations

from fastapi import APIRouter

from services.demo.google_standin.state import GoogleStandinState


def router(state: GoogleStandinState) -> APIRouter:
    return APIRouter()
