"""The admin API's HTTP behaviour that does not depend on the database (SQLite only):
health, request ids, the error shape, body and rate limits, CORS, the access log and the
OpenAPI document."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import structlog

from services import heartbeats
from services.api.health import (
    broker_check,
    ledger_check,
    mail_source_check,
    ncb_circuit_check,
    ncb_reachability_check,
    ocr_engine_check,
    outbox_check,
    queue_depth_check,
    worker_check,
)
from services.api.ratelimit import RateLimiter
from services.demo.ncb_standin import StandinServer
from services.ledger import Ledger
from services.logs import configure_logging
from services.ncb import CircuitBreaker, MemoryBreakerStore
from tests.integration.test_api import error_of
from tests.support.api_fixtures import Api


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """This process's log lines as JSON objects, while the test runs."""
    stream = io.StringIO()
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    configure_logging("INFO", "json", process="test", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line]
    structlog.reset_defaults()
    root.handlers[:] = before[0]
    root.setLevel(before[1])


def test_liveness_needs_nothing(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    ready = api.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "healthy",
        "checks": {"ledger": {"status": "ok", "detail": "sqlite answers"}},
    }


@pytest.fixture
def test_redis(redis_server: str) -> Iterator[redis.Redis]:
    """The test Redis, not flushed: only keys of this test's own names are touched."""
    client = redis.Redis.from_url(redis_server, socket_timeout=2, socket_connect_timeout=2)
    yield client
    client.close()


def test_readiness_runs_every_check_for_real(
    ledger: Ledger, api_factory: Any, test_redis: redis.Redis
) -> None:
    ncb = StandinServer().start()
    queue = f"test-queue-{uuid.uuid4().hex}"
    breaker = CircuitBreaker(MemoryBreakerStore(), threshold=1, cooldown_s=60)
    clock = {"now": datetime.now(UTC)}
    checks = {
        "ledger": ledger_check(ledger),
        "broker": broker_check(test_redis),
        "mail_source": mail_source_check(ledger, "maildir", 60, now=lambda: clock["now"]),
        "ncb_circuit": ncb_circuit_check(breaker),
        "queues": queue_depth_check(test_redis, queues=(queue,), high=2),
        "outbox": outbox_check(ledger),
        "ocr_engine": ocr_engine_check("onnx", "cpu", list),
        "ncb": ncb_reachability_check(ncb.url),
    }
    api: Api = api_factory(health_checks=checks)

    def ready(api: Api = api) -> tuple[int, dict[str, Any]]:
        response = api.client.get("/health/ready")
        return response.status_code, response.json()

    status, body = ready()
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["mail_source"]["status"] == "degraded"  # never synced
    assert {k for k, v in body["checks"].items() if v["status"] == "ok"} == {
        "ledger",
        "broker",
        "ncb_circuit",
        "queues",
        "outbox",
        "ocr_engine",
        "ncb",
    }
    ledger.sources.record_sync("maildir")
    status, body = ready()
    assert status == 200 and body["status"] == "healthy", body
    assert body["checks"]["queues"]["detail"] == f"{queue}=0"

    try:
        test_redis.rpush(queue, "a", "b", "c")
        breaker.record_failure()
        clock["now"] += timedelta(minutes=4)
        status, body = ready()
    finally:
        test_redis.delete(queue)
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["queues"] == {"status": "degraded", "detail": f"{queue}=3"}
    assert body["checks"]["ncb_circuit"] == {"status": "degraded", "detail": "circuit open"}
    assert body["checks"]["mail_source"]["status"] == "degraded"

    down = redis.Redis(port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    status, body = ready(api_factory(health_checks={"broker": broker_check(down)}))
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"]["broker"] == {"status": "down", "detail": "check failed: ConnectionError"}

    # NCB gone is degraded (claims wait); an engine this installation lacks is down.
    ncb.stop()
    no_gpu = ocr_engine_check("onnx", "cuda", lambda: ["no CUDAExecutionProvider"])
    status, body = ready(
        api_factory(health_checks={"ncb": ncb_reachability_check(ncb.url), "ocr": no_gpu})
    )
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"]["ncb"] == {
        "status": "degraded",
        "detail": "NCB unreachable (ConnectError)",
    }
    assert body["checks"]["ocr"] == {
        "status": "down",
        "detail": "onnx on cuda: no CUDAExecutionProvider",
    }


def test_readiness_sees_a_live_worker_for_each_queue(
    api_factory: Any, test_redis: redis.Redis
) -> None:
    for key in test_redis.scan_iter(match=heartbeats.PREFIX + "*"):
        test_redis.delete(key)  # heartbeats of earlier runs on this database
    api: Api = api_factory(health_checks={"workers": worker_check(test_redis)})

    def workers() -> dict[str, Any]:
        return dict(api.client.get("/health/ready").json()["checks"]["workers"])

    assert workers() == {
        "status": "degraded",
        "detail": "0 live worker node(s); none for poll, ocr, submit",
    }
    heartbeats.beat_once(test_redis, "ocr@host", ["ocr"])
    stop = heartbeats.start_heartbeat(test_redis, "submit@host", ["poll", "submit"], 0.05)
    try:
        assert workers() == {"status": "ok", "detail": "2 live worker node(s)"}
        test_redis.delete(heartbeats.PREFIX + "ocr@host")  # as if its TTL ran out
        assert workers()["detail"] == "1 live worker node(s); none for ocr"
    finally:
        stop.set()
        time.sleep(0.1)
        test_redis.delete(heartbeats.PREFIX + "submit@host")


def test_request_ids(api: Api) -> None:
    echoed = api.client.get("/health", headers={"X-Request-ID": "abc-123.x:y"})
    assert echoed.headers["x-request-id"] == "abc-123.x:y"
    for insane in ("a b", "x" * 200, "<script>"):
        fresh = api.client.get("/health", headers={"X-Request-ID": insane}).headers["x-request-id"]
        assert len(fresh) == 32 and int(fresh, 16) >= 0
    first = api.client.get("/health").headers["x-request-id"]
    assert first != api.client.get("/health").headers["x-request-id"]
    error = error_of(
        api.client.get("/api/v1/stats", headers={"X-Request-ID": "r-1"}), 401, "unauthorized"
    )
    assert error["request_id"] == "r-1"


def test_unknown_routes_and_methods_have_the_error_shape(api: Api) -> None:
    error_of(api.client.get("/nowhere"), 404, "not_found")
    error_of(api.get("/api/v1/nowhere"), 404, "not_found")
    error_of(api.client.delete("/api/v1/jobs", headers=api.headers()), 405, "method_not_allowed")
    error_of(api.client.put("/health"), 405, "method_not_allowed")


class BrokenBlobs:
    """A blob store whose disk fails with a message that must not reach the client."""

    def put(self, data: bytes) -> str:
        raise RuntimeError("Ann Member 150.00")

    def get(self, key: str) -> bytes:
        raise RuntimeError("Ann Member 150.00 /secret/path")


def test_an_unexpected_error_is_a_500_without_internals(
    api_factory: Any, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    api: Api = api_factory(blobs=BrokenBlobs())
    job = api.add_job()  # stored through the fixture's own real store
    response = api.get(f"/api/v1/jobs/{job}/attachment")
    error = error_of(response, 500, "internal_error")
    assert "Ann" not in response.text and "secret" not in response.text
    assert "RuntimeError" not in error["message"]
    (failure,) = [line for line in logged() if line["event"] == "api request failed"]
    assert failure["error"] == "RuntimeError"
    assert failure["request_id"] == error["request_id"]
    assert failure["route"] == "/api/v1/jobs/{job_id}/attachment"
    assert "Ann" not in json.dumps(logged())


def test_body_size_limit(api_factory: Any) -> None:
    api: Api = api_factory(API_MAX_BODY_BYTES=2048)
    job = api.add_job()
    big = b'{"reason": "' + b"x" * 4000 + b'"}'
    url = f"/api/v1/exceptions/{job}/reject"
    headers = {**api.headers("reviewer"), "Content-Type": "application/json"}
    error_of(api.client.post(url, content=big, headers=headers), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 500):
            yield big[i : i + 500]

    chunked = api.client.post(url, content=chunks(), headers=headers)
    assert "content-length" not in chunked.request.headers
    error_of(chunked, 413, "payload_too_large")
    assert api.ledger.get_job(job).state == "needs_review"
    ok = api.client.post(url, json={"reason": "small enough"}, headers=headers)
    assert ok.status_code == 200


def _limited(api: Api, role: str, n: int) -> list[int]:
    return [api.get("/api/v1/stats", role).status_code for _ in range(n)]


def test_rate_limit_per_key_in_memory(api_factory: Any) -> None:
    api: Api = api_factory(API_RATE_LIMIT="3/minute")
    assert _limited(api, "viewer", 3) == [200, 200, 200]
    response = api.get("/api/v1/stats", "viewer")
    error_of(response, 429, "rate_limited")
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert _limited(api, "admin", 3) == [200, 200, 200]  # another key has its own count
    # Failed attempts are counted per address, so keys cannot be guessed fast either.
    attempts = [
        api.client.get("/api/v1/stats", headers={"Authorization": "Bearer coa_x_y"}).status_code
        for _ in range(4)
    ]
    assert attempts == [401, 401, 401, 429]


def test_rate_limit_shared_through_redis(api_factory: Any, redis_server: str) -> None:
    api: Api = api_factory(API_RATE_LIMIT="2/minute", REDIS_URL=redis_server)
    assert type(api.server.app.state.api.limiter.storage).__name__ == "RedisStorage"
    other_process = RateLimiter.from_settings("2/minute", redis_server)
    key_id = api.key("viewer").split("_")[1]
    assert other_process.hit(f"key:{key_id}").allowed  # another API process counts too
    assert _limited(api, "viewer", 2) == [200, 429]


def test_cors(api_factory: Any) -> None:
    api: Api = api_factory(API_CORS_ORIGINS="https://ops.example, https://two.example")
    preflight = api.client.options(
        "/api/v1/jobs",
        headers={
            "Origin": "https://ops.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ops.example"
    got = api.client.get(
        "/api/v1/stats", headers={**api.headers(), "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in got.headers
    refused = api.client.options(
        "/api/v1/jobs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    error_of(refused, 403, "forbidden")


def test_no_cors_by_default(api: Api) -> None:
    got = api.client.get(
        "/api/v1/stats", headers={**api.headers(), "Origin": "https://ops.example"}
    )
    assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


def test_access_log_names_the_route_not_the_path(
    api: Api, logged: Callable[[], list[dict[str, Any]]]
) -> None:
    job = api.add_job()
    first = len(logged())
    api.get(f"/api/v1/jobs/{job}", "viewer", params={"reason_code": "Ann Member"})
    api.get("/api/v1/jobs", "viewer", params={"reason_code": "Ann Member"})
    # The server thread logs once the response is sent: give the last line a moment.
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in logged()[first:] if line["event"] == "api request"]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(lines) == 2
    viewer = next(k for k in api.ledger.apikeys.list() if k.role == "viewer")
    assert lines[0]["route"] == "/api/v1/jobs/{job_id}" and lines[1]["route"] == "/api/v1/jobs"
    for line in lines:
        assert line["method"] == "GET" and line["status"] == 200 and line["key"] == viewer.name
        assert line["duration_ms"] >= 0
    text = json.dumps(logged()[first:])
    assert job not in text and "Ann" not in text and "reason_code" not in text


def test_openapi_documents_every_error(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/v1")
    ]
    assert len(operations) == 10
    error_ref = "#/components/schemas/ErrorResponse"
    for path, method, op in operations:
        needed = {"401", "403", "422", "429", "500"}
        if "{job_id}" in path:
            needed.add("404")
        if method == "post":
            needed |= {"409", "413"}
        if path == "/api/v1/stats":
            needed.discard("422")
        assert needed <= set(op["responses"]), (path, method)
        for status in needed:
            content = op["responses"][status]["content"]["application/json"]
            assert content["schema"]["$ref"] == error_ref


def test_the_review_page_is_served(api: Api) -> None:
    page = api.client.get("/review")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_the_api_command_serves_until_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "CLAIMS_OCR_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        # Nothing answers here: the broker check is down and limits count in memory.
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert live.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
        body = ready.json()
        assert set(body["checks"]) == {
            "ledger",
            "broker",
            "mail_source",
            "ocr_engine",
            "ncb",
            "ncb_circuit",
            "queues",
            "workers",
            "outbox",
        }
        assert body["checks"]["ledger"]["status"] == "ok"
        assert body["checks"]["broker"]["status"] == "down" and ready.status_code == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in output.decode().splitlines() if line.startswith("{")]
    assert any(line["event"] == "admin API listening" for line in lines)
    assert any(line.get("route") == "/health/ready" for line in lines)


def test_run_refuses_to_start_when_the_api_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "workers.cli", "run", "--demo"],
            env={
                **os.environ,
                "CLAIMS_OCR_DATA_DIR": str(tmp_path / "data"),
                "REDIS_URL": "redis://127.0.0.1:1/0",
                "API_PORT": str(port),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"API_PORT {port} on 127.0.0.1 is in use" in result.stderr
    assert not (tmp_path / "data" / "logs").exists()  # nothing was started
