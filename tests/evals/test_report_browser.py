"""The HTML report in a real browser: headless Chromium loads the report of a failing compare (the
fixtures of test_gate_e2e.py: a prompt edit that breaks every answer), runs its script without a
console error or a network request, shows the worst case's two answers, filters, and leaves a
screenshot for CI to upload.

Driven with Playwright (``pip install playwright``, no browser download: it starts the system
Chromium) where installed, else with Chromium's command line (``--dump-dom`` and
``--screenshot``; console messages read from its log). Chromium is the Debian package
``chromium`` (``scripts/system_deps.sh`` installs it for ``make test``); without it the test skips
locally and fails under CI. The screenshot and the report land in ``$LLMOPS_ARTIFACTS`` (default
``bench/out/artifacts/``), which the CI workflow uploads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evals._report_md import case_anchor, rank_cases
from evals._results import SuiteVerdict
from evals.cli import app
from tests.conftest import in_ci
from tests.evals.conftest import suite_ref, write_suite
from tests.evals.fakes import GOOD_INSTRUCTION

REPO = Path(__file__).resolve().parents[2]
# No network of any kind: this machine's closed network refuses Chromium's background traffic.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH = 1400


def _chromium() -> str:
    path = next((p for name in ("chromium", "chromium-browser") if (p := shutil.which(name))), None)
    if path is None:
        why = (
            "chromium is not installed (apt-get install chromium; make test installs it with "
            "scripts/system_deps.sh)"
        )
        if in_ci():
            pytest.fail(f"{why}; CI={os.environ.get('CI')} does not allow skipping it")
        pytest.skip(why)
    return path


def _artifacts() -> Path:
    folder = Path(os.environ.get("LLMOPS_ARTIFACTS") or REPO / "bench" / "out" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture()
def failing_report(repo: Path, env: Path) -> tuple[Path, SuiteVerdict]:
    suite = write_suite(repo, "browser")
    out = env / "out"
    res = CliRunner().invoke(
        app,
        [
            "compare",
            str(suite),
            "--base",
            suite_ref(repo, "good", suite),
            "--head",
            suite_ref(repo, "damaged", suite),
            "--out",
            str(out),
            "--no-progress",
            "--no-langfuse",
        ],
    )
    assert res.exit_code == 1, res.output
    data = json.loads((out / "report.json").read_text())
    html = _artifacts() / "eval-report.html"
    shutil.copyfile(out / "report.html", html)
    return html, SuiteVerdict.model_validate(data["suites"][0])


def _answer(v: SuiteVerdict, side: str, case_id: str) -> str:
    run = v.base if side == "base" else v.head
    assert run is not None
    case = next(c for c in run.cases if c.case_id == case_id)
    return case.repeats[0].generation.text


def test_report_in_headless_chromium(failing_report: tuple[Path, SuiteVerdict]) -> None:
    chromium = _chromium()
    html, v = failing_report
    worst = rank_cases(v)[0]
    assert worst.verdict == "regressed"
    expect: dict[str, Any] = {
        "anchor": case_anchor(v.suite, worst.case_id),
        "base": _answer(v, "base", worst.case_id),  # the capital alone
        "head": _answer(v, "head", worst.case_id),  # "Well, <country> is a country ..."
        "cases": len(v.head.cases),
    }
    assert expect["base"] and expect["head"].startswith("Well, "), expect
    shot = _artifacts() / "eval-report.png"
    shot.unlink(missing_ok=True)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _check_with_cli(chromium, html, shot, expect)
    else:
        _check_with_playwright(chromium, html, shot, expect, v)
    assert shot.is_file() and shot.stat().st_size > 10_000, shot


def _check_with_playwright(
    chromium: str, html: Path, shot: Path, expect: dict[str, Any], v: SuiteVerdict
) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        # launch() gives the browser a fresh temporary profile of its own
        browser = pw.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console.{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri())
            page.wait_for_selector("html[data-ready='1']", state="attached", timeout=10_000)

            row = page.locator(f"[id='{expect['anchor']}']")
            assert page.locator("tr.case").first.get_attribute("id") == expect["anchor"]
            assert row.is_visible()
            base, head = row.locator(".base-answer"), row.locator(".head-answer")
            assert base.is_visible() and head.is_visible()
            assert base.inner_text().strip() == expect["base"]
            assert head.inner_text().strip() == expect["head"]
            assert row.locator(".base-answer del").count() >= 1
            assert row.locator(".head-answer ins").count() >= 1

            # the forest plot: every metric has a row, `contains` fails
            assert page.locator("svg.forest g.forest-row").count() == len(v.metrics)
            assert page.locator("g.forest-row[data-metric='contains'][data-status='fail']").count()

            # the filters: nothing improved on `contains`, every case regressed on it
            form = page.locator("form.filters")
            assert form.is_visible()
            metric = next(i for i, m in enumerate(v.metrics) if m.metric == "contains")
            form.locator("select[data-filter=metric]").select_option(str(metric))
            form.locator("select[data-filter=verdict]").select_option("improved")
            assert page.locator("tr.case:visible").count() == 0
            assert (
                form.locator("[data-count]").inner_text() == f"showing 0 of {expect['cases']} cases"
            )
            form.locator("select[data-filter=verdict]").select_option("regressed")
            assert page.locator("tr.case:visible").count() == expect["cases"]
            # a link from the PR comment shows its case even when a filter hid it
            form.locator("select[data-filter=verdict]").select_option("improved")
            page.goto(f"{html.as_uri()}#{expect['anchor']}")
            assert row.is_visible()
            form.locator("select[data-filter=verdict]").select_option("")

            _check_prompt_diff(page.locator("pre.diff").all_inner_texts(), page.content(), v)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not problems, problems
    assert requests and {u.split("#")[0] for u in requests} == {html.as_uri()}, requests


def _check_prompt_diff(diffs: list[str], page: str, v: SuiteVerdict) -> None:
    """The instruction the damaged prompt lost shows as a removed line, where the run recorded
    the prompt sources (else the report says they were not recorded)."""
    assert v.base is not None
    if v.base.target.prompt_text is None:
        assert "prompt sources are not recorded" in page
        return
    (diff,) = diffs
    assert f"-  content: {GOOD_INSTRUCTION}" in diff
    assert "+  content: Tell me about the country." in diff


_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "source"})


class _Row(HTMLParser):
    """The attributes and the text of one element (by id) of a page, with nested elements."""

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.id = element_id
        self.depth = 0  # inside the element: how deep
        self.attrs: dict[str, str | None] = {}
        self.cells: dict[str, str] = {}
        self.cell: str | None = None
        self.ready = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.ready = a.get("data-ready") == "1"
        if tag in _VOID:
            return
        if self.depth:
            self.depth += 1
            cls = a.get("class") or ""
            for name in ("base-answer", "head-answer"):
                if name in cls.split():
                    self.cell = name
                    self.cells[name] = ""
        elif a.get("id") == self.id:
            self.depth, self.attrs = 1, a

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1
            if tag == "td":
                self.cell = None

    def handle_data(self, data: str) -> None:
        if self.depth and self.cell:
            self.cells[self.cell] += data


def _check_with_cli(chromium: str, html: Path, shot: Path, expect: dict[str, Any]) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory() as profile:
            return subprocess.run(
                [
                    chromium,
                    "--headless",
                    *FLAGS,
                    f"--user-data-dir={profile}",
                    "--enable-logging=stderr",
                    "--v=0",
                    f"--window-size={WIDTH},4000",
                    *args,
                    html.as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )

    dom = run("--dump-dom")
    assert dom.returncode == 0, dom.stderr[-3000:]
    # the report's script logs nothing: any console line is an error, an uncaught exception or a
    # blocked (CSP) load
    console = [ln for ln in dom.stderr.splitlines() if re.search(r":CONSOLE[:(]|Uncaught", ln)]
    assert not console, console
    row = _Row(expect["anchor"])
    row.feed(dom.stdout)
    assert row.ready, "the report's script did not run"
    assert row.attrs and "hidden" not in row.attrs, row.attrs
    assert row.cells["base-answer"].strip() == expect["base"]
    assert row.cells["head-answer"].strip() == expect["head"]
    cap = run(f"--screenshot={shot}")
    assert cap.returncode == 0, cap.stderr[-3000:]
