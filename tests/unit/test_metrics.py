"""The metrics the code exports are the contract's (``monitoring/metrics.md``), both ways.

Alerts and dashboards query the contract's names (``tests/unit/test_monitoring.py`` holds
them to ``METRIC_NAMES``); here the code and the contract are held to each other: names,
label names, kinds and where each is exported. No label may name an id or claim data.
Without a GPU (or without ``nvidia-ml-py``) the GPU path exports nothing.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest

from services import metrics
from services.ledger import InvalidTransition, JobState, Ledger

CONTRACT = Path(__file__).resolve().parents[2] / "monitoring" / "metrics.md"
#: Parts of a label name that would mean it carries an id or claim data.
FORBIDDEN_LABEL_PARTS = {
    "id",
    "ids",
    "name",
    "email",
    "sender",
    "subject",
    "policy",
    "member",
    "claimant",
    "amount",
    "address",
    "invoice",
    "provider",
    "file",
    "filename",
    "user",
    "text",
    "hash",
    "sha256",
}


def contract() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (section, label names), as ``monitoring/metrics.md`` lists them."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    section = ""
    for line in CONTRACT.read_text().splitlines():
        header = re.match(r"^(Counters|Histograms|Gauges) \((\w+)", line)
        if header:
            section = f"{header.group(1).lower()}:{header.group(2)}"
            continue
        if not section or not line.startswith("  "):
            continue
        for name, labels in re.findall(r"\b(claims_[a-z0-9_]+)(?:\{([a-z_,]*)\})?", line):
            found[name] = (section, tuple(filter(None, labels.split(","))))
    return found


def module_families() -> dict[str, Any]:
    """The prometheus_client objects ``services.metrics`` defines, by contract name."""
    out: dict[str, Any] = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            out[f"{value._name}_total"] = value
        elif isinstance(value, Histogram | Gauge):
            out[value._name] = value
    return out


def test_contract_is_read() -> None:
    listed = contract()
    assert len(listed) >= 30
    assert listed["claims_attachments_received_total"] == ("counters:worker", ("source", "outcome"))
    assert listed["claims_jobs"] == ("gauges:collector", ("state",))


def test_metric_names_match_the_contract_both_ways() -> None:
    listed = contract()
    assert len(metrics.METRIC_NAMES) == len(set(metrics.METRIC_NAMES))
    assert set(metrics.METRIC_NAMES) - set(listed) == set(), "exported but not in the contract"
    assert set(listed) - set(metrics.METRIC_NAMES) == set(), "in the contract but not exported"


def test_labels_match_the_contract() -> None:
    for name, (_, labels) in contract().items():
        assert metrics.METRIC_LABELS[name] == labels, name


def test_kinds_and_places_match_the_contract() -> None:
    families = module_families()
    kinds = {"counters": Counter, "histograms": Histogram, "gauges": Gauge}
    for name, (section, _) in contract().items():
        kind, where = section.split(":")
        if where == "collector":
            assert name in metrics.STATE_GAUGES, f"{name} is computed at scrape time (API only)"
            assert name not in families
        elif name in metrics.GPU_GAUGES:
            assert kind == "gauges"
        else:
            assert isinstance(families.get(name), kinds[kind]), f"{name} is not one of {kind}"
    # Every family defined in the module is in METRIC_NAMES (defined once, listed once).
    assert set(families) <= set(metrics.METRIC_NAMES)


def test_histogram_buckets_follow_the_contract() -> None:
    def upper_bounds(histogram: Histogram) -> list[float]:
        return [b for b in histogram._upper_bounds if b != float("inf")]

    assert upper_bounds(metrics.OCR_BATCH_PAGES) == [1, 2, 4, 8, 16, 32, 64]
    assert upper_bounds(metrics.OCR_BATCH_SECONDS)[::-1][0] == 600
    assert upper_bounds(metrics.OCR_BATCH_SECONDS)[0] == 0.1
    assert upper_bounds(metrics.CLAIM_CONFIDENCE) == pytest.approx([i / 10 for i in range(1, 11)])
    assert upper_bounds(metrics.NCB_REQUEST_SECONDS)[0] == 0.05
    assert upper_bounds(metrics.NCB_REQUEST_SECONDS)[-1] == 60
    assert upper_bounds(metrics.RECEIVED_TO_SUBMITTED_SECONDS)[0] == 1
    assert upper_bounds(metrics.RECEIVED_TO_SUBMITTED_SECONDS)[-1] == 86400


def test_no_label_could_carry_an_id_or_claim_data() -> None:
    for name, labels in metrics.METRIC_LABELS.items():
        for label in labels:
            parts = set(label.split("_"))
            assert not parts & FORBIDDEN_LABEL_PARTS, f"{name}{{{label}}}"


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_route_decisions_count_each_reason_or_none() -> None:
    before_none = _sample("claims_route_decisions_total", {"route": "submit", "reason": "none"})
    before_low = _sample(
        "claims_route_decisions_total", {"route": "review", "reason": "low_confidence"}
    )
    metrics.record_route("submit", [])
    metrics.record_route("review", ["low_confidence", "missing_policy_number"])
    assert (
        _sample("claims_route_decisions_total", {"route": "submit", "reason": "none"})
        == before_none + 1
    )
    assert (
        _sample("claims_route_decisions_total", {"route": "review", "reason": "low_confidence"})
        == before_low + 1
    )


def test_committed_ledger_moves_are_counted_and_refused_ones_are_not(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    email_id = ledger.record_email("maildir", "m1", "<m1@x>", None, "a@example.com")
    job_id, _ = ledger.record_attachment(email_id, 0, "r.jpg", "image/jpeg", 10, "ab" * 32, "k")
    labels = {"from_state": "received", "to_state": "ocr_pending"}
    before = _sample("claims_job_transitions_total", labels)
    assert ledger.start_ocr(job_id)
    assert _sample("claims_job_transitions_total", labels) == before + 1
    done = {"from_state": "ocr_pending", "to_state": "done"}
    before_done = _sample("claims_job_transitions_total", done)
    with pytest.raises(InvalidTransition):  # not a legal move: nothing counted
        ledger.mark_done(job_id)
    assert _sample("claims_job_transitions_total", done) == before_done
    ledger.close()


def test_state_collector_reads_the_ledger_and_the_disk(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    email_id = ledger.record_email("maildir", "m1", "<m1@x>", None, "a@example.com")
    ledger.record_attachment(
        email_id, -1, "message.eml", "message/rfc822", 10, "cd" * 32, "k", review_reason="x"
    )
    ledger.sources.record_sync("maildir")
    collector = metrics.StateCollector(
        ledger, redis_client=None, mail_source="maildir", data_paths=[tmp_path]
    )
    text = generate_latest(metrics.api_registry(collector)).decode()
    assert f'claims_jobs{{state="{JobState.NEEDS_REVIEW}"}} 1.0' in text
    assert "claims_exception_queue_size 1.0" in text
    assert 'claims_outbox_pending{kind="audit"} 0.0' in text
    assert 'claims_mail_source_healthy{source="maildir"} 1.0' in text
    assert 'claims_mail_source_auth_revoked{source="maildir"} 0.0' in text
    assert "claims_data_disk_size_bytes " in text
    assert "claims_queue_depth" not in text  # no Redis broker: nothing to measure
    ledger.close()


def test_without_a_gpu_nothing_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    # This machine: no nvidia-ml-py, or no driver, or no GPU.
    assert metrics.gpu_collector() is None

    class NVMLError(Exception):
        pass

    def no_driver() -> None:
        raise NVMLError("Driver Not Loaded")

    fake = types.SimpleNamespace(nvmlInit=no_driver)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert metrics.gpu_collector() is None
    fake_none = types.SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 0)
    monkeypatch.setitem(sys.modules, "pynvml", fake_none)
    assert metrics.gpu_collector() is None
    assert "claims_gpu" not in generate_latest(metrics.api_registry(None)).decode()


def test_a_gpu_nvml_finds_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(used=1024, total=4096),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=40),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    collector = metrics.gpu_collector()
    assert collector is not None
    samples = {s.name: s for family in collector.collect() for s in family.samples}
    assert samples["claims_gpu_utilization_ratio"].value == pytest.approx(0.4)
    assert samples["claims_gpu_memory_used_bytes"].labels == {"gpu": "0"}
    assert samples["claims_gpu_memory_total_bytes"].value == 4096
