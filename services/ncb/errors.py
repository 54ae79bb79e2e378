"""What a submission can end in, besides success.

Each class maps to one decision for the caller, so a Celery task can branch on the
type alone: review the item, stop everything, or put it back in the queue.
"""

from __future__ import annotations

from typing import Any


class NcbError(Exception):
    """Base class for every NCB outcome that is not an accepted claim."""


class ClaimRejected(NcbError):
    """NCB refused this claim for good (400 and other unexpected 4xx).

    Permanent: retrying cannot help, the item goes to the exception queue with NCB's
    reason. ``message``/``details`` are NCB's words and may quote claim data, so the
    caller may show them to ops but must not log them.
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        details: dict[str, Any] | None = None,
        *,
        status_code: int | None = None,
    ) -> None:
        super().__init__(f"NCB rejected the claim: {code} (HTTP {status_code})")
        self.code = code
        self.message = message
        self.details = details or {}
        self.status_code = status_code


class NcbAuthError(NcbError):
    """401/403: every claim will fail until credentials change; stop and alert."""

    def __init__(self, status_code: int, code: str = "") -> None:
        super().__init__(f"NCB refused our credentials (HTTP {status_code} {code})".strip())
        self.status_code = status_code
        self.code = code


class NcbUnavailable(NcbError):
    """NCB is down, slow, rate-limiting or the circuit is open: try again later.

    ``retry_after_s`` is the earliest moment a new try makes sense; the claim stays
    queued meanwhile. ``ncb_asked`` is True when that wait is NCB's own (a
    ``Retry-After`` header on 429/5xx): NCB asked every client to pause, so the caller
    must hold all submissions, not only this claim, until then.
    """

    def __init__(self, retry_after_s: float, reason: str = "", *, ncb_asked: bool = False) -> None:
        super().__init__(f"NCB unavailable ({reason}); retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s
        self.reason = reason
        self.ncb_asked = ncb_asked
