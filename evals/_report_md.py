"""Markdown report for a pull-request comment: verdict first, then numbers, then worst cases."""

from __future__ import annotations

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


def worst_cases(v: SuiteVerdict, limit: int = 5) -> list[tuple[MetricVerdict, str, float]]:
    """(metric, case, value) for the cases that hurt most.

    compare: the most negative (oriented) per-case deltas, failing metrics first; run: the cases
    under a metric's threshold, lowest first.
    """
    out: list[tuple[MetricVerdict, str, float]] = []
    order = {"error": 0, "fail": 1, "inconclusive": 2}
    for m in sorted(v.metrics, key=lambda m: order.get(m.status, 3)):
        sign = 1.0 if m.higher_is_better else -1.0
        if v.mode == "compare":
            items = [(c, sign * d) for c, d in m.deltas.items() if sign * d < 0]
        elif m.threshold is not None:
            items = [
                (c.case_id, sign * s)
                for c in v.head.cases
                if (s := c.scores.get(m.metric)) is not None and sign * s < sign * m.threshold
            ]
        else:
            items = []
        items.sort(key=lambda x: x[1])
        out.extend((m, cid, d) for cid, d in items[:3])
        if len(out) >= limit:
            break
    return out[:limit]


def _answer(run: RunResult | None, case_id: str) -> str:
    if run is None:
        return ""
    c: CaseResult | None = next((x for x in run.cases if x.case_id == case_id), None)
    if c is None or not c.repeats:
        return ""
    g = c.repeats[0].generation
    return f"ERROR: {g.error}" if g.error else g.text


def suite_markdown(v: SuiteVerdict) -> str:
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
        lines.append(f"| metric | base | head | delta | {ci} | threshold | allowed drop | n | |")
        lines.append("|---|---:|---:|---:|---|---:|---:|---:|---|")
        for m in v.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            interval = (
                "–" if m.ci_low is None else f"[{fmt_delta(m.ci_low)}, {fmt_delta(m.ci_high)}]"
            )
            lines.append(
                f"| `{m.metric}` {arrow} | {fmt(m.base_mean)} | {fmt(m.head_mean)} | "
                f"{fmt_delta(m.delta)} | {interval} | {fmt(m.threshold)} | "
                f"{fmt(m.max_regression)} | {m.n_paired} | {_ICON[m.status]} |"
            )
    else:
        lines.append("| metric | mean | threshold | n | |")
        lines.append("|---|---:|---:|---:|---|")
        for m in v.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            lines.append(
                f"| `{m.metric}` {arrow} | {fmt(m.head_mean)} | {fmt(m.threshold)} | "
                f"{m.n_paired} | {_ICON[m.status]} |"
            )
    worst = worst_cases(v)
    if worst:
        lines += ["", "<details><summary>Worst cases</summary>", ""]
        if v.mode == "compare":
            lines.append("| case | metric | delta | base answer | head answer |")
            lines.append("|---|---|---:|---|---|")
            for m, cid, _ in worst:
                lines.append(
                    f"| `{cid}` | `{m.metric}` | {fmt_delta(m.deltas.get(cid))} | "
                    f"{_cell(_answer(v.base, cid))} | {_cell(_answer(v.head, cid))} |"
                )
        else:
            lines.append("| case | metric | score | answer |")
            lines.append("|---|---|---:|---|")
            for m, cid, s in worst:
                score = s if m.higher_is_better else -s
                lines.append(
                    f"| `{cid}` | `{m.metric}` | {fmt(score)} | {_cell(_answer(v.head, cid))} |"
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


def markdown_report(verdicts: list[SuiteVerdict]) -> str:
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
        lines.append(
            f"| `{v.suite}` | {'✅' if v.passed else '❌'} {verdict_word(v)} | "
            f"{_cell('; '.join(why), 300) if why else ''} |"
        )
    lines.append("")
    for v in verdicts:
        lines.append(suite_markdown(v))
    return "\n".join(lines)


def error_markdown(message: str) -> str:
    """The report when the evaluation itself could not run (still a failure)."""
    return f"{MARKER}\n## 💥 Evals could not run\n\n```\n{message}\n```\n\nThe gate fails closed.\n"
