"""The gate comes from the base ref: a head that loosens its own gate and deletes hard cases in
the same change that breaks the prompt still fails, judged by the base's settings, and the report
and exit code say the gate changed. Real gateway, fake vLLM (tests/evals/fakes.py); the same on
the real engine is in test_engine_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from evals.cli import EXIT_FAIL, EXIT_GATE_CHANGED, app
from tests.evals.conftest import commit_files, suite_dict, write_suite
from tests.evals.fakes import CAPITALS

runner = CliRunner()


def _dataset(countries: list[str]) -> bytes:
    rows = [{"id": c.lower(), "vars": {"country": c}, "reference": CAPITALS[c]} for c in countries]
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def _loosened(name: str, dataset: str) -> dict[str, Any]:
    s = suite_dict(name=name, dataset=dataset)
    for m in s["metrics"]:
        m["max_regression"] = 1.0
        m.pop("threshold", None)
    s["gate"] = {"inconclusive": "pass", "min_cases": 1}
    return s


def _setup(repo: Path, name: str, base_ref: str, head_ref: str) -> tuple[Path, str, str]:
    """Base: the strict default suite on 15 countries. Head: the same suite file loosened, on a
    dataset without France and Germany and with Egypt, as committed and in the working tree."""
    countries = [c for c in CAPITALS if c != "Egypt"]
    ds_base = repo / "evals" / "datasets" / f"{name}-base.jsonl"
    ds_head = repo / "evals" / "datasets" / f"{name}-head.jsonl"
    suite = write_suite(repo, name, dataset=f"../datasets/{ds_base.name}")
    base = commit_files(
        repo, base_ref, {suite: suite.read_bytes(), ds_base: _dataset(countries)}, f"{name}-base"
    )
    head_countries = [c for c in countries if c not in ("France", "Germany")] + ["Egypt"]
    suite.write_text(
        yaml.safe_dump(_loosened("capitals", f"../datasets/{ds_head.name}"), sort_keys=False)
    )
    ds_head.write_bytes(_dataset(head_countries))
    head = commit_files(
        repo,
        head_ref,
        {suite: suite.read_bytes(), ds_head: ds_head.read_bytes()},
        f"{name}-head",
    )
    return suite, base, head


def _compare(suite: Path, base: str, head: str, out: Path) -> tuple[int, str, dict[str, Any]]:
    args = ["compare", str(suite), "--base", base, "--head", head, "--out", str(out)]
    res = runner.invoke(app, [*args, "--no-progress", "--no-langfuse"])
    data = json.loads((out / "report.json").read_text())["suites"][0]
    return res.exit_code, res.output, data


def test_loosened_gate_and_broken_prompt_still_fail(repo: Path, env: Path) -> None:
    suite, base, head = _setup(repo, "loosen", "good", "damaged")
    code, output, v = _compare(suite, base, head, env / "out")
    assert code == EXIT_FAIL, output
    assert not v["passed"]
    by = {m["metric"]: m for m in v["metrics"]}
    # judged by the base's allowance and thresholds, not the head's 1.0 and none
    assert by["contains"]["max_regression"] == 0.05 and by["contains"]["threshold"] == 0.8
    assert by["contains"]["status"] == "fail"
    assert v["gate"]["inconclusive"] == "fail" and v["gate"]["min_cases"] == 5
    # the removed cases are still gated (scored at the head), the added one only reported
    assert by["contains"]["n_paired"] == 15 and "france" in by["contains"]["deltas"]
    assert {c["case_id"] for c in v["head"]["cases"]} >= {"france", "germany", "egypt"}
    assert set(v["added_cases"]) == {"egypt"} and "egypt" not in by["contains"]["deltas"]
    changes = "\n".join(v["gate_changes"])
    assert "metric 'contains': max_regression 0.05 -> 1.0" in changes
    assert "metric 'contains': threshold 0.8 -> None" in changes
    assert "gate.inconclusive: 'fail' -> 'pass'" in changes
    assert "2 case(s) removed by the head, still gated: france, germany" in changes
    assert "1 case(s) added by the head, reported, not gated: egypt" in changes
    assert v["gate_ref"] == base and "+  inconclusive: pass" in v["gate_diff"]
    md = (env / "out" / "report.md").read_text()
    assert "Gate changed: judged by the gate at" in md and "```diff" in md
    html = (env / "out" / "report.html").read_text()
    assert "Gate changed" in html and "max_regression 0.05 -&gt; 1.0" in html


def test_gate_change_alone_exits_with_its_own_code(repo: Path, env: Path) -> None:
    """Prompt unchanged (``good`` -> ``unchanged``): the base's gate passes, but the head changes
    it, which a reviewer must sign off: exit 3, not 0."""
    suite, base, head = _setup(repo, "signoff", "good", "unchanged")
    code, output, v = _compare(suite, base, head, env / "out")
    assert code == EXIT_GATE_CHANGED, output
    assert v["passed"] and v["gate_changes"]
    assert "gate changed" in output


def test_suite_new_at_the_base_is_gated_on_thresholds(repo: Path, env: Path) -> None:
    suite = write_suite(repo, "brandnew")  # in the working tree only: new relative to the base
    code, output, v = _compare(suite, "good", "unchanged", env / "out")
    assert code == 0, output
    assert v["mode"] == "run" and any("suite is new at good" in n for n in v["notes"])
    assert not v["gate_changes"]


def test_deleted_suite_is_still_judged(repo: Path, env: Path) -> None:
    """The head deletes the suite file: it is read from the base and judges the head anyway."""
    suite = write_suite(repo, "deleted")
    base = commit_files(repo, "good", {suite: suite.read_bytes()}, "deleted-base")
    suite.unlink()
    code, output, v = _compare(suite, base, "damaged", env / "out")
    assert code == EXIT_FAIL, output
    assert "the head deletes this suite file" in "\n".join(v["gate_changes"])


def test_plan_gives_what_the_suite_can_detect(repo: Path, env: Path) -> None:
    suite = write_suite(repo, "plan")
    res = runner.invoke(app, ["plan", str(suite), "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["metric"]: r for r in json.loads(res.stdout)}
    c = rows["contains"]
    assert c["n"] == 16 and c["max_regression"] == 0.05
    # every answer right (p = 1): the independent-answers bound is 0, anything is detectable
    assert c["delta_sd"] == 0.0 and c["mde_80"] == 0.0 and c["cases_needed_80"] == 1
    lat = rows["latency_ms"]
    assert lat["delta_sd"] > 0 and lat["mde_95"] > lat["mde_80"] > 0
    assert lat["cases_needed_80"] is None  # allowance 0 on a noisy metric: nothing passes


def test_limit_cuts_both_sides_alike(repo: Path, env: Path) -> None:
    """``--limit N`` takes the first N cases at the base too: the rest are not "removed"."""
    from tests.evals.conftest import suite_ref

    suite = write_suite(repo, "limited")
    base, head = suite_ref(repo, "good", suite), suite_ref(repo, "unchanged", suite)
    args = ["compare", str(suite), "--base", base, "--head", head, "--limit", "5"]
    res = runner.invoke(app, [*args, "--out", str(env / "out"), "--no-progress", "--no-langfuse"])
    v = json.loads((env / "out" / "report.json").read_text())["suites"][0]
    assert res.exit_code == 0, res.output
    assert v["gate_changes"] == [] and v["metrics"][0]["n_paired"] == 5
