"""The suite's one skip policy: nothing is skipped silently in CI.

Locally a test whose component is missing (redis-server, promtool, the prepared engine, an
optional package or tool) skips and says why. With ``CI`` set (CI runs ``.ci/run`` with
``CI=true``) every such skip is turned into a failure here, at report time, so a CI machine
without the component cannot pass. The only skips CI accepts are for hardware no CI machine
has: a reason starting with one of ``ALLOWED_SKIP_PREFIXES``. ``.ci/run`` checks pytest's junit
report against the same rule (``unallowed_skips``), in case a skip got past this hook.

This file imports nothing but the standard library and pytest: ``.ci/run`` imports it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

# Hardware that no CI machine has; a skip reason must start with one of these to pass CI.
ALLOWED_SKIP_PREFIXES = ("needs a GPU",)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")


def skip_allowed(reason: str) -> bool:
    return reason.removeprefix("Skipped: ").lstrip().startswith(ALLOWED_SKIP_PREFIXES)


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip_in_ci(report: Any) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    reason = _skip_reason(report)
    if skip_allowed(reason):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI={os.environ.get('CI')}, which must not skip a test whose component "
        f"is missing (install it in .ci/run, or start the reason with one of "
        f"{ALLOWED_SKIP_PREFIXES} for hardware CI cannot have): {reason}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Module-level skips (``pytest.importorskip`` at import, ``allow_module_level``)."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


def unallowed_skips(junit_xml: str | Path) -> list[str]:
    """``"test id: reason"`` for every skip in a junit report that CI must not accept."""
    bad = []
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        for skipped in case.findall("skipped"):
            if skipped.get("type") == "pytest.xfail":
                continue
            reason = skipped.get("message") or skipped.text or ""
            if not skip_allowed(reason):
                bad.append(f"{case.get('classname')}::{case.get('name')}: {reason}")
    return bad


# Tests that parse the project's source with ``ast`` run first. CPython 3.11.7's ``ast.parse``
# can fail with "AST constructor recursion depth mismatch" in a process where an earlier test
# hit a RecursionError (the deep-body fuzz tests do), so their place in the run must not decide
# whether they pass.
AST_READERS = ("test_layout.py", "test_dependencies.py", "test_docs_paths.py", "test_support.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: 0 if item.path.name in AST_READERS else 1)
