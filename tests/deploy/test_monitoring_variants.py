"""The monitoring of model variants (canaries, A/B tests behind one alias): the dashboard's
"Model variants" row and the LLMOpsVariantGuardBreach alert, with its promtool unit tests.

The rest of the dashboard and rules is checked in ``tests/observability/test_monitoring_assets.py``.
"""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import CollectorRegistry

from tests.deploy._support import DEPLOY, require_tool, run

MONITORING = DEPLOY / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "alerts.yaml"
ROW = "Model variants (canary / A/B)"
# What the gateway exports per variant (gateway/variants/_router.py), as Prometheus names them.
VARIANT_SERIES = {
    "llmops_variant_requests_total",
    "llmops_variant_request_duration_seconds_bucket",
    "llmops_variant_time_to_first_token_seconds_bucket",
    "llmops_variant_weight",
    "llmops_variant_guard_breaches_total",
    "llmops_variant_rolled_back",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _variant_panels() -> list[dict]:
    """The panels under the variants row (up to the next row)."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    (start,) = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == ROW]
    found = []
    for p in panels[start + 1 :]:
        if p["type"] == "row":
            break
        found.append(p)
    return found


def _exported() -> set[str]:
    from gateway.variants._router import _Metrics

    registry = CollectorRegistry()
    _Metrics(registry)
    names = set()
    for family in registry.collect():
        names |= {family.name + s for s in ("", "_total", "_bucket", "_count", "_sum")}
    return names


def test_the_listed_series_are_what_the_gateway_exports() -> None:
    assert VARIANT_SERIES <= _exported(), VARIANT_SERIES - _exported()


def test_dashboard_has_a_row_by_variant() -> None:
    panels = _variant_panels()
    assert len(panels) >= 5
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = " ".join(exprs)
    for series in VARIANT_SERIES:
        assert series in used, f"the variants row misses {series}"
    titles = " ".join(p["title"].lower() for p in panels)
    for what in ("requests per second", "error rate", "p95", "time to first token", "weight"):
        assert what in titles, what
    assert "breach" in titles
    exported = _exported()
    for p in panels:
        # The conventions of the other panels: the dashboard's datasource variable everywhere.
        assert p["datasource"] == DATASOURCE, p["title"]
        assert all(t["datasource"] == DATASOURCE for t in p["targets"]), p["title"]
        for t in p["targets"]:
            # One line per variant of each alias, filtered by the alias variable.
            assert "alias, variant" in t["expr"], t["expr"]
            assert 'alias=~"$alias"' in t["expr"], t["expr"]
            assert "{{alias}}" in t["legendFormat"] and "{{variant}}" in t["legendFormat"]
            for name in re.findall(r"\b(llmops_[a-z_]+)", t["expr"]):
                assert name in exported, name
    variables = {v["name"]: v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert "llmops_variant_" in variables["alias"]["definition"]
    assert variables["alias"]["datasource"] == DATASOURCE


def _alert() -> dict:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    (rule,) = [r for r in rules if r.get("alert") == "LLMOpsVariantGuardBreach"]
    return rule


def test_guard_breach_alert_pages_with_alias_and_variant() -> None:
    rule = _alert()
    assert rule["labels"]["severity"] == "page"
    assert "llmops_variant_guard_breaches_total" in rule["expr"]
    assert "llmops_variant_rolled_back" in rule["expr"]
    summary = rule["annotations"]["summary"]
    assert "$labels.alias" in summary and "$labels.variant" in summary


def test_promtool_unit_tests_cover_the_guard_alert() -> None:
    promtool = require_tool("promtool", "apt-get install prometheus (scripts/system_deps.sh)")
    tests = yaml.safe_load((MONITORING / "tests/alerts_test.yaml").read_text())
    checked = [
        case
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case["alertname"] == "LLMOpsVariantGuardBreach"
    ]
    assert any(c["exp_alerts"] for c in checked) and any(not c["exp_alerts"] for c in checked)
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    result = run([promtool, "test", "rules", "tests/alerts_test.yaml"], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
