"""The monitoring files (monitoring/): Prometheus config, alert rules, runbooks, dashboards.

They only help if they match what the code exports, so every metric name an alert or a
dashboard uses must be in the metrics contract: ``services.metrics.METRIC_NAMES`` once that
module exists (the code is then the source of truth), else the names listed in
``monitoring/metrics.md``. ``promtool`` (Debian's ``prometheus`` package) checks the config
and the rules and runs the rules' unit tests; without it those three tests are skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
ALERTS = MONITORING / "alerts.yml"
ALERTS_TEST = MONITORING / "alerts_test.yml"
RUNBOOKS = MONITORING / "runbooks.md"
CONTRACT = MONITORING / "metrics.md"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
PROVISIONING = MONITORING / "grafana" / "provisioning"
COMPOSE = ROOT / "docker-compose.prod.yml"

#: Scrape job names the metrics contract fixes (alerts and dashboards filter on them).
CONTRACT_JOBS = {"claims-api", "claims-beat", "claims-ocr-worker", "claims-submit-worker"}
#: Series Prometheus itself makes, allowed beside the exported ones.
PROMETHEUS_SERIES = {"up"}
#: Suffixes a counter or histogram family adds to its samples' names.
SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")
#: Words of PromQL that look like identifiers but are no metric.
PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}
SEVERITIES = {"critical", "warning"}


def _promtool() -> str:
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    return found


def _run_promtool(*args: str) -> None:
    result = subprocess.run(
        [_promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"


def test_prometheus_config_is_valid() -> None:
    _run_promtool("check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))


def test_alert_rules_are_valid() -> None:
    _run_promtool("check", "rules", str(ALERTS.relative_to(ROOT)))


def test_alert_rules_unit_tests_pass() -> None:
    _run_promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT)))


# --- what the files name --------------------------------------------------------------------


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _dashboards() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, json.loads(path.read_text())) for path in sorted(DASHBOARDS.glob("*.json"))]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those nested in (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    for path, board in _dashboards():
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield f"{path.name}: {panel.get('title')}", target["expr"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels or keywords).

    Strings, Grafana variables, label matchers, ranges and ``by (...)``-like label lists
    are removed first; of the identifiers left, one followed by ``(`` is a function or
    an aggregation.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'", '""', expr)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", " ", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", text):
        name = match.group(0)
        if name in PROMQL_KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(name)
    return names


def exported_names() -> tuple[set[str], str]:
    """The metric families the code exports, and where that list came from."""
    if importlib.util.find_spec("services.metrics") is not None:
        module = importlib.import_module("services.metrics")
        return set(module.METRIC_NAMES) | PROMETHEUS_SERIES, "services.metrics.METRIC_NAMES"
    names = set(re.findall(r"\bclaims_[a-z0-9_]+", CONTRACT.read_text()))
    return names | PROMETHEUS_SERIES, str(CONTRACT.relative_to(ROOT))


def _family_forms(name: str) -> set[str]:
    """``name`` and the family names its sample suffix could stand for."""
    forms = {name}
    for suffix in SAMPLE_SUFFIXES:
        if name.endswith(suffix):
            forms.add(name[: -len(suffix)])
    return forms


def is_exported(name: str, exported: set[str]) -> bool:
    # A counter family is ``x`` in prometheus_client and ``x_total`` in the contract.
    known = exported | {n[: -len("_total")] for n in exported if n.endswith("_total")}
    return bool(_family_forms(name) & known)


def test_metric_name_parser() -> None:
    expr = (
        'sum by (task) (rate(claims_task_runs_total{outcome="error", task=~"a|b"}[10m]))'
        " / ignoring(x) group_left(y) claims_jobs offset 5m and up == 0 or"
        " histogram_quantile(0.95, sum by (le) (rate(claims_ocr_batch_seconds_bucket"
        "[$__rate_interval]))) > 1e3 * time()"
    )
    assert metric_names(expr) == {
        "claims_task_runs_total",
        "claims_jobs",
        "up",
        "claims_ocr_batch_seconds_bucket",
    }
    assert is_exported("claims_ocr_batch_seconds_bucket", {"claims_ocr_batch_seconds"})
    assert is_exported("claims_task_runs_total", {"claims_task_runs"})
    assert is_exported("claims_task_runs_total", {"claims_task_runs_total"})
    assert not is_exported("claims_jobs_total_x", {"claims_jobs"})


def test_every_metric_used_is_exported() -> None:
    exported, source = exported_names()
    used = [(f"alert {rule['alert']}", rule["expr"]) for rule in _alert_rules()]
    used += list(_dashboard_exprs())
    assert used
    unknown = sorted(
        f"{where}: {name}"
        for where, expr in used
        for name in metric_names(expr)
        if not is_exported(name, exported)
    )
    assert not unknown, f"metric names not in {source}:\n" + "\n".join(unknown)


# --- dashboards -----------------------------------------------------------------------------


def _provisioned_datasource_uids() -> set[str]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    return {ds["uid"] for ds in config["datasources"]}


def test_dashboards_are_valid_and_every_panel_queries() -> None:
    boards = _dashboards()
    assert len(boards) >= 3
    uids = _provisioned_datasource_uids()
    assert [b["uid"] for _, b in boards] == list(dict.fromkeys(b["uid"] for _, b in boards))
    for path, board in boards:
        assert board["title"] and board["uid"], path.name
        assert 36 <= board["schemaVersion"] <= 41, path.name
        ids = [p["id"] for p in _panels(board["panels"])]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in _panels(board["panels"]):
            where = f"{path.name}: {panel.get('title')!r}"
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), where
            if panel["type"] == "row":
                continue
            assert panel.get("datasource", {}).get("uid") in uids, f"{where}: no datasource"
            assert panel.get("targets"), f"{where}: no target"
            for target in panel["targets"]:
                assert target.get("expr", "").strip() and target.get("refId"), where
                assert target.get("datasource", panel["datasource"])["uid"] in uids, where


def test_dashboard_provider_points_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = {str(v).split(":")[1] for v in grafana["volumes"] if ":" in str(v)}
    assert path in mounts


# --- alerts and runbooks --------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of ``markdown``."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_alert_has_severity_summary_and_runbook_section() -> None:
    rules = _alert_rules()
    anchors = _anchors(RUNBOOKS.read_text())
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: no summary"
        url = annotations.get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page.endswith("monitoring/runbooks.md"), f"{name}: runbook_url {url!r}"
        assert anchor in anchors, f"{name}: no section #{anchor} in monitoring/runbooks.md"
    sections = set(re.findall(r"^## (\w+)\s*$", RUNBOOKS.read_text(), flags=re.MULTILINE))
    assert sections == set(names), "runbook sections and alerts differ"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    cases = yaml.safe_load(ALERTS_TEST.read_text())
    assert cases["rule_files"] == [ALERTS.name]
    firing: set[str] = set()
    silent: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in _alert_rules()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested not firing"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


# --- scrape config --------------------------------------------------------------------------


def test_every_compose_service_with_metrics_is_scraped() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [ALERTS.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) >= CONTRACT_JOBS
    targets = {
        target.split(":")[0]
        for job in jobs.values()
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    # Our processes (built from this repository) export metrics; so do Prometheus and Grafana.
    ours = {name for name, service in services.items() if "build" in service}
    assert ours, "no service builds this repository"
    assert ours <= targets, f"not scraped: {sorted(ours - targets)}"
    assert targets - {"localhost"} <= set(services), "scrape targets that are no service"
