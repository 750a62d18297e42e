"""The monitoring of spend: the dashboard's "Spend" row and the budget and estimated-charge
alerts, with their promtool unit tests.

The rest of the dashboard and rules is checked in ``tests/observability/test_monitoring_assets.py``
(which also checks that every series queried is one the gateway exports).
"""

from __future__ import annotations

import json

import yaml

from tests.deploy._support import DEPLOY, require_tool, run

MONITORING = DEPLOY / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "alerts.yaml"
ROW = "Spend"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ALERTS = ("LLMOpsBudgetNearlySpent", "LLMOpsBudgetExhausted", "LLMOpsSpendEstimatedHigh")


def _spend_panels() -> list[dict]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    (start,) = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == ROW]
    found = []
    for p in panels[start + 1 :]:
        if p["type"] == "row":
            break
        found.append(p)
    return found


def _panel(word: str) -> dict:
    (panel,) = [p for p in _spend_panels() if word in p["title"].lower()]
    return panel


def test_spend_row_answers_where_the_money_goes() -> None:
    panels = _spend_panels()
    for p in panels:
        assert p["datasource"] == DATASOURCE, p["title"]
        assert all(t["datasource"] == DATASOURCE for t in p["targets"]), p["title"]
    by_model = " ".join(t["expr"] for t in _panel("rate by model")["targets"])
    assert "llmops_spend_usd_total" in by_model and "llmops_spend_idle_usd_total" in by_model
    (top,) = _panel("top 10 keys")["targets"]
    assert top["expr"].startswith("topk(10,") and "by (key, team)" in top["expr"]
    (per_1k,) = _panel("per 1k tokens")["targets"]
    # Money over tokens, both as rates over the same interval, per model.
    assert "llmops_spend_usd_total" in per_1k["expr"] and "llmops_tokens_total" in per_1k["expr"]
    assert per_1k["expr"].rstrip().endswith("* 1000")
    (idle,) = _panel("idle")["targets"]
    assert "llmops_spend_capacity_usd_total" in idle["expr"]
    (variant,) = _panel("by variant")["targets"]
    assert "by (variant)" in variant["expr"]
    (budget,) = _panel("budget")["targets"]
    assert "llmops_budget_used_ratio" in budget["expr"]
    estimated = " ".join(t["expr"] for t in _panel("estimated")["targets"])
    assert "llmops_spend_estimated_total" in estimated


def test_budget_alerts_read_money_budgets_only() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
    for name in ALERTS:
        assert name in rules, name
    nearly, exhausted = rules["LLMOpsBudgetNearlySpent"], rules["LLMOpsBudgetExhausted"]
    for rule in (nearly, exhausted):
        assert 'unit="usd"' in rule["expr"] and 'period!="minute"' in rule["expr"]
        assert "$labels.scope" in rule["annotations"]["summary"]
    assert nearly["labels"]["severity"] == "ticket" and exhausted["labels"]["severity"] == "page"


def test_promtool_unit_tests_cover_the_spend_alerts() -> None:
    promtool = require_tool("promtool", "apt-get install prometheus (scripts/system_deps.sh)")
    tests = yaml.safe_load((MONITORING / "tests/alerts_test.yaml").read_text())
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    for name in ALERTS:
        checked = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in checked), f"{name}: no case where it fires"
        assert any(not c["exp_alerts"] for c in checked), f"{name}: no case where it is quiet"
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    result = run([promtool, "test", "rules", "tests/alerts_test.yaml"], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
