"""The API's outermost layer: request id, body size limit, access log, last-resort 500;
and CORS whose refusals have the API's error shape.

One pure ASGI middleware rather than several, so their order is plain to see and every
response (errors and 500s included) gets its ``X-Request-ID``. The body limit is counted
while the body is read, so a client that sends no or a false Content-Length is cut off
too. The access log line names the route's template (``/api/v1/jobs/{job_id}``), never
the raw path or query string: ids are fine to log, but a query string may one day carry
something that is not.
"""

from __future__ import annotations

import re
import time
import traceback
import uuid
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import ApiError, error_body
from services.logs import bound_contextvars, get_logger
from services.sentry import report_exception

log = get_logger("services.api.access")

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, "payload_too_large", f"The request body is larger than {limit} bytes."
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template, or a fixed word when none matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "<unmatched>"


class ApiMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        limit = self.max_body_bytes
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        with bound_contextvars(request_id=request_id):
            try:
                length = _content_length(scope)
                if length is not None and length > limit:
                    await self._error(send_with_id, 413, "payload_too_large", request_id, limit)
                else:
                    await self.app(scope, receive_limited, send_with_id)
            except BodyTooLarge:
                if status == 0:
                    await self._error(send_with_id, 413, "payload_too_large", request_id, limit)
            except Exception as exc:
                self._log_crash(scope, exc)
                report_exception(exc)  # caught here, so Sentry's own hooks never see it
                if status == 0:
                    await self._error(send_with_id, 500, "internal_error", request_id, limit)
            finally:
                state: dict[str, Any] = scope.get("state", {})
                # A scrape every few seconds is not news; a failed one is.
                quiet = route_template(scope) == "/metrics" and 0 < status < 400
                (log.debug if quiet else log.info)(
                    "api request",
                    method=scope.get("method"),
                    route=route_template(scope),
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    key=state.get("api_key_name"),
                )

    @staticmethod
    def _log_crash(scope: Scope, exc: Exception) -> None:
        """Where it broke and what kind of error, not its message (it may hold data)."""
        frames = traceback.extract_tb(exc.__traceback__)
        where = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}" for f in frames[-6:]]
        log.error(
            "api request failed",
            route=route_template(scope),
            error=type(exc).__name__,
            where=where,
        )

    @staticmethod
    async def _error(send: Send, status: int, code: str, request_id: str, limit: int) -> None:
        message = f"The request body is larger than {limit} bytes." if status == 413 else None
        body = error_body(status, code, message, request_id)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ApiCors(CORSMiddleware):
    """Starlette's CORS, but a refused preflight is a 403 in the API's error shape
    (Starlette answers a plain-text 400)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if (
            headers is not None
            and scope["method"] == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        ):
            response = self.preflight_response(request_headers=headers)
            if response.status_code == 400:
                request_id = scope.get("state", {}).get("request_id", "")
                message = "This origin, method or header may not call the API (CORS)."
                response = Response(
                    error_body(403, "forbidden", message, request_id),
                    status_code=403,
                    media_type="application/json",
                )
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
