"""Alert rules and Grafana dashboards: one source of rules shared by the chart and deploy/prometheus, promtool
checks and unit tests, dashboard structure, and every metric they use belonging to the farm's metric contract."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, FULLNAME, REPO, Doc, one

CANONICAL_RULES = CHART / "files" / "farm-alerts.yml"
DEPLOY_RULES = REPO / "deploy" / "prometheus" / "farm-alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "farm-alerts.test.yml"
DASHBOARDS = CHART / "files" / "dashboards"

# The metrics the farm exports (name -> type), fixed by the process contract.
METRICS = {
    "farm_jobs": "gauge",
    "farm_tasks": "gauge",
    "farm_queue_depth": "gauge",
    "farm_frames_rendered_total": "counter",
    "farm_frame_render_seconds": "histogram",
    "farm_resource_seconds_total": "counter",
    "farm_storage_bytes": "gauge",
    "farm_workers": "gauge",
    "farm_slot_utilisation": "gauge",
    "farm_api_request_seconds": "histogram",
    "farm_job_last_progress_timestamp_seconds": "gauge",
    "farm_queue_wait_seconds": "histogram",
    "farm_company_budget_used_ratio": "gauge",
    "farm_storage_errors_total": "counter",
    "farm_nodes": "gauge",
    "farm_metrics_database_up": "gauge",
    "farm_metrics_store_up": "gauge",
    "farm_scheduler_last_loop_timestamp_seconds": "gauge",
    "farm_scheduler_loop_duration_seconds": "gauge",
    "farm_scheduler_lease_renewed_timestamp_seconds": "gauge",
    "farm_scheduler_lease_generation": "gauge",
    "farm_scheduler_leader": "gauge",
    "farm_slots_in_use": "gauge",
    "farm_resources_in_use": "gauge",
    "farm_cluster_storage_errors_total": "counter",
}
ALERTS = {
    "FarmJobNoProgress",
    "FarmWorkerNodesLost",
    "FarmQueueWaitTooLong",
    "FarmCompanyNearBudget",
    "FarmStorageErrors",
    "FarmSchedulerDown",
    "FarmDatabaseDown",
    "FarmStoreDown",
}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian package `prometheus`; `make test` installs it)"
)


def metric_names(expr: str) -> set[str]:
    """farm_* series names an expression reads, mapped back to the exported metric (histogram suffixes off)."""
    names = set()
    for name in re.findall(r"\bfarm_[a-z_]+", expr):
        for suffix in ("_bucket", "_count", "_sum"):
            base = name.removesuffix(suffix)
            if name.endswith(suffix) and METRICS.get(base) == "histogram":
                name = base
        names.add(name)
    return names


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(CANONICAL_RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return loaded


def panel_exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


# --- alert rules ---------------------------------------------------------------------------------------------


def test_deploy_rules_are_a_copy_of_the_chart_rules() -> None:
    assert DEPLOY_RULES.read_bytes() == CANONICAL_RULES.read_bytes(), (
        "deploy/prometheus/farm-alerts.yml must equal helm/render-farm/files/farm-alerts.yml: "
        "edit the chart file and copy it"
    )


def test_prometheusrule_carries_the_deploy_groups(ci_docs: list[Doc]) -> None:
    rule = one(ci_docs, "PrometheusRule", f"{FULLNAME}-alerts")
    assert rule["spec"]["groups"] == yaml.safe_load(DEPLOY_RULES.read_text())["groups"]


def test_alerts_are_complete() -> None:
    by_name = {r["alert"]: r for r in rules()}
    assert set(by_name) == ALERTS
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert f"docs/operations.md#{name.lower()}" in rule["annotations"]["description"], name
        assert metric_names(rule["expr"]) <= METRICS.keys(), name


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["farm-alerts.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == ALERTS and quiet == ALERTS


@needs_promtool
def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(CANONICAL_RULES), str(DEPLOY_RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests() -> None:
    result = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# --- dashboards ----------------------------------------------------------------------------------------------

OVERVIEW_PANELS = {
    "Jobs by state",
    "Queue depth",
    "Slot utilisation",
    "Frames per second",
    "Render seconds per frame p50/p95 by device",
    "Workers by state",
    "API latency p50/p95 by route",
}
USAGE_PANELS = {"GPU-hours in range", "CPU-hours in range", "Storage by company", "Monthly budget used"}


@pytest.mark.parametrize("name", ["farm-overview.json", "farm-usage.json"])
def test_dashboard_structure(name: str) -> None:
    board = dashboard(name)
    assert board["uid"] and board["title"].startswith("Render farm")
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert metric_names(target["expr"]) and metric_names(target["expr"]) <= METRICS.keys(), target["expr"]


def test_overview_panels() -> None:
    board = dashboard("farm-overview.json")
    assert OVERVIEW_PANELS <= {p["title"] for p in board["panels"]}
    used = set().union(*(metric_names(e) for e in panel_exprs(board)))
    assert {
        "farm_jobs",
        "farm_queue_depth",
        "farm_slot_utilisation",
        "farm_frames_rendered_total",
        "farm_frame_render_seconds",
        "farm_workers",
        "farm_api_request_seconds",
    } <= used
    render_seconds = next(p for p in board["panels"] if p["title"].startswith("Render seconds"))
    exprs = " ".join(t["expr"] for t in render_seconds["targets"])
    assert "histogram_quantile(0.5" in exprs and "histogram_quantile(0.95" in exprs and "device" in exprs


def test_in_use_panels_read_gauges_of_running_slots() -> None:
    """Issue 15: "in use" is what the running slots hold now, not a rate of a ledger appended when attempts end
    (which showed 27 cores on a 2-core machine)."""
    board = dashboard("farm-usage.json")
    for title, resource in (("GPUs in use by company", "gpu"), ("CPU cores in use by company", "cpu")):
        panel = next(p for p in board["panels"] if p["title"] == title)
        [target] = panel["targets"]
        assert metric_names(target["expr"]) == {"farm_resources_in_use"}, target["expr"]
        assert f'resource="{resource}"' in target["expr"] and "rate(" not in target["expr"]


def test_usage_panels_filter_by_company() -> None:
    board = dashboard("farm-usage.json")
    assert USAGE_PANELS <= {p["title"] for p in board["panels"]}
    company = next(v for v in board["templating"]["list"] if v["name"] == "company")
    assert company["type"] == "query" and company["multi"] and company["includeAll"]
    assert "label_values(farm_resource_seconds_total, company)" in json.dumps(company["query"])
    for expr in panel_exprs(board):
        assert 'company=~"$company"' in expr, expr
    hours = [e for e in panel_exprs(board) if "farm_resource_seconds_total" in e and "/ 3600" in e]
    assert any('resource="gpu"' in e for e in hours) and any('resource="cpu"' in e for e in hours)


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each dashboard query, with Grafana's variables replaced by values."""
    substitutions = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m", "$company": ".*"}
    records = []
    for name in ("farm-overview.json", "farm-usage.json"):
        for i, expr in enumerate(panel_exprs(dashboard(name))):
            for var, value in substitutions.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, expr
            records.append({"record": f"dashboard:{name.split('.')[0].replace('-', '_')}:{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
