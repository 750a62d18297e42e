"""Write every report format into one folder: report.md, report.json, junit.xml, report.html."""

from __future__ import annotations

import json
from pathlib import Path

from evals._report_html import html_report
from evals._report_junit import junit_error, junit_report
from evals._report_md import error_markdown, markdown_report
from evals._results import SuiteVerdict


def write_reports(out: Path, verdicts: list[SuiteVerdict]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "report.md",
        "json": out / "report.json",
        "junit": out / "junit.xml",
        "html": out / "report.html",
    }
    paths["markdown"].write_text(markdown_report(verdicts), encoding="utf-8")
    data = {
        "passed": all(v.passed for v in verdicts),
        "suites": [v.model_dump(mode="json") for v in verdicts],
    }
    paths["json"].write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    paths["junit"].write_text(junit_report(verdicts), encoding="utf-8")
    paths["html"].write_text(html_report(verdicts), encoding="utf-8")
    return paths


def write_error_reports(out: Path, message: str) -> None:
    """Reports for a run that could not complete, so CI still posts why it failed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(error_markdown(message), encoding="utf-8")
    (out / "report.json").write_text(
        json.dumps({"passed": False, "error": message}), encoding="utf-8"
    )
    (out / "junit.xml").write_text(junit_error(message), encoding="utf-8")
    (out / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>evals</title></head><body>"
        f"<h1>Evals could not run</h1><pre>{_esc(message)}</pre></body></html>\n",
        encoding="utf-8",
    )


def _esc(s: str) -> str:
    from html import escape

    return escape(s)
