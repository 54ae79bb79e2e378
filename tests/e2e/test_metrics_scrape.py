"""Prometheus scrapes of a whole ``claims-ocr run --demo`` while it works the sample inbox.

The API serves ``/metrics`` on API_PORT (its own metrics and the pipeline's scrape-time
gauges); the OCR worker, the submit worker and beat each on their own port (METRICS_PORT,
+1, +2), with what their prefork children counted. The counters move as the inbox is
processed (emails received, pages read, NCB submissions, jobs done), no label carries
claim data, and SIGTERM stops the run with exit status 0.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.demo import SAMPLE_MANIFEST_PATH
from tests.e2e.test_pipeline import run_env
from tests.support.net import free_ports

pytestmark = pytest.mark.slow

MANIFEST = json.loads(SAMPLE_MANIFEST_PATH.read_text())


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``'s exposition: (name, sorted labels) -> value."""
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def running(tmp_path: Path, redis_url: str) -> Iterator[tuple[subprocess.Popen[bytes], dict]]:
    api_port, metrics_port = free_ports(2)
    # METRICS_PORT, +1 and +2 must all be free: take a base whose neighbours are.
    while not all(_bindable(port) for port in range(metrics_port, metrics_port + 3)):
        metrics_port = free_ports(1)[0]
    env = run_env(
        tmp_path / "data",
        redis_url,
        API_PORT=str(api_port),
        METRICS_PORT=str(metrics_port),
        POLL_INTERVAL_S="2",
    )
    out = (tmp_path / "run.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "run", "--demo"],
        env=env,
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    urls = {
        "api": f"http://127.0.0.1:{api_port}/metrics",
        "ocr": f"http://127.0.0.1:{metrics_port}/metrics",
        "submit": f"http://127.0.0.1:{metrics_port + 1}/metrics",
        "beat": f"http://127.0.0.1:{metrics_port + 2}/metrics",
    }
    try:
        yield proc, urls
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        out.close()


def wait_until(check, timeout_s: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run exited early ({proc.returncode})"
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_move_while_the_sample_inbox_is_processed(
    running: tuple[subprocess.Popen[bytes], dict], tmp_path: Path
) -> None:
    proc, urls = running
    wait_until(lambda: scrape(urls["api"]) is not None, 120, "the API's /metrics", proc)
    before = {name: scrape(url) for name, url in urls.items() if name != "api"}
    assert total(before["ocr"], "claims_ocr_pages_total") == 0

    def pipeline_done() -> bool:
        submit = scrape(urls["submit"])
        api = scrape(urls["api"])
        working = sum(
            total(api, "claims_jobs", state=state)
            for state in ("received", "ocr_pending", "extracted", "ready", "submitting")
        )
        return (
            total(submit, "claims_job_transitions_total", from_state="submitted", to_state="done")
            >= 3
            and total(submit, "claims_emails_received_total") >= len(MANIFEST["emails"])
            and working == 0
            and total(api, "claims_outbox_pending") == 0
        )

    wait_until(pipeline_done, 300, "the sample inbox to be processed", proc)
    ocr, submit, beat, api = (scrape(urls[n]) for n in ("ocr", "submit", "beat", "api"))

    # The submit worker ran the polls, the submissions and the deliveries.
    assert total(submit, "claims_emails_received_total") == len(MANIFEST["emails"])
    assert total(submit, "claims_attachments_received_total", outcome="job") >= 3
    assert total(submit, "claims_attachments_received_total", outcome="skipped") >= 1
    assert total(submit, "claims_attachments_received_total", outcome="duplicate") == 1
    assert total(submit, "claims_mail_syncs_total", status="ok") >= 1
    assert total(submit, "claims_mail_last_success_timestamp_seconds") > time.time() - 600
    submitted = total(submit, "claims_ncb_submissions_total", outcome="submitted")
    assert submitted >= 3
    assert total(submit, "claims_ncb_request_seconds_count") >= submitted
    assert total(submit, "claims_received_to_submitted_seconds_count") == submitted
    assert total(submit, "claims_records_delivered_total", kind="audit") == submitted
    assert total(submit, "claims_records_delivered_total", kind="archive") == submitted
    assert total(submit, "claims_task_runs_total", task="claims.poll", outcome="ok") >= 1
    assert total(submit, "claims_task_runs_total", task="claims.submit", outcome="ok") >= 3
    assert total(submit, "claims_ncb_circuit_state") == 0

    # The OCR worker read the pages (its prefork child counted them; its node serves them).
    assert total(ocr, "claims_ocr_pages_total", engine="onnx", device="cpu") >= 3
    assert total(ocr, "claims_ocr_batch_pages_count") >= 1
    assert total(ocr, "claims_ocr_batch_seconds_count") >= 1
    assert total(ocr, "claims_claim_confidence_count") >= 3
    assert total(ocr, "claims_field_confidence_count", field="total_amount") >= 3
    assert total(ocr, "claims_route_decisions_total", route="submit") >= 3
    assert total(ocr, "claims_route_decisions_total", route="review") >= 1
    assert total(ocr, "claims_task_runs_total", task="claims.ocr", outcome="ok") >= 1
    assert total(ocr, "claims_job_transitions_total", to_state="ocr_pending") >= 3
    assert not any(n.startswith("claims_gpu_") for n in names(ocr))  # no GPU here

    # Every service says what runs; beat counts nothing else of its own.
    for samples in (ocr, submit, beat, api):
        assert total(samples, "claims_build_info", engine="onnx", device="cpu") == 1

    # The scrape-time gauges come from the API only.
    assert total(api, "claims_jobs", state="done") == submitted
    assert total(api, "claims_exception_queue_size") >= 1
    assert total(api, "claims_exception_oldest_age_seconds") > 0
    assert {"ocr", "submit", "poll"} <= {
        dict(labels)["queue"] for name, labels in api if name == "claims_queue_depth"
    }
    assert total(api, "claims_mail_source_healthy") == 1
    assert total(api, "claims_mail_source_auth_revoked") == 0
    assert total(api, "claims_data_disk_size_bytes") > total(api, "claims_data_disk_free_bytes") > 0
    assert "claims_outbox_oldest_age_seconds" in names(api)
    for samples in (ocr, submit, beat):
        assert "claims_jobs" not in names(samples)

    # Readiness sees a live worker for every queue (their heartbeats in Redis).
    ready = httpx.get(urls["api"].replace("/metrics", "/health/ready"), timeout=10).json()
    assert ready["checks"]["workers"]["status"] == "ok", ready["checks"]["workers"]

    # No label value anywhere is claim data.
    planted = {
        value
        for email in MANIFEST["emails"]
        for value in (email.get("claimant") or {}).values()
        if value
    }
    labels = {v for s in (ocr, submit, beat, api) for _, ls in s for _, v in ls}
    assert planted and not planted & labels

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0
