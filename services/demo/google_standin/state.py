"""What every part of the Google stand-in shares: faults to inject, and Google's error shape."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

#: The part of the stand-in a fault applies to.
APIS = ("gmail", "drive", "sheets", "oauth")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}


@dataclass(frozen=True)
class ApiFault:
    status: int
    #: Google's ``errors[0].reason`` (``rateLimitExceeded``, ``backendError``, ...).
    reason: str = ""
    retry_after_s: float | None = None


class GoogleStandinState:
    """Faults for each API; each API module keeps its own data on this object.

    Thread-safe: the server runs in a thread while the test changes switches.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, deque[ApiFault]] = {api: deque() for api in APIS}
        self._down_until: dict[str, tuple[float, ApiFault]] = {}
        self.down_hook: Any = None  # set by StandinServer: callable(seconds)
        #: Filled by the API modules (their stores), keyed by API name.
        self.stores: dict[str, Any] = {}

    def fail_next(
        self,
        api: str,
        status: int,
        count: int = 1,
        *,
        reason: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        """The next ``count`` requests to ``api`` answer ``status`` with Google's error body."""
        with self._lock:
            self._faults[api].extend(ApiFault(status, reason, retry_after_s) for _ in range(count))

    def fail_for(self, api: str, seconds: float, status: int = 503, reason: str = "") -> None:
        """Every request to ``api`` answers ``status`` for ``seconds`` (an outage)."""
        with self._lock:
            self._down_until[api] = (time.monotonic() + seconds, ApiFault(status, reason))

    def clear_faults(self) -> None:
        with self._lock:
            for queue in self._faults.values():
                queue.clear()
            self._down_until.clear()

    def take_fault(self, api: str) -> ApiFault | None:
        with self._lock:
            down = self._down_until.get(api)
            if down is not None:
                if time.monotonic() < down[0]:
                    return down[1]
                del self._down_until[api]
            queue = self._faults[api]
            return queue.popleft() if queue else None

    def fault_response(self, api: str) -> JSONResponse | None:
        """The error to answer instead of the real reply, if a fault is due."""
        fault = self.take_fault(api)
        if fault is None:
            return None
        return google_error(fault.status, fault.reason, fault.retry_after_s)


def google_error(
    status: int, reason: str = "", retry_after_s: float | None = None, message: str = ""
) -> JSONResponse:
    """An error in the shape Google's JSON APIs use (what ``HttpError`` parses)."""
    reason = reason or {429: "rateLimitExceeded", 404: "notFound"}.get(status, "backendError")
    message = message or f"stand-in fault: {reason}"
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
    headers = {"Retry-After": f"{retry_after_s:.0f}"} if retry_after_s is not None else None
    return JSONResponse(body, status_code=status, headers=headers)
