"""The Grafana dashboard and the Prometheus rules: promtool when it is installed (Debian
package ``prometheus``), structural checks always. Every dashboard query is also run through
promtool's PromQL parser (as a recording rule in a throw-away rules file)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

MON = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
DASH = MON / "grafana-dashboard.json"
RULES = MON / "alerts.yaml"
PROMTOOL = shutil.which("promtool")
GATEWAY_METRICS = {
    "llmops_requests_total",
    "llmops_request_duration_seconds_bucket",
    "llmops_time_to_first_token_seconds_bucket",
    "llmops_tokens_total",
    "llmops_replica_healthy",
    "llmops_in_flight_requests",
    "llmops_retries_total",
    "llmops_upstream_errors_total",
}
VLLM_METRICS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:time_to_first_token_seconds_bucket",
}


def exprs() -> list[str]:
    d = json.loads(DASH.read_text())
    return [t["expr"] for p in d["panels"] for t in p.get("targets", [])]


def test_dashboard_structure() -> None:
    d = json.loads(DASH.read_text())
    assert d["uid"] and d["title"] and isinstance(d["schemaVersion"], int)
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "model"} <= names
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert p["datasource"]["uid"] == "${datasource}"
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs))
    used = " ".join(exprs())
    for m in GATEWAY_METRICS | VLLM_METRICS | {"llmops_drift_p_value", "llmops_drift_detected"}:
        assert m in used, f"dashboard misses {m}"


def test_dashboard_metric_names_exist_in_the_gateway() -> None:
    """Every llmops_* series the dashboard queries is one the gateway (or the plug-in) exports."""
    from gateway import GatewayConfig
    from gateway._app import GatewayApp
    from gateway._plugins import default_plugins

    # A gateway with model variants, a priced model and limits: its registry holds the core,
    # the variant, the spend and the limits metrics (the last two come with their plug-ins).
    cfg = GatewayConfig(models=[
        {"name": "v1", "upstreams": [{"url": "http://127.0.0.1:1"}],
         "price": {"input_per_1m": 1, "output_per_1m": 2}},
        {"name": "v2", "upstreams": [{"url": "http://127.0.0.1:2"}],
         "cost": {"usd_per_hour": 1}},
        {"name": "chat", "variants": [{"model": "v1", "weight": 1}, {"model": "v2", "weight": 1}]},
    ], prompts=None)  # fmt: skip
    exported = set()
    for fam in GatewayApp(cfg, default_plugins(cfg)).state.metrics.registry.collect():
        exported |= {fam.name + s for s in ("", "_total", "_bucket", "_count", "_sum")}
    exported |= {"llmops_traces_total"}
    from observability._drift_metrics import GAUGES

    exported |= {g[0] for g in GAUGES}
    for e in exprs():
        for name in re.findall(r"\b(llmops_[a-z_]+)", e):
            assert name in exported, name


def _concrete(expr: str) -> str:
    for var, value in (("$__rate_interval", "5m"), ("$__range", "1h"), ("$model", ".*"),
                       ("$alias", ".*")):  # fmt: skip
        expr = expr.replace(var, value)
    return expr


def test_rules_structure() -> None:
    doc = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    for name in (
        "LLMOpsHighErrorRate",
        "LLMOpsLatencySLOBreach",
        "LLMOpsReplicaDown",
        "LLMOpsInputDrift",
    ):
        assert name in alerts
    for r in alerts.values():
        assert r["expr"].strip() and r["labels"]["severity"] in {"page", "ticket"}
        assert r["annotations"]["summary"]
    assert "llmops_drift_detected" in alerts["LLMOpsInputDrift"]["expr"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_checks_rules_and_unit_tests() -> None:
    assert PROMTOOL is not None
    out = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "tests/alerts_test.yaml"],
        cwd=MON,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": _concrete(e)}
                    for i, e in enumerate(exprs())
                ],
            }
        ]
    }
    f = tmp_path / "dash-rules.yaml"
    f.write_text(yaml.safe_dump(rules))
    out = subprocess.run([PROMTOOL, "check", "rules", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
