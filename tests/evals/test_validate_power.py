"""``llmops eval validate``: a suite whose allowed drop is below what its cases can detect fails,
and says how many cases it needs; bad suites and datasets exit 2. No model is called except in
the ``--from-run`` test, which goes through the fake upstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from evals._stats import binary_delta_sd, cases_needed
from evals._suite import parse_suite
from evals._validate import check_power
from evals.cli import EXIT_ERROR, EXIT_FAIL, app
from tests.evals.conftest import suite_dict, write_suite

runner = CliRunner()

CONTAINS = {"type": "contains", "threshold": 0.8, "max_regression": 0.05}


def _suite(root: Path, n: int, metrics: list[dict[str, Any]], name: str = "small") -> Path:
    """A suite with ``n`` cases under ``root/evals`` (the layout ``suite_dict`` expects)."""
    (root / "evals" / "suites").mkdir(parents=True, exist_ok=True)
    (root / "evals" / "datasets").mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"c{i}", "vars": {"country": f"C{i}"}, "reference": f"R{i}"} for i in range(n)]
    (root / "evals" / "datasets" / "capitals.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    p = root / "evals" / "suites" / f"{name}.yaml"
    p.write_text(yaml.safe_dump(suite_dict(name=name, metrics=metrics), sort_keys=False))
    return p


def _validate(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["validate", *args])
    return res.exit_code, res.output, res.stdout


def test_small_binary_suite_fails_and_says_how_many_cases(tmp_path: Path) -> None:
    suite = _suite(tmp_path, 8, [CONTAINS])
    need = cases_needed(binary_delta_sd(0.8), 0.05, confidence=0.95, power=0.8)
    assert need is not None and need > 8
    code, output, _ = _validate(str(suite))
    assert code == EXIT_FAIL, output
    assert "FAIL small: `contains`: allowed drop 0.05 is below the " in output
    assert f"with 8 cases; it needs about {need} cases" in output
    assert "pass rate 0.8 (threshold)" in output  # the sd's basis is in the table

    code, _, stdout = _validate(str(suite), "--json")
    assert code == EXIT_FAIL
    (row,) = json.loads(stdout)
    assert row["status"] == "underpowered" and row["failed"] is True
    assert row["n"] == 8 and row["cases_needed_80"] == need
    assert row["mde_80"] > row["max_regression"]


def test_suite_sized_for_its_allowance_passes(tmp_path: Path) -> None:
    allowance = 0.3
    need = cases_needed(binary_delta_sd(0.8), allowance, confidence=0.95, power=0.8)
    assert need is not None
    metrics = [{**CONTAINS, "max_regression": allowance}]
    code, output, _ = _validate(str(_suite(tmp_path, need, metrics)))
    assert code == 0, output
    assert "1 suite(s) valid" in output
    code, output, _ = _validate(str(_suite(tmp_path, need - 1, metrics)))
    assert code == EXIT_FAIL, output


def test_no_threshold_plans_with_the_worst_case(tmp_path: Path) -> None:
    suite = _suite(tmp_path, 8, [{"type": "contains", "max_regression": 0.05}])
    code, _, stdout = _validate(str(suite), "--json")
    assert code == EXIT_FAIL
    (row,) = json.loads(stdout)
    assert row["delta_sd"] == pytest.approx(binary_delta_sd(0.5))
    assert "worst case" in row["sd_basis"]


def test_continuous_metric_without_a_run_is_reported_not_failed(tmp_path: Path) -> None:
    metrics: list[dict[str, Any]] = [
        {"type": "semantic_similarity", "threshold": 0.5, "max_regression": 0.05},
        {"type": "latency_ms"},  # no allowance: nothing to check
    ]
    code, output, _ = _validate(str(_suite(tmp_path, 8, metrics)))
    assert code == 0, output
    assert "needs run" in output and "need --from-run to plan" in output
    code, _, stdout = _validate(str(_suite(tmp_path, 8, metrics)), "--json")
    rows = {r["metric"]: r for r in json.loads(stdout)}
    sim = rows["semantic_similarity"]
    assert sim["status"] == "needs_run" and not sim["failed"]
    assert sim["message"] == "`semantic_similarity`: needs a run to plan (use --from-run)"
    assert rows["latency_ms"]["status"] == "no_allowance"


def test_a_measured_delta_sd_is_planned_with_for_every_metric_type(tmp_path: Path) -> None:
    """Two versions that mostly answer alike spread their deltas far less than the
    independent-answers bound: a stated ``delta_sd`` plans with that, continuous metrics too."""
    metrics: list[dict[str, Any]] = [
        {**CONTAINS, "max_regression": 0.13, "delta_sd": 0.36},
        {"type": "semantic_similarity", "max_regression": 0.05, "delta_sd": 0.15},
    ]
    suite = _suite(tmp_path, 100, metrics)
    code, output, stdout = _validate(str(suite), "--json")
    assert code == 0, output
    rows = {r["metric"]: r for r in json.loads(stdout)}
    assert rows["contains"]["delta_sd"] == 0.36 and rows["contains"]["status"] == "ok"
    assert rows["semantic_similarity"]["status"] == "ok"  # no run needed
    assert all("measured" in r["sd_basis"] for r in rows.values())
    # without it the bound at the threshold says 100 cases cannot detect 0.13
    del metrics[0]["delta_sd"]
    code, _, _ = _validate(str(_suite(tmp_path, 100, metrics)))
    assert code == EXIT_FAIL


def test_bad_dataset_is_a_clear_error(tmp_path: Path) -> None:
    suite = _suite(tmp_path, 8, [CONTAINS])
    dataset = tmp_path / "evals" / "datasets" / "capitals.jsonl"
    dataset.write_text(dataset.read_text() + "{not json\n")
    code, output, _ = _validate(str(suite))
    assert code == EXIT_ERROR, output
    assert "capitals.jsonl:9: not JSON" in output
    dataset.unlink()
    code, output, _ = _validate(str(suite))
    assert code == EXIT_ERROR and "cannot read" in output


def test_bad_suite_is_a_clear_error_and_others_are_still_checked(tmp_path: Path) -> None:
    good = _suite(tmp_path, 8, [CONTAINS])
    bad = tmp_path / "evals" / "suites" / "bad.yaml"
    bad.write_text(yaml.safe_dump(suite_dict(name="bad", metrics=[{"type": "nope"}])))
    code, output, _ = _validate(str(bad), str(good))
    assert code == EXIT_ERROR, output
    assert "bad.yaml: metrics.0.type" in output
    assert "FAIL small:" in output  # the good suite was still checked


def test_default_is_the_suites_folder_without_subfolders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output, _ = _validate()
    assert code == EXIT_ERROR and "none match evals/suites/*.yaml" in output
    _suite(tmp_path, 8, [{**CONTAINS, "max_regression": 1.0}])
    (tmp_path / "evals" / "suites" / "extra").mkdir()
    (tmp_path / "evals" / "suites" / "extra" / "broken.yaml").write_text("not: [a suite")
    code, output, _ = _validate()
    assert code == 0, output
    assert "1 suite(s) valid" in output


def test_check_power_without_the_cli() -> None:
    s = parse_suite(yaml.safe_dump(suite_dict(gate={"confidence": 0.9})), Path("s.yaml"), "s.yaml")
    got = {f.metric: f for f in check_power(s, 16)}
    assert got["contains"].status == "underpowered" and got["contains"].confidence == 0.9
    assert got["contains"].cases_needed_80 == cases_needed(
        binary_delta_sd(0.8), 0.05, confidence=0.9, power=0.8
    )
    assert got["exact_match"].delta_sd == pytest.approx(binary_delta_sd(0.5))
    assert got["length"].status == "no_allowance" and not got["length"].failed


def test_from_run_plans_with_the_measured_pass_rate(repo: Path, env: Path) -> None:
    """The fake model answers every case right: the run's pass rate 1 leaves nothing to detect,
    where the threshold alone (p = 0.8) says 16 cases are far too few."""
    metrics: list[dict[str, Any]] = [CONTAINS, {"type": "latency_ms", "max_regression": 1e6}]
    suite = write_suite(repo, "validate-run", metrics=metrics)
    code, output, _ = _validate(str(suite))
    assert code == EXIT_FAIL, output
    code, output, stdout = _validate(str(suite), "--from-run", "--json")
    assert code == 0, output
    rows = {r["metric"]: r for r in json.loads(stdout)}
    assert rows["contains"]["delta_sd"] == 0.0 and rows["contains"]["status"] == "ok"
    lat = rows["latency_ms"]
    assert lat["sd_basis"] == "one run" and lat["status"] == "ok" and lat["delta_sd"] > 0
