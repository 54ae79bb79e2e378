"""One error shape for every 4xx and 5xx the API sends (see the contract).

``{"error": {"code", "message", "request_id"}}``: clients branch on ``code`` and show
``message``; ``request_id`` ties a report to the server's log line. Messages never echo
what the client sent (a body may hold claim data) and a 500 never shows internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

#: The code each status gets when the raiser did not name one.
CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}
MESSAGES = {
    401: "A valid API key is required (Authorization: Bearer <key>).",
    403: "This key's role may not do this.",
    404: "Nothing is found at this address.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
    500: "Something went wrong on our side; quote the request id when reporting it.",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable snake_case code, e.g. not_found, conflict.")
    message: str = Field(description="A sentence for people.")
    request_id: str = Field(description="The X-Request-ID of the request.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


class ApiError(HTTPException):
    """An error with its own code and message (``detail`` carries both).

    A FastAPI ``HTTPException`` so that one raised while FastAPI reads the body (the
    size limit) passes through as itself instead of becoming a 400.
    """

    def __init__(
        self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status_code, detail={"code": code, "message": message}, headers=headers)


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def error_body(status: int, code: str | None, message: str | None, request_id: str) -> bytes:
    body = ErrorResponse(
        error=ErrorDetail(
            code=code or CODES.get(status, "error"),
            message=message or MESSAGES.get(status, "The request failed."),
            request_id=request_id,
        )
    )
    return body.model_dump_json().encode()


def error_response(
    request: Request,
    status: int,
    code: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(status, code, message, request_id_of(request)),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's "error parsing the body" (not UTF-8, not JSON): one status for every
        # request the API cannot take as given, as the contract says.
        return error_response(request, 422, "invalid_request", "The body is not valid JSON.")
    code = message = None
    if isinstance(exc.detail, dict):
        code, message = exc.detail.get("code"), exc.detail.get("message")
    elif exc.status_code not in MESSAGES and isinstance(exc.detail, str):
        message = exc.detail
    return error_response(request, exc.status_code, code, message, exc.headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    message = "Invalid request: " + "; ".join(problems) if problems else "Invalid request."
    return error_response(request, 422, "invalid_request", message)


def install_error_handlers(app: FastAPI) -> None:
    """HTTP errors (ours, 404 for unknown routes, 405) and validation errors, one shape.

    Unexpected exceptions are answered by the middleware (``middleware.ApiMiddleware``)
    so that even they carry the request id and never reach the server's own handler.
    """
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


#: ``responses=`` for a route: each listed status documented with the error model.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": MESSAGES.get(status, CODES[status])}
        for status in statuses
    }
