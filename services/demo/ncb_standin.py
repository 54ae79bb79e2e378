"""A small NCB stand-in: the contract of ``docs/ncb-api.md`` plus switches to fail.

Tests and the local demo talk to it over real HTTP. It checks the bearer key,
validates the body, honours Idempotency-Key, answers 409 to a duplicate
(invoice + policy + amount) under another key, and can be told to be slow, answer
N errors (5xx, 429 with Retry-After), drop connections, or go down altogether
(the listening socket closes, so clients get "connection refused").

Control endpoints live under ``/_standin/`` (see :func:`create_app`); in-process
callers can use :class:`StandinState` directly. Run as a process with
``python -m services.demo.ncb_standin --port 8099 --record claims.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from services.config import STANDIN_NCB_API_KEY
from services.ncb.contract import NcbContract
from services.private_files import open_private
from services.threaded_server import ThreadedServer

log = logging.getLogger(__name__)

DEFAULT_API_KEY = STANDIN_NCB_API_KEY


@dataclass(frozen=True)
class _Fault:
    status: int  # 0 = drop the connection
    retry_after_s: float | None = None


class StandinState:
    """Everything the stand-in remembers; thread-safe (the server runs in a thread)."""

    def __init__(self, record_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self.record_path = record_path
        self.latency_s = 0.0
        self._faults: deque[_Fault] = deque()
        self._claims: list[dict[str, Any]] = []
        self._requests: list[dict[str, Any]] = []
        self._by_key: dict[str, str] = {}
        self._by_identity: dict[tuple[str, str, str], str] = {}
        self._seq = 567890
        self.down_hook: Any = None  # set by StandinServer: callable(seconds)
        if record_path is not None:
            # Created at once: an empty record says "NCB holds no claim" to the checker.
            os.close(open_private(record_path, os.O_WRONLY | os.O_APPEND))
            for claim in read_records(record_path):
                self._remember(claim)

    # -- faults --------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        self.latency_s = max(0.0, seconds)

    def fail_next(self, status: int, count: int = 1, retry_after_s: float | None = None) -> None:
        """The next ``count`` submissions answer ``status`` (with Retry-After if given)."""
        with self._lock:
            self._faults.extend(_Fault(status, retry_after_s) for _ in range(count))

    def rate_limit_next(self, count: int, retry_after_s: float) -> None:
        self.fail_next(429, count, retry_after_s)

    def drop_next(self, count: int = 1) -> None:
        """The next ``count`` submissions lose their connection mid-response."""
        with self._lock:
            self._faults.extend(_Fault(0) for _ in range(count))

    def pending_faults(self) -> int:
        """Injected faults no submission has met yet."""
        with self._lock:
            return len(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self.latency_s = 0.0

    def take_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def reset(self) -> None:
        """Forget claims, requests and faults (the record file is left alone)."""
        with self._lock:
            self._faults.clear()
            self._claims.clear()
            self._requests.clear()
            self._by_key.clear()
            self._by_identity.clear()
            self.latency_s = 0.0

    # -- what was received ---------------------------------------------------------

    @property
    def claims(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._claims)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def log_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def accept(
        self, key: str, identity: tuple[str, str, str], body: dict[str, Any], headers: dict
    ) -> tuple[int, str]:
        """Store a claim unless known: (201|200|409, reference)."""
        with self._lock:
            if key in self._by_key:
                return 200, self._by_key[key]
            if identity in self._by_identity:
                return 409, self._by_identity[identity]
            self._seq += 1
            reference = f"CLM-{date.today().year}-{self._seq:06d}"
            claim = {
                "claim_reference": reference,
                "idempotency_key": key,
                "identity": list(identity),
                "received_at": datetime.now().astimezone().isoformat(),
                "headers": headers,
                "body": body,
            }
            self._remember(claim)
            if self.record_path is not None:
                # Owner-only: the record holds the claims' policy numbers and amounts.
                fd = open_private(self.record_path, os.O_WRONLY | os.O_APPEND)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(claim) + "\n")
            return 201, reference

    def _remember(self, claim: dict[str, Any]) -> None:
        self._claims.append(claim)
        self._by_key[claim["idempotency_key"]] = claim["claim_reference"]
        self._by_identity[tuple(claim["identity"])] = claim["claim_reference"]
        number = claim["claim_reference"].rsplit("-", 1)[-1]
        if number.isdigit():
            self._seq = max(self._seq, int(number))


def read_records(path: Path) -> list[dict[str, Any]]:
    """Claims a stand-in persisted with ``--record`` (for the CLI's report)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# -- validation --------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(body: Any, c: NcbContract) -> tuple[str, str, str]:
    """Check the body like NCB would; return the duplicate identity."""
    if not isinstance(body, dict):
        raise _Invalid("body", "must be a JSON object")

    def required(attr: str) -> Any:
        name = c.name(attr)
        if name not in body or body[name] is None:
            raise _Invalid(name, "is required")
        return body[name]

    event = required("event_date")
    try:
        event_date = date.fromisoformat(event) if isinstance(event, str) else None
    except ValueError:
        event_date = None
    if event_date is None or len(event) != 10:
        raise _Invalid(c.name("event_date"), "must be a date YYYY-MM-DD")

    submitted = required("submitted_at")
    try:
        submitted_at = datetime.fromisoformat(submitted) if isinstance(submitted, str) else None
    except ValueError:
        submitted_at = None
    if submitted_at is None or submitted_at.tzinfo is None:
        raise _Invalid(c.name("submitted_at"), "must be an ISO 8601 date-time with offset")
    if event_date > submitted_at.date():
        raise _Invalid(c.name("event_date"), "is after the submission date")

    amount = required("amount")
    if not _is_number(amount) or amount <= 0:
        raise _Invalid(c.name("amount"), "must be a positive number")

    strings = {}
    for attr in ("invoice_number", "policy_number"):
        value = required(attr)
        if not isinstance(value, str) or not value.strip():
            raise _Invalid(c.name(attr), "must be a non-empty string")
        strings[attr] = value.strip()
    for attr in ("source_email_id", "source_filename"):
        if c.name(attr) in body and not isinstance(body[c.name(attr)], str):
            raise _Invalid(c.name(attr), "must be a string")
    conf_name = c.name("extraction_confidence")
    if conf_name in body and not (_is_number(body[conf_name]) and 0 <= body[conf_name] <= 1):
        raise _Invalid(conf_name, "must be a number between 0 and 1")

    try:
        amount_key = str(Decimal(str(amount)).quantize(Decimal("0.01")))
    except InvalidOperation as exc:  # pragma: no cover - numbers always convert
        raise _Invalid(c.name("amount"), "must be a number") from exc
    return strings["invoice_number"].upper(), strings["policy_number"].upper(), amount_key


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error_code": code, "message": message, **extra}, status_code=status
    )


# -- the app -------------------------------------------------------------------------


class _StatusFault(BaseModel):
    status: int = Field(ge=400, le=599)
    count: int = Field(default=1, ge=1)
    retry_after_s: float | None = Field(default=None, ge=0)


class _Latency(BaseModel):
    seconds: float = Field(ge=0)


class _Count(BaseModel):
    count: int = Field(default=1, ge=1)


class _Down(BaseModel):
    seconds: float = Field(gt=0, le=600)


def create_app(
    api_key: str = DEFAULT_API_KEY,
    *,
    record_path: Path | None = None,
    contract: NcbContract | None = None,
) -> FastAPI:
    """The stand-in app; its :class:`StandinState` is ``app.state.standin``."""
    c = contract or NcbContract()
    state = StandinState(record_path)
    app = FastAPI(title="NCB stand-in", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.standin = state

    @app.get(c.health_path)
    async def health() -> dict[str, str]:
        if state.latency_s:
            await asyncio.sleep(state.latency_s)
        return {"status": "ok"}

    @app.post(c.submit_path)
    async def submit(request: Request) -> Response:
        # Read the body first: a client that times out during the latency has still
        # delivered its claim, which is the case idempotency exists for.
        raw = await request.body()
        if state.latency_s:
            await asyncio.sleep(state.latency_s)
        key = request.headers.get("idempotency-key")
        seen = {
            "idempotency_key": key,
            "request_id": request.headers.get("x-request-id"),
            "content_type": request.headers.get("content-type"),
            "authorization_ok": request.headers.get("authorization") == f"Bearer {api_key}",
        }
        entry: dict[str, Any] = {"at": time.time(), "headers": seen, "status": None}
        state.log_request(entry)

        fault = state.take_fault()
        if fault is not None and fault.status == 0:
            entry["status"] = "dropped"
            return _DropConnection()
        if fault is not None:
            entry["status"] = fault.status
            headers = {}
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(int(fault.retry_after_s))
            code = "RATE_LIMITED" if fault.status == 429 else "INJECTED_FAULT"
            response = _error(fault.status, code, "fault injected by the stand-in")
            response.headers.update(headers)
            return response

        if not seen["authorization_ok"]:
            entry["status"] = 401
            return _error(401, "UNAUTHORIZED", "missing or invalid bearer token")
        if not key:
            entry["status"] = 400
            return _error(
                400,
                "VALIDATION_FAILED",
                "Idempotency-Key header is required",
                details={"field": "Idempotency-Key", "reason": "is required"},
            )
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        try:
            identity = _validate(body, c)
        except _Invalid as exc:
            entry["status"] = 400
            return _error(
                400,
                "VALIDATION_FAILED",
                f"{exc.field} {exc.reason}",
                details={"field": exc.field, "reason": exc.reason},
            )

        status, reference = state.accept(key, identity, body, seen)
        entry["status"] = status
        if status == 409:
            return _error(
                409,
                c.duplicate_code,
                "a claim with this invoice already exists",
                **{c.reference_key: reference},
            )
        return JSONResponse(
            {"success": True, c.reference_key: reference, "status": "received"},
            status_code=status,
        )

    @app.get("/_standin/claims")
    async def list_claims() -> list[dict[str, Any]]:
        return state.claims

    @app.get("/_standin/requests")
    async def list_requests() -> list[dict[str, Any]]:
        return state.requests

    @app.post("/_standin/reset")
    async def reset() -> dict[str, bool]:
        state.reset()
        return {"ok": True}

    @app.post("/_standin/faults/latency")
    async def latency(body: _Latency) -> dict[str, bool]:
        state.set_latency(body.seconds)
        return {"ok": True}

    @app.post("/_standin/faults/status")
    async def status_fault(body: _StatusFault) -> dict[str, bool]:
        state.fail_next(body.status, body.count, body.retry_after_s)
        return {"ok": True}

    @app.post("/_standin/faults/drop")
    async def drop(body: _Count) -> dict[str, bool]:
        state.drop_next(body.count)
        return {"ok": True}

    @app.post("/_standin/faults/clear")
    async def clear() -> dict[str, bool]:
        state.clear_faults()
        return {"ok": True}

    @app.post("/_standin/down")
    async def down(body: _Down) -> Response:
        if state.down_hook is None:
            return _error(501, "NOT_SUPPORTED", "not served by StandinServer")
        state.down_hook(body.seconds)
        return JSONResponse({"ok": True}, status_code=202)

    return app


class _DropConnection(Response):
    """Starts a response and dies mid-body: the client sees the connection drop."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        # Returning with the body incomplete makes uvicorn close the transport.


# -- the runner ----------------------------------------------------------------------


class StandinServer(ThreadedServer):
    """Serves the stand-in with uvicorn in a daemon thread (see ``ThreadedServer``)."""

    def __init__(
        self,
        app: FastAPI | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        record_path: Path | str | None = None,
        contract: NcbContract | None = None,
    ) -> None:
        path = Path(record_path) if record_path is not None else None
        super().__init__(
            app or create_app(api_key, record_path=path, contract=contract), host=host, port=port
        )
        self.api_key = api_key
        self.state.down_hook = self.go_down

    @property
    def state(self) -> StandinState:
        return self.app.state.standin

    def go_down(self, seconds: float) -> None:
        """Refuse connections for ``seconds``, then serve again (same port)."""

        def cycle() -> None:
            time.sleep(0.05)  # let the control request's response leave first
            self.stop()
            time.sleep(seconds)
            self.start()

        threading.Thread(target=cycle, daemon=True, name="ncb-standin-down").start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the NCB stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0 picks a free port")
    parser.add_argument(
        "--api-key", default=None, help="bearer key to accept (default: a random one, printed)"
    )
    parser.add_argument(
        "--record", type=Path, default=None, help="append accepted claims to this JSON-lines file"
    )
    args = parser.parse_args(argv)
    api_key = args.api_key or secrets.token_urlsafe(16)
    server = StandinServer(host=args.host, port=args.port, api_key=api_key, record_path=args.record)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        print(f"NCB stand-in listening on {server.url}", flush=True)
        if args.api_key is None:
            print(f"api key: {api_key}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
