"""API keys on every /api/v1 route: who is calling, whether they may, and how often.

The key comes as ``Authorization: Bearer <key>`` (or ``X-API-Key``). A missing, unknown
or revoked key is a 401 that never says which of those it was. Requests are counted per
key (and, for failed attempts, per client address, so guessing keys is slow too) before
the role is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request

from services.api.context import ApiContext, context
from services.api.errors import ApiError
from services.ledger import Role


@dataclass(frozen=True)
class Caller:
    key_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """How the caller's actions show in a job's event trail."""
        return f"api:{self.name}"


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _limit(ctx: ApiContext, identity: str) -> None:
    verdict = ctx.limiter.hit(identity)
    if not verdict.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests; try again in {verdict.retry_after_s} s.",
            headers={"Retry-After": str(verdict.retry_after_s)},
        )


def authenticated(request: Request, ctx: ApiContext = Depends(context)) -> Caller:  # noqa: B008
    key = _presented_key(request)
    view = ctx.ledger.apikeys.verify(key) if key else None
    if view is None:
        client = request.client.host if request.client else "unknown"
        _limit(ctx, f"anonymous:{client}")
        raise ApiError(
            401,
            "unauthorized",
            "A valid API key is required (Authorization: Bearer <key>).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.api_key_name = view.name
    _limit(ctx, f"key:{view.id}")
    return Caller(view.id, view.name, view.role)


def require(role: Role) -> Callable[..., Caller]:
    """A dependency that lets through keys of ``role`` or above (403 otherwise)."""

    def check(caller: Caller = Depends(authenticated)) -> Caller:  # noqa: B008
        if not caller.role.allows(role):
            raise ApiError(403, "forbidden", f"This needs the {role} role or above.")
        return caller

    return check
