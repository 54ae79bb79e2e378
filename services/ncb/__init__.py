"""Submitting claims to NCB, the insurer's core claims system.

The stand-in server (``services.demo.ncb_standin``) is not imported here so workers do
not pull in FastAPI/uvicorn.
"""

from services.ncb.breaker import (
    BreakerState,
    BreakerStore,
    CircuitBreaker,
    CircuitOpen,
    MemoryBreakerStore,
    RedisBreakerStore,
)
from services.ncb.client import NcbClient
from services.ncb.contract import DEFAULT_FIELD_NAMES, ClaimSubmission, NcbContract, SubmitResult
from services.ncb.errors import ClaimRejected, NcbAuthError, NcbError, NcbUnavailable

__all__ = [
    "DEFAULT_FIELD_NAMES",
    "BreakerState",
    "BreakerStore",
    "CircuitBreaker",
    "CircuitOpen",
    "ClaimRejected",
    "ClaimSubmission",
    "MemoryBreakerStore",
    "NcbAuthError",
    "NcbClient",
    "NcbContract",
    "NcbError",
    "NcbUnavailable",
    "RedisBreakerStore",
    "SubmitResult",
]
