"""The NCB stand-in itself: contract checks, control endpoints, persistence, process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.demo.ncb_standin import StandinServer, read_records

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


MISSING = object()


def body(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The contract's example body, with fields changed (or removed with MISSING)."""
    value: dict[str, Any] = {
        "Event date": "2024-12-15",
        "Submission Date": "2024-12-18T10:42:00+08:00",
        "Claim Amount": 150.00,
        "Invoice Number": "RCP-2024-001234",
        "Policy Number": "POL-67890",
        "source_email_id": "18c2f0a",
        "source_filename": "receipt_001.jpg",
        "extraction_confidence": 0.94,
    }
    for name, v in (changes or {}).items():
        if v is MISSING:
            del value[name]
        else:
            value[name] = v
    return value


def post(url: str, payload: Any, key: str | None = "job-1", headers: dict | None = None):
    h = {**AUTH, **(headers or {})}
    if key is not None:
        h["Idempotency-Key"] = key
    return httpx.post(f"{url}/claims/submit", json=payload, headers=h)


@pytest.fixture
def standin() -> Iterator[StandinServer]:
    with StandinServer(api_key=KEY) as server:
        yield server


def test_happy_path_and_error_body_shapes(standin: StandinServer):
    ok = post(standin.url, body())
    assert ok.status_code == 201
    assert ok.json() == {
        "success": True,
        "claim_reference": ok.json()["claim_reference"],
        "status": "received",
    }
    dup = post(standin.url, body(), key="job-2")
    assert dup.status_code == 409
    assert dup.json()["error_code"] == "DUPLICATE_CLAIM"
    assert dup.json()["claim_reference"] == ok.json()["claim_reference"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": KEY}])
def test_bearer_key_is_required(standin: StandinServer, headers: dict):
    r = httpx.post(
        f"{standin.url}/claims/submit", json=body(), headers={"Idempotency-Key": "k", **headers}
    )
    assert r.status_code == 401
    assert r.json()["error_code"] == "UNAUTHORIZED"
    assert standin.state.claims == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"Policy Number": MISSING}, "Policy Number"),
        ({"Invoice Number": "  "}, "Invoice Number"),
        ({"Claim Amount": "150.00"}, "Claim Amount"),
        ({"Claim Amount": True}, "Claim Amount"),
        ({"Claim Amount": -5}, "Claim Amount"),
        ({"Event date": "15/12/2024"}, "Event date"),
        ({"Event date": "2024-12-19"}, "Event date"),
        ({"Submission Date": "2024-12-18T10:42:00"}, "Submission Date"),
        ({"extraction_confidence": 2}, "extraction_confidence"),
        ({"source_filename": 7}, "source_filename"),
    ],
)
def test_validation_failures_name_the_field(standin: StandinServer, overrides: dict, field: str):
    r = post(standin.url, body(overrides))
    assert r.status_code == 400
    payload = r.json()
    assert payload["success"] is False
    assert payload["error_code"] == "VALIDATION_FAILED"
    assert payload["details"]["field"] == field
    assert payload["details"]["reason"]
    assert standin.state.claims == []


def test_non_object_body_and_missing_idempotency_key(standin: StandinServer):
    r = httpx.post(
        f"{standin.url}/claims/submit",
        content=b"not json",
        headers={**AUTH, "Idempotency-Key": "k"},
    )
    assert r.status_code == 400 and r.json()["details"]["field"] == "body"
    r = post(standin.url, body(), key=None)
    assert r.status_code == 400 and r.json()["details"]["field"] == "Idempotency-Key"


def test_control_endpoints(standin: StandinServer):
    ctl = f"{standin.url}/_standin"
    assert (
        httpx.post(
            f"{ctl}/faults/status", json={"status": 429, "count": 1, "retry_after_s": 7}
        ).status_code
        == 200
    )
    assert httpx.post(f"{ctl}/faults/status", json={"status": 502}).status_code == 200
    r = post(standin.url, body())
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert post(standin.url, body()).status_code == 502
    assert post(standin.url, body()).status_code == 201

    httpx.post(f"{ctl}/faults/drop", json={"count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        post(standin.url, body())

    httpx.post(f"{ctl}/faults/latency", json={"seconds": 0.3})
    started = time.monotonic()
    assert httpx.get(f"{standin.url}/health").status_code == 200
    assert time.monotonic() - started >= 0.3
    httpx.post(f"{ctl}/faults/clear")

    claims = httpx.get(f"{ctl}/claims").json()
    assert len(claims) == 1 and claims[0]["headers"]["idempotency_key"] == "job-1"
    statuses = [r["status"] for r in httpx.get(f"{ctl}/requests").json()]
    assert statuses == [429, 502, 201, "dropped"]

    assert httpx.post(f"{ctl}/reset").status_code == 200
    assert httpx.get(f"{ctl}/claims").json() == []
    assert post(standin.url, body()).status_code == 201  # the key is forgotten too


def test_down_refuses_connections_then_comes_back(standin: StandinServer):
    r = httpx.post(f"{standin.url}/_standin/down", json={"seconds": 0.5})
    assert r.status_code == 202
    deadline = time.monotonic() + 2
    refused = False
    while time.monotonic() < deadline and not refused:
        try:
            httpx.get(f"{standin.url}/health", timeout=0.5)
            time.sleep(0.02)
        except httpx.ConnectError:
            refused = True
    assert refused
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            assert httpx.get(f"{standin.url}/health", timeout=0.5).status_code == 200
            break
        except httpx.ConnectError:
            time.sleep(0.05)
    else:
        pytest.fail("stand-in did not come back")


def test_record_file_survives_a_restart(tmp_path: Path):
    record = tmp_path / "claims.jsonl"
    with StandinServer(api_key=KEY, record_path=record) as first:
        ref = post(first.url, body()).json()["claim_reference"]
    [saved] = read_records(record)
    assert saved["claim_reference"] == ref
    assert saved["body"]["Invoice Number"] == "RCP-2024-001234"

    with StandinServer(api_key=KEY, record_path=record) as second:
        again = post(second.url, body())
        other = post(second.url, body({"Invoice Number": "RCP-2"}), key="job-2")
    assert again.status_code == 200 and again.json()["claim_reference"] == ref
    assert other.json()["claim_reference"] > ref  # references keep counting
    assert len(read_records(record)) == 2


def test_runs_as_a_process(tmp_path: Path):
    record = tmp_path / "claims.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.demo.ncb_standin",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--record",
            str(record),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("NCB stand-in listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[-1].strip()
        assert post(url, body()).status_code == 201
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert len(read_records(record)) == 1
