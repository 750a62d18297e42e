"""Markdown report for a pull-request comment: verdict first, then numbers, then worst cases.

The case ranking (``rank_cases``) and the case anchors (``case_anchor``) are shared with the HTML
report, so the five cases the comment links are the first five rows of the HTML table.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from evals._results import CaseResult, MetricVerdict, RunResult, SuiteVerdict, TargetInfo

_ICON = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "error": "💥"}
MARKER = "<!-- llmops-eval-report -->"


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def fmt_delta(x: float | None) -> str:
    return "–" if x is None else ("+" if x > 0 else "") + fmt(x)


def _cell(s: str, n: int = 140) -> str:
    s = " ".join(s.split())
    if len(s) > n:
        s = s[: n - 1] + "…"
    return s.replace("|", "\\|").replace("<", "&lt;") or "∅"


def target_line(t: TargetInfo) -> str:
    parts = []
    if t.prompt:
        parts.append(f"prompt `{t.prompt}@{t.version}`")
        if t.ref:
            parts.append(f"ref `{t.ref}`")
        if t.commit:
            parts.append(f"commit `{t.commit[:10]}`")
    parts.append(f"model `{t.model}`")
    return ", ".join(parts)


def verdict_word(v: SuiteVerdict) -> str:
    return "PASS" if v.passed else "FAIL"


def case_anchor(suite: str, case_id: str) -> str:
    """The HTML id of a case's row, ``case-<suite>-<id>``; characters outside ``[A-Za-z0-9_.-]``
    become ``-`` and then a short hash keeps two such ids apart."""
    raw = f"case-{suite}-{case_id}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)
    if slug != raw:
        slug += "-" + hashlib.sha256(raw.encode()).hexdigest()[:8]
    return slug


@dataclass(frozen=True, slots=True)
class CaseChange:
    """How one case moved. ``verdicts`` per metric: compare ``regressed``/``improved``/
    ``unchanged``, run ``below``/``meets`` (its threshold); a metric without a pair (or without a
    threshold, in a run) is absent. ``metric``/``value``: what moved it most (compare: that
    metric's delta head - base; run: its score)."""

    case_id: str
    verdict: str
    verdicts: dict[str, str] = field(default_factory=dict)
    metric: MetricVerdict | None = None
    value: float | None = None
    worse: bool = False


_FAILING = ("fail", "error")


def rank_cases(v: SuiteVerdict) -> list[CaseChange]:
    """Every head case, the largest regression first.

    Per metric a case's change is oriented (positive = better) and divided by the largest change
    of that metric over all cases, so metrics on different scales compare. Order: the worst change
    on a failing metric, then the sum over the failing metrics, then the worst change on any
    metric; ties keep dataset order (so noise on a passing metric, latency say, does not reorder
    cases that failed alike). A run (no base) ranks by the distance to each metric's threshold.
    """
    compare = v.mode == "compare"
    raw: dict[str, dict[str, float]] = {}  # metric -> case -> oriented change
    for m in v.metrics:
        sign = 1.0 if m.higher_is_better else -1.0
        if compare:
            raw[m.metric] = {c: sign * d for c, d in m.deltas.items()}
        elif m.threshold is not None:
            raw[m.metric] = {
                c.case_id: sign * (s - m.threshold)
                for c in v.head.cases
                if (s := c.scores.get(m.metric)) is not None
            }
    scale = {k: max((abs(x) for x in xs.values()), default=0.0) or 1.0 for k, xs in raw.items()}
    words = ("regressed", "improved", "unchanged") if compare else ("below", "meets", "meets")
    ranked: list[tuple[tuple[float, float, float], CaseChange]] = []
    for c in v.head.cases:
        norm: dict[str, float] = {}
        verdicts: dict[str, str] = {}
        for m in v.metrics:
            o = raw.get(m.metric, {}).get(c.case_id)
            if o is None:
                continue
            n = o / scale[m.metric]
            norm[m.metric] = n
            verdicts[m.metric] = words[0] if n < -1e-9 else words[1] if n > 1e-9 else words[2]
        failing = [n for k, n in norm.items() if _status(v, k) in _FAILING]
        key = (min(failing, default=0.0), sum(failing), min(norm.values(), default=0.0))
        worst = _worst_metric(v, norm, key)
        value = None
        if worst is not None:
            value = worst.deltas.get(c.case_id) if compare else c.scores.get(worst.metric)
        found = set(verdicts.values())
        verdict = next((w for w in words if w in found), "unpaired" if compare else "unscored")
        change = CaseChange(c.case_id, verdict, verdicts, worst, value, worse=key[2] < 0)
        ranked.append((key, change))
    ranked.sort(key=lambda kv: kv[0])
    return [c for _, c in ranked]


def _status(v: SuiteVerdict, metric: str) -> str:
    return next((m.status for m in v.metrics if m.metric == metric), "pass")


def _worst_metric(
    v: SuiteVerdict, norm: dict[str, float], key: tuple[float, float, float]
) -> MetricVerdict | None:
    """The metric behind the ranking key: the worst failing one, else the worst one, else the one
    that moved most (an improvement)."""
    by_id = {m.metric: m for m in v.metrics}
    if key[0] < 0:
        target = key[0]
        pick = next(k for k, n in norm.items() if n == target and by_id[k].status in _FAILING)
    elif key[2] < 0:
        pick = next(k for k, n in norm.items() if n == key[2])
    elif norm and max(norm.values()) > 0:
        pick = max(norm, key=lambda k: norm[k])
    else:
        return None
    return by_id[pick]


def worst_cases(v: SuiteVerdict, limit: int = 5) -> list[CaseChange]:
    """The cases that got worse (compare) or miss a threshold (run), worst first."""
    return [c for c in rank_cases(v) if c.worse][:limit]


def _code(s: str) -> str:
    """``s`` as an inline code span that a table cell survives."""
    return "`" + " ".join(s.split()).replace("`", "'").replace("|", "\\|") + "`"


def _answer(run: RunResult | None, case_id: str) -> str:
    if run is None:
        return ""
    c: CaseResult | None = next((x for x in run.cases if x.case_id == case_id), None)
    if c is None or not c.repeats:
        return ""
    g = c.repeats[0].generation
    return f"ERROR: {g.error}" if g.error else g.text


def allowed(m: MetricVerdict) -> str:
    """The allowance, or "not gated" for a metric whose comparison is only reported."""
    return fmt(m.max_regression) if m.gated else "not gated"


def detectable(m: MetricVerdict) -> str:
    """The minimum detectable regression at 80% power; flagged when it exceeds the allowance
    (a "pass" then means "too small to tell", not "no regression")."""
    if m.mde_80 is None:
        return "–"
    flag = " ⚠️" if m.gated and m.mde_80 > m.max_regression else ""
    return f"{fmt(m.mde_80)}{flag}"


def _power_note(v: SuiteVerdict) -> list[str]:
    short = [
        m for m in v.metrics if m.gated and m.mde_80 is not None and m.mde_80 > m.max_regression
    ]
    if not short:
        return []
    parts = [
        f"`{m.metric}` needs about {m.cases_needed_80 or '∞'} cases for its allowed drop "
        f"{fmt(m.max_regression)} (has {m.n_paired})"
        for m in short
    ]
    return [
        "",
        "- ⚠️ underpowered: " + "; ".join(parts) + ". *Detectable* is the smallest regression "
        "this n tells from no change at 80% power (sd of the deltas "
        + ("measured" if v.mode == "compare" else "planned from one run")
        + ").",
    ]


def _gate_changed(v: SuiteVerdict) -> list[str]:
    if not v.gate_changes:
        return []
    lines = [
        "",
        f"#### ⚠️ Gate changed: judged by the gate at `{v.gate_ref}`; the change needs a "
        "reviewer's sign-off",
        "",
        *(f"- {c}" for c in v.gate_changes),
    ]
    if v.gate_diff:
        lines += ["", "```diff", v.gate_diff.rstrip("\n"), "```"]
    return lines


def suite_markdown(v: SuiteVerdict, html_href: str = "report.html") -> str:
    lines = [f"### {'✅' if v.passed else '❌'} `{v.suite}`: {verdict_word(v)}", ""]
    if v.base is not None:
        lines.append(f"- base: {target_line(v.base.target)}")
    lines.append(f"- {'head' if v.base is not None else 'target'}: {target_line(v.head.target)}")
    lines.append("")
    for r in v.notes:
        lines.append(f"- ℹ️ {r}")
    for r in v.reasons:
        lines.append(f"- ❌ {r}")
    for m in v.metrics:
        for r in m.reasons:
            lines.append(f"- {_ICON[m.status]} `{m.metric}`: {r}")
    if v.notes or v.reasons or any(m.reasons for m in v.metrics):
        lines.append("")
    ci = f"{v.confidence:.0%} CI"
    if v.mode == "compare":
        lines.append(
            f"| metric | base | head | delta | {ci} | threshold | allowed drop | detectable | n | |"
        )
        lines.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---|")
        for m in v.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            interval = (
                "–" if m.ci_low is None else f"[{fmt_delta(m.ci_low)}, {fmt_delta(m.ci_high)}]"
            )
            lines.append(
                f"| `{m.metric}` {arrow} | {fmt(m.base_mean)} | {fmt(m.head_mean)} | "
                f"{fmt_delta(m.delta)} | {interval} | {fmt(m.threshold)} | "
                f"{allowed(m)} | {detectable(m)} | {m.n_paired} | {_ICON[m.status]} |"
            )
    else:
        lines.append("| metric | mean | threshold | allowed drop | detectable | n | |")
        lines.append("|---|---:|---:|---:|---:|---:|---|")
        for m in v.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            lines.append(
                f"| `{m.metric}` {arrow} | {fmt(m.head_mean)} | {fmt(m.threshold)} | "
                f"{allowed(m)} | {detectable(m)} | {m.n_paired} | {_ICON[m.status]} |"
            )
    lines += _power_note(v)
    lines += _gate_changed(v)
    if v.added_cases:
        lines += [
            "",
            f"- ➕ {len(v.added_cases)} case(s) only the head has, scored, not gated: "
            + ", ".join(_code(c) for c in list(v.added_cases)[:10]),
        ]
    worst = worst_cases(v)
    if worst:
        n_worse = sum(1 for c in rank_cases(v) if c.worse)
        what = "got worse" if v.mode == "compare" else "miss a threshold"
        lines += [
            "",
            f"<details><summary>Worst cases ({len(worst)} of {n_worse} that {what}; every case, "
            f"filterable, in {html_href})</summary>",
            "",
        ]
        if v.mode == "compare":
            lines.append("| case | metric | delta | base answer | head answer |")
            lines.append("|---|---|---:|---|---|")
        else:
            lines.append("| case | metric | score | answer |")
            lines.append("|---|---|---:|---|")
        for c in worst:
            link = f"[{_code(c.case_id)}]({html_href}#{case_anchor(v.suite, c.case_id)})"
            metric = _code(c.metric.metric) if c.metric else "–"
            if v.mode == "compare":
                lines.append(
                    f"| {link} | {metric} | {fmt_delta(c.value)} | "
                    f"{_cell(_answer(v.base, c.case_id))} | {_cell(_answer(v.head, c.case_id))} |"
                )
            else:
                lines.append(
                    f"| {link} | {metric} | {fmt(c.value)} | {_cell(_answer(v.head, c.case_id))} |"
                )
        lines += ["", "</details>"]
    runs = [r for r in (v.base, v.head) if r is not None]
    stats = "; ".join(
        f"{r.target.label}: {r.generations} generations, {r.generation_errors} errors, "
        f"judge failures {r.judge_failures}/{r.judge_calls}, cache {r.cache_hits} hits / "
        f"{r.cache_misses} misses, {r.wall_s:.1f}s"
        for r in runs
    )
    lines += ["", f"<sub>{stats}</sub>", ""]
    return "\n".join(lines)


def markdown_report(verdicts: list[SuiteVerdict], html_href: str = "report.html") -> str:
    """The pull-request comment; ``html_href`` is where the HTML report is (its case anchors)."""
    ok = all(v.passed for v in verdicts)
    n_fail = sum(1 for v in verdicts if not v.passed)
    head = (
        f"## ✅ Evals passed ({len(verdicts)} suites)"
        if ok
        else f"## ❌ Evals failed ({n_fail} of {len(verdicts)} suites)"
    )
    lines = [MARKER, head, ""]
    lines.append("| suite | verdict | why |")
    lines.append("|---|---|---|")
    for v in verdicts:
        why = [
            *v.reasons,
            *(
                f"{m.metric}: {m.reasons[0]}"
                for m in v.metrics
                if m.status in ("fail", "error") and m.reasons
            ),
        ]
        if v.gate_changed:
            why.insert(0, f"gate changed (judged by {v.gate_ref}'s)")
        lines.append(
            f"| `{v.suite}` | {'✅' if v.passed else '❌'} {verdict_word(v)} | "
            f"{_cell('; '.join(why), 300) if why else ''} |"
        )
    lines.append("")
    for v in verdicts:
        lines.append(suite_markdown(v, html_href))
    return "\n".join(lines)


def error_markdown(message: str) -> str:
    """The report when the evaluation itself could not run (still a failure)."""
    return f"{MARKER}\n## 💥 Evals could not run\n\n```\n{message}\n```\n\nThe gate fails closed.\n"
