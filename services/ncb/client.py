"""The submitter: speaks the NCB contract over httpx and turns every answer into a
decision (accepted, rejected, stop, try later).

Retries inside one call are short (tenacity, exponential backoff with full jitter,
bounded attempts) so a Celery worker is not held for long; when they run out the
client raises :class:`NcbUnavailable` and the task puts the claim back in the queue.
The circuit breaker makes every worker fail fast while NCB is known to be down.
"""

from __future__ import annotations

import email.utils
import logging
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from services import metrics
from services.ncb.breaker import CircuitBreaker, CircuitOpen
from services.ncb.contract import ClaimSubmission, NcbContract, SubmitResult
from services.ncb.errors import ClaimRejected, NcbAuthError, NcbUnavailable

log = logging.getLogger(__name__)

USER_AGENT = "claims-ocr/0.1"


class _Transient(Exception):
    """One attempt failed in a way that a later attempt may not (internal).

    ``ncb_asked``: ``retry_after_s`` came from NCB's ``Retry-After`` header.
    """

    def __init__(
        self, reason: str, retry_after_s: float | None = None, *, ncb_asked: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.ncb_asked = ncb_asked


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class NcbClient:
    """Synchronous NCB client; one per worker process, reused across tasks.

    Timings are constructor parameters so tests can run the whole retry and breaker
    story in well under a second.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        timeout_s: float = 15.0,
        max_attempts: int = 8,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        requeue_after_s: float = 60.0,
        breaker: CircuitBreaker | None = None,
        contract: NcbContract | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("NCB base URL is empty (set NCB_API_BASE_URL)")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key or key != key.strip():
            raise ValueError("NCB API key is empty or has surrounding whitespace")
        self.contract = contract or NcbContract()
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.max_retry_after_s = max_retry_after_s
        self.requeue_after_s = requeue_after_s
        self.breaker = breaker or CircuitBreaker(probe_ttl_s=max(2 * timeout_s, 1.0))
        self._backoff = wait_random_exponential(multiplier=base_delay_s, max=max_delay_s)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            headers={"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT},
            follow_redirects=False,
            transport=transport,
        )

    # -- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- API -------------------------------------------------------------------------

    def health(self) -> bool:
        """True when NCB answers its health check with a 2xx (no retries, no breaker)."""
        try:
            response = self._http.get(self.contract.health_path)
        except httpx.HTTPError:
            return False
        return response.is_success

    def submit(self, job_id: str, claim: ClaimSubmission) -> SubmitResult:
        """Submit one claim; ``job_id`` is the Idempotency-Key on every attempt.

        Returns on 201/200/409 (NCB holds the claim). Raises :class:`ClaimRejected`
        (permanent, review), :class:`NcbAuthError` (stop, alert) or
        :class:`NcbUnavailable` (requeue after ``retry_after_s``). A ``Retry-After`` up to
        ``max_retry_after_s`` is slept here; a longer one is returned at once (with
        ``ncb_asked``) so the caller can pause every worker instead of holding this one.
        """
        if not job_id:
            raise ValueError("job_id (the Idempotency-Key) must not be empty")
        body = claim.to_body(self.contract)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            before_sleep=self._log_sleep(job_id),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(job_id, body, attempt.retry_state.attempt_number)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise self._exhausted(job_id, last) from last
        raise AssertionError("unreachable")  # pragma: no cover

    # -- internals -------------------------------------------------------------------

    def _attempt(self, job_id: str, body: dict[str, Any], attempt: int) -> SubmitResult:
        try:
            is_probe = self.breaker.before_call()
        except CircuitOpen as exc:
            log.warning(
                "ncb submit skipped, circuit open job=%s attempt=%d remaining_s=%.2f",
                job_id,
                attempt,
                exc.remaining_s,
                extra={"job_id": job_id, "attempt": attempt},
            )
            raise NcbUnavailable(exc.remaining_s, "circuit open") from exc

        request_id = str(uuid.uuid4())
        headers = {"Idempotency-Key": job_id, "X-Request-ID": request_id}
        started = time.perf_counter()
        try:
            response = self._http.post(self.contract.submit_path, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            self._log(job_id, request_id, attempt, None, started, "timeout")
            self.breaker.record_failure()
            raise _Transient("timeout") from exc
        except httpx.LocalProtocolError:
            raise  # our own request is malformed: a bug, not an NCB outage
        except httpx.TransportError as exc:
            self._log(job_id, request_id, attempt, None, started, type(exc).__name__)
            self.breaker.record_failure()
            raise _Transient(f"connection: {type(exc).__name__}") from exc
        status = response.status_code
        self._log(job_id, request_id, attempt, status, started)

        if status >= 500:
            self.breaker.record_failure()
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                self._check_inline_wait(job_id, status, retry_after)
            raise _Transient(f"HTTP {status}", retry_after, ncb_asked=retry_after is not None)
        if status == 429:
            # Rate limiting says NCB is alive: neither a failure nor a success.
            if is_probe:
                self.breaker.record_success()
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                raise _Transient("HTTP 429", self.base_delay_s)
            self._check_inline_wait(job_id, status, retry_after)
            raise _Transient("HTTP 429", retry_after, ncb_asked=True)

        self.breaker.record_success()
        return self._decide(response, request_id, attempt)

    def _check_inline_wait(self, job_id: str, status: int, retry_after: float) -> None:
        """Too long to hold a worker asleep: hand NCB's wait to the caller instead."""
        if retry_after <= self.max_retry_after_s:
            return
        log.warning(
            "ncb asked to wait longer than a worker sleeps job=%s status=%d retry_after_s=%.1f",
            job_id,
            status,
            retry_after,
            extra={"job_id": job_id, "status": status},
        )
        reason = "rate limited" if status == 429 else f"HTTP {status}"
        raise NcbUnavailable(retry_after, reason, ncb_asked=True)

    def _decide(self, response: httpx.Response, request_id: str, attempt: int) -> SubmitResult:
        c = self.contract
        status = response.status_code
        payload = _json_object(response)
        code = str(payload.get(c.error_code_key) or f"HTTP_{status}")
        reference = payload.get(c.reference_key)
        if status in (200, 201):
            if not isinstance(reference, str) or not reference:
                raise ClaimRejected(
                    "NO_REFERENCE", "NCB accepted without a claim reference", status_code=status
                )
            return SubmitResult(reference, status, request_id, attempt, replayed=status == 200)
        if status == 409 and code == c.duplicate_code and isinstance(reference, str) and reference:
            return SubmitResult(reference, status, request_id, attempt, duplicate=True)
        if status in (401, 403):
            raise NcbAuthError(status, code)
        details = payload.get(c.details_key)
        raise ClaimRejected(
            code,
            str(payload.get(c.message_key) or ""),
            details if isinstance(details, dict) else {},
            status_code=status,
        )

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after_s is not None:
            return max(exc.retry_after_s, backoff)
        return backoff

    def _exhausted(self, job_id: str, last: BaseException | None) -> NcbUnavailable:
        reason = last.reason if isinstance(last, _Transient) else "unknown"
        hint = last.retry_after_s if isinstance(last, _Transient) else None
        ncb_asked = isinstance(last, _Transient) and last.ncb_asked
        remaining = self.breaker.store.open_remaining(self.breaker.name)
        retry_after = max(hint or 0.0, remaining) or self.requeue_after_s
        log.warning(
            "ncb submit gave up job=%s attempts=%d reason=%s retry_after_s=%.1f",
            job_id,
            self.max_attempts,
            reason,
            retry_after,
            extra={"job_id": job_id},
        )
        return NcbUnavailable(
            retry_after, f"{reason} after {self.max_attempts} attempts", ncb_asked=ncb_asked
        )

    @staticmethod
    def _log_sleep(job_id: str) -> Any:
        def before_sleep(state: RetryCallState) -> None:
            sleep = state.next_action.sleep if state.next_action else 0.0
            log.info(
                "ncb submit retry job=%s attempt=%d sleep_s=%.2f",
                job_id,
                state.attempt_number,
                sleep,
                extra={"job_id": job_id, "attempt": state.attempt_number},
            )

        return before_sleep

    @staticmethod
    def _log(
        job_id: str,
        request_id: str,
        attempt: int,
        status: int | None,
        started: float,
        error: str = "",
    ) -> None:
        # Ids, status and timing only: never the body (amounts, policy numbers).
        seconds = time.perf_counter() - started
        metrics.observe_ncb_request(seconds)  # every request ends here, answered or not
        latency_ms = seconds * 1000
        log.info(
            "ncb submit job=%s request_id=%s attempt=%d status=%s latency_ms=%.0f%s",
            job_id,
            request_id,
            attempt,
            status,
            latency_ms,
            f" error={error}" if error else "",
            extra={
                "job_id": job_id,
                "request_id": request_id,
                "attempt": attempt,
                "status": status,
                "latency_ms": round(latency_ms),
            },
        )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}
