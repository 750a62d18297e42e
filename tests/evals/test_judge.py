"""The ragas judge is reached through the gateway; a judge that returns garbage fails closed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from evals.cli import app
from tests.evals.conftest import KEY_ENV, write_suite
from tests.evals.fakes import CAPITALS, TableUpstream


def _judged_suite(repo: Path, name: str, max_failure_rate: float) -> Path:
    rows = [
        {
            "id": c.lower(),
            "vars": {"country": c},
            "reference": city,
            "contexts": [f"{city} is the capital of {c}."],
        }
        for c, city in list(CAPITALS.items())[:6]
    ]
    (repo / "evals" / "datasets" / f"{name}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n"
    )
    return write_suite(
        repo,
        name,
        dataset=f"../datasets/{name}.jsonl",
        target={"prompt": "capitals", "render": "local", "api_key_env": KEY_ENV},
        judge={"model": "chat", "max_failure_rate": max_failure_rate},
        metrics=[
            {"type": "contains", "threshold": 0.8},
            {"type": "faithfulness", "threshold": 0.5},
        ],
    )


def test_judge_garbage_fails_closed(repo: Path, env: Path, upstream: TableUpstream) -> None:
    suite = _judged_suite(repo, "judged", max_failure_rate=0.1)
    before = len(upstream.requests)
    res = CliRunner().invoke(
        app,
        [
            "run",
            str(suite),
            "--ref",
            "good",
            "--no-progress",
            "--no-langfuse",
            "--out",
            str(env / "o"),
        ],
    )
    assert res.exit_code == 1, res.output
    judge_calls = [
        b
        for b in upstream.requests[before:]
        if b.get("model") == "chat" and "capital of" not in json.dumps(b.get("messages", [])[-1:])
    ]
    assert judge_calls, "the judge must be reached through the gateway"
    data = json.loads((env / "o" / "report.json").read_text())["suites"][0]
    assert data["head"]["judge_calls"] == 6 and data["head"]["judge_failures"] == 6
    faith = next(m for m in data["metrics"] if m["metric"] == "faithfulness")
    assert faith["status"] == "error" and faith["head_mean"] is None  # never guessed
    md = (env / "o" / "report.md").read_text()
    assert "judge failed on 6/6 scores" in md


def test_working_judge_scores_through_gateway(
    repo: Path, env: Path, upstream: TableUpstream
) -> None:
    suite = _judged_suite(repo, "judged_ok", max_failure_rate=0.0)
    upstream.judge_reply = "faithful"
    try:
        res = CliRunner().invoke(
            app,
            [
                "run",
                str(suite),
                "--ref",
                "good",
                "--no-progress",
                "--no-langfuse",
                "--out",
                str(env / "o"),
            ],
        )
    finally:
        upstream.judge_reply = "this is not JSON at all"
    assert res.exit_code == 0, res.output
    data = json.loads((env / "o" / "report.json").read_text())["suites"][0]
    assert data["head"]["judge_failures"] == 0 and data["head"]["judge_calls"] == 6
    assert data["head"]["means"]["faithfulness"] == 1.0
