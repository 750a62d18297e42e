"""Pure metric functions, deterministic checks, and the reports (Markdown, JUnit, JSON, HTML)."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from evals import MetricSpec, Suite, gate_compare, mrr, ndcg_at_k, recall_at_k, write_reports
from evals._dataset import Case
from evals._metrics import score_plain
from evals._results import Generation
from tests.evals.test_stats import _run


def test_retrieval_metrics() -> None:
    hits = ["a", "x", "b", "y"]
    assert recall_at_k(hits, ["a", "b"], 2) == 0.5
    assert recall_at_k(hits, ["a", "b"], 3) == 1.0
    assert mrr(hits, ["b"]) == pytest.approx(1 / 3)
    assert mrr(hits, ["z"]) == 0.0
    assert ndcg_at_k(["a", "b"], ["a", "b"], 5) == pytest.approx(1.0)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["x", "a"], ["a", "b"], 2) == pytest.approx(expected)
    assert ndcg_at_k(["a", "a"], ["a"], 2) == pytest.approx(1.0)  # duplicates count once


def _score(spec: dict[str, object], text: str, **case: object) -> float | None:
    c = Case(id="c", **case)  # type: ignore[arg-type]
    m = MetricSpec.model_validate(spec)
    return score_plain(
        m,
        c,
        Generation(
            text=text, latency_ms=12.0, completion_tokens=3, prompt_tokens=4, citations=["d1", "d2"]
        ),
        m.json_schema,
    )


def test_deterministic_metrics() -> None:
    assert _score({"type": "exact_match", "ignore_case": True}, " paris ", reference="Paris") == 1
    assert _score({"type": "exact_match"}, "paris", reference="Paris") == 0
    assert _score({"type": "contains"}, "It is Paris.", references=["Lyon", "Paris"]) == 1
    assert _score({"type": "contains", "value": ["a", "z"], "match": "all"}, "abc") == 0
    assert _score({"type": "regex", "pattern": r"\[\d+\]"}, "see [1]") == 1
    assert _score({"type": "is_json"}, '```json\n{"a": 1}\n```') == 1
    assert _score({"type": "is_json"}, "{a: 1}") == 0
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    assert _score({"type": "json_schema", "schema": schema}, '{"name": "ACME"}') == 1
    assert _score({"type": "json_schema", "schema": schema}, '{"name": 3}') == 0
    assert _score({"type": "length", "max": 3, "unit": "words"}, "one two three four") == 0
    assert _score({"type": "latency_ms"}, "x") == 12.0
    assert _score({"type": "total_tokens"}, "x") == 7.0
    assert _score({"type": "recall_at_k", "k": 1}, "x", gold_ids=["d2"]) == 0.0
    assert _score({"type": "mrr"}, "x", gold_ids=["d2"]) == 0.5
    failed = score_plain(
        MetricSpec(type="contains", value="x"), Case(id="c"), Generation(error="HTTP 500")
    )
    assert failed is None


def test_suite_validation_messages(tmp_path: Path) -> None:
    from evals import SuiteError, load_suite

    p = tmp_path / "s.yaml"
    p.write_text("name: s\ndataset: d.jsonl\nmetrics: [{type: regex}]\n")
    with pytest.raises(SuiteError, match="regex needs 'pattern'"):
        load_suite(p)
    p.write_text("name: s\ndataset: d.jsonl\nmetrics: [{type: contains, treshold: 1}]\n")
    with pytest.raises(SuiteError, match="treshold"):
        load_suite(p)


def test_reports_render(tmp_path: Path) -> None:
    suite = Suite(
        name="r",
        dataset="x.jsonl",
        metrics=[
            MetricSpec(type="contains", threshold=0.7, max_regression=0.05),
            MetricSpec(type="latency_ms", max_regression=50),
        ],
    )
    rng = np.random.default_rng(0)
    base = (rng.random(20) < 0.9).astype(float)
    head = base * (rng.random(20) < 0.5)
    b, h = _run("base", base), _run("head", head)
    for run in (b, h):  # add a latency score per case
        for c in run.cases:
            c.scores["latency_ms"] = 100.0 + rng.random() * 10
        run.means["latency_ms"] = float(np.mean([c.scores["latency_ms"] for c in run.cases]))
    v = gate_compare(suite, b, h)
    paths = write_reports(tmp_path, [v])
    md = paths["markdown"].read_text()
    lines = md.splitlines()
    assert lines[1].startswith("## ❌ Evals failed")  # verdict first
    assert "| metric | base | head | delta | 95% CI |" in md and "Worst cases" in md
    root = ET.parse(paths["junit"]).getroot()
    assert root.tag == "testsuites" and int(root.get("failures", "0")) >= 1
    assert json.loads(paths["json"].read_text())["passed"] is False
    html = paths["html"].read_text()
    assert html.count("<svg") == 5  # distribution + deltas for two metrics, the forest plot
    # self-contained: no external fetches of any kind; the one script is the report's own
    assert not re.search(r"(src|href)=\"?https?:", html) and html.count("<script>") == 1
    assert "<script src" not in html
    assert "@import" not in html and "url(" not in html


def test_shipped_suites_load_and_render() -> None:
    """Every suite in evals/suites/ validates, its dataset fits its metrics, and each case renders
    with the prompt in the working tree."""
    from evals import load_dataset, load_suite
    from evals._generate import build_request
    from evals._prompt_refs import resolve_prompt

    root = Path(__file__).resolve().parents[2] / "evals" / "suites"
    paths = sorted(root.glob("*.yaml")) + sorted(root.glob("extra/*.yaml"))
    assert len(paths) >= 3
    for p in paths:
        suite = load_suite(p)
        cases = load_dataset(suite)
        assert suite.target.prompt is not None
        pv = resolve_prompt(suite.repo_path(), suite.target.prompt, None, suite.prompts_dir)
        local = suite.model_copy(
            update={"target": suite.target.model_copy(update={"render": "local"})}
        )
        for case in cases:
            req = build_request(local, case, 0, pv, None)
            assert req.messages and req.model
