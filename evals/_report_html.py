"""Self-contained HTML report: inline CSS, inline SVG and one small inline script; nothing fetched.

Per suite: the verdict and the metrics table; a forest plot of each metric's delta (head - base)
with its bootstrap interval against the metric's allowance; the prompt diff between base and
head; every case, largest regression first, with both answers side by side (word-level diff),
per-metric scores and latency, filterable by metric and verdict; the gate settings used; and,
folded away, per metric a histogram of scores and the sorted per-case deltas. It opens offline
from a CI artifact.

The markup is in ``templates/`` (Jinja2, autoescape on, so case ids, metric names, answers and
prompt text can never inject HTML); this module only works out what to show: formatted numbers,
diff segments and chart geometry. The page's Content-Security-Policy allows no network at all
and only the report's own script (by its hash), so even a markup bug cannot run injected code.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from statistics import fmean
from typing import Any

import jinja2
from markupsafe import Markup

from evals._report_md import (
    CaseChange,
    allowed,
    case_anchor,
    detectable,
    fmt,
    fmt_delta,
    rank_cases,
    target_line,
)
from evals._results import (
    CaseResult,
    GateSettings,
    MetricVerdict,
    RunResult,
    SuiteVerdict,
    TargetInfo,
)

_BASE, _HEAD, _GOOD, _BAD = "#8a9bb0", "#2f6fdb", "#2e9e5b", "#d0453a"
_COLORS = {"base": _BASE, "head": _HEAD, "good": _GOOD, "bad": _BAD}
_STATUS_COLORS = {"pass": _GOOD, "fail": _BAD, "inconclusive": "#c98a00", "error": "#6b7280"}
_TEMPLATES = Path(__file__).with_name("templates")
ANSWER_CHARS = 4000  # per answer shown; the JSON report has them whole


@cache
def _env() -> jinja2.Environment:
    """One environment per process (templates compile once); autoescape is on for every
    template, whatever its name, and an undefined name is an error rather than blank output."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@cache
def _script() -> tuple[str, str]:
    """The filter script (a constant: no data goes into it) and its CSP source expression."""
    js = _env().get_template("report.js.j2").render()
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    return js, f"'sha256-{digest}'"


# chart geometry ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bar:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


@dataclass(frozen=True, slots=True)
class _Label:
    x: float
    y: float
    text: str
    anchor: str | None = None


@dataclass(frozen=True, slots=True)
class _Svg:
    """One chart: bars, a baseline ``axis`` (x1, y1, x2, y2) and text labels, in pixels."""

    width: int
    height: int
    aria_label: str
    bars: list[_Bar]
    axis: tuple[float, float, float, float]
    labels: list[_Label]


def _scores(run: RunResult | None, metric: str) -> list[float]:
    if run is None:
        return []
    return [s for c in run.cases if (s := c.scores.get(metric)) is not None]


def _histogram(base: list[float], head: list[float], width: int, height: int) -> _Svg | None:
    """Ten bins over the range of both runs, base and head side by side (head alone when there
    is no base); None when there is nothing to plot."""
    vals = base + head
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = 10
    step = (hi - lo) / bins

    def counts(xs: list[float]) -> list[int]:
        c = [0] * bins
        for x in xs:
            c[min(int((x - lo) / step), bins - 1)] += 1
        return c

    cb, ch = counts(base), counts(head)
    top = max([*cb, *ch, 1])
    pad_l, pad_b, pad_t = 30, 28, 8
    pw, ph = width - pad_l - 8, height - pad_b - pad_t
    bw = pw / bins
    bars: list[_Bar] = []
    for i in range(bins):
        x = pad_l + i * bw
        for j, (c, color) in enumerate(((cb[i], _BASE), (ch[i], _HEAD))):
            if base == [] and j == 0:
                continue
            h = ph * c / top
            w = bw / 2 - 1 if base else bw - 2
            xx = x + 1 + (j * bw / 2 if base else 0)
            bars.append(_Bar(xx, pad_t + ph - h, w, h, color, str(c)))
    y0 = pad_t + ph
    return _Svg(
        width=width,
        height=height,
        aria_label="score distribution",
        bars=bars,
        axis=(pad_l, y0, pad_l + pw, y0),
        labels=[
            _Label(pad_l, y0 + 16, fmt(lo)),
            _Label(pad_l + pw, y0 + 16, fmt(hi), anchor="end"),
            _Label(4, pad_t + 10, str(top)),
        ],
    )


def _deltas(m: MetricVerdict, width: int, height: int) -> _Svg | None:
    """Per-case deltas, worst first, as bars up (better) or down (worse) from a middle line;
    None when no case is in both runs."""
    if not m.deltas:
        return None
    sign = 1.0 if m.higher_is_better else -1.0
    items = sorted(m.deltas.items(), key=lambda kv: sign * kv[1])
    span = max(abs(d) for _, d in items) or 1.0
    pad, ph = 8, height - 16
    mid = pad + ph / 2
    bw = (width - 2 * pad) / len(items)
    bars: list[_Bar] = []
    for i, (cid, d) in enumerate(items):
        h = (ph / 2) * abs(d) / span
        y = mid - h if d > 0 else mid
        color = _GOOD if sign * d > 0 else _BAD
        bars.append(_Bar(pad + i * bw, y, max(bw - 1, 1), h, color, f"{cid}: {fmt_delta(d)}"))
    return _Svg(
        width=width,
        height=height,
        aria_label="per-case deltas",
        bars=bars,
        axis=(pad, mid, width - pad, mid),
        labels=[_Label(pad, 12, f"+{fmt(span)}"), _Label(pad, height - 2, f"-{fmt(span)}")],
    )


@dataclass(frozen=True, slots=True)
class _ForestRow:
    """One metric's row: the interval ``x_lo..x_hi`` with the point ``x_mid`` (None: no interval,
    ``note`` says why), the allowance line ``x_allow`` and the shaded worse-than-allowed region
    ``bad`` (x, width), all on this row's own scale (metrics differ in scale)."""

    y: float
    metric: str
    arrow: str
    status: str
    color: str
    x_lo: float | None
    x_mid: float | None
    x_hi: float | None
    x_zero: float
    x_allow: float
    allow_label: str
    bad: tuple[float, float]
    ticks: tuple[str, str]
    summary: str
    note: str


@dataclass(frozen=True, slots=True)
class _Forest:
    width: int
    height: int
    x0: float
    x1: float
    label_x: float
    text_x: float
    row_height: int
    rows: list[_ForestRow]


def _forest(metrics: list[MetricVerdict]) -> _Forest | None:
    """Delta and interval of each metric against its allowance (``-max_regression`` on the worse
    side: below zero for higher-is-better metrics, above for lower-is-better ones)."""
    if not metrics:
        return None
    width, row_h, top = 780, 58, 4
    x0, x1 = 170.0, 530.0
    half, zero = (x1 - x0) / 2, (x0 + x1) / 2
    rows: list[_ForestRow] = []
    for i, m in enumerate(metrics):
        allow = -m.max_regression if m.higher_is_better else m.max_regression
        vals = [abs(x) for x in (m.ci_low, m.ci_high, m.delta) if x is not None]
        span = max([*vals, m.max_regression]) * 1.15 or 1.0

        def x(v: float, span: float = span) -> float:
            return zero + half * v / span

        xa = x(allow)
        bad = (x0, xa - x0) if m.higher_is_better else (xa, x1 - xa)
        has_ci = m.ci_low is not None and m.ci_high is not None and m.delta is not None
        if has_ci:
            summary = f"{fmt_delta(m.delta)} [{fmt_delta(m.ci_low)}, {fmt_delta(m.ci_high)}]"
            note = ""
        else:
            summary = "no interval"
            note = m.reasons[0] if m.reasons else "no paired cases"
        rows.append(
            _ForestRow(
                y=top + i * row_h,
                metric=m.metric,
                arrow="↑" if m.higher_is_better else "↓",
                status=m.status,
                color=_STATUS_COLORS.get(m.status, _BAD),
                x_lo=x(m.ci_low) if has_ci and m.ci_low is not None else None,
                x_mid=x(m.delta) if has_ci and m.delta is not None else None,
                x_hi=x(m.ci_high) if has_ci and m.ci_high is not None else None,
                x_zero=zero,
                x_allow=xa,
                allow_label=f"allowed {fmt_delta(allow)}" if m.max_regression else "allowed 0",
                bad=bad,
                ticks=(f"-{fmt(span)}", f"+{fmt(span)}"),
                summary=summary,
                note=note,
            )
        )
    return _Forest(
        width=width,
        height=top + len(rows) * row_h + 4,
        x0=x0,
        x1=x1,
        label_x=8,
        text_x=x1 + 14,
        row_height=row_h,
        rows=rows,
    )


def _svg(chart: _Svg) -> str:
    return str(_env().get_template("charts.svg.j2").module.svg(chart))  # type: ignore[attr-defined]


def histogram_svg(base: list[float], head: list[float], width: int = 360, height: int = 170) -> str:
    chart = _histogram(base, head, width, height)
    return "<p>no scores</p>" if chart is None else _svg(chart)


def deltas_svg(m: MetricVerdict, width: int = 360, height: int = 170) -> str:
    chart = _deltas(m, width, height)
    return "<p>no paired cases</p>" if chart is None else _svg(chart)


# answers, prompts, settings ---------------------------------------------------------------------

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
Segments = list[tuple[str, str]]  # (same | del | ins, text)


def word_diff(a: str, b: str) -> tuple[Segments, Segments]:
    """``a`` and ``b`` as segments, words only in ``a`` marked ``del`` and words only in ``b``
    ``ins`` (difflib over word, whitespace and punctuation tokens; whitespace never anchors a
    match, so two unrelated answers do not come out as confetti)."""
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    sm = difflib.SequenceMatcher(str.isspace, ta, tb, autojunk=False)
    left: Segments = []
    right: Segments = []

    def add(side: Segments, kind: str, toks: list[str]) -> None:
        text = "".join(toks)
        if not text:
            return
        if side and side[-1][0] == kind:
            side[-1] = (kind, side[-1][1] + text)
        else:
            side.append((kind, text))

    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            add(left, "same", ta[i1:i2])
            add(right, "same", tb[j1:j2])
        else:
            add(left, "del", ta[i1:i2])
            add(right, "ins", tb[j1:j2])
    return left, right


@dataclass(frozen=True, slots=True)
class _Answer:
    segments: Segments
    error: bool
    truncated: bool
    missing: bool


def _case(run: RunResult | None, case_id: str) -> CaseResult | None:
    if run is None:
        return None
    return next((c for c in run.cases if c.case_id == case_id), None)


def _text(c: CaseResult | None) -> tuple[str, bool]:
    """The first repeat's answer (or its error) and whether it is an error."""
    if c is None or not c.repeats:
        return "", False
    g = c.repeats[0].generation
    return (f"ERROR: {g.error}", True) if g.error else (g.text, False)


def _answers(base: CaseResult | None, head: CaseResult | None) -> tuple[_Answer, _Answer]:
    (bt, be), (ht, he) = _text(base), _text(head)
    bcut, hcut = bt[:ANSWER_CHARS], ht[:ANSWER_CHARS]
    if base is None:
        left: Segments = []
        right: Segments = [("same", hcut)] if hcut else []
    else:
        left, right = word_diff(bcut, hcut)
    return (
        _Answer(left, be, len(bt) > ANSWER_CHARS, base is None),
        _Answer(right, he, len(ht) > ANSWER_CHARS, head is None),
    )


def _latency(c: CaseResult | None) -> str:
    """Mean latency over the repeats that have one; ``(cached)`` when every repeat came from the
    cache (then it is the latency of the run that generated it)."""
    if c is None:
        return ""
    ms = [g.latency_ms for r in c.repeats if (g := r.generation).latency_ms is not None]
    if not ms:
        return "–"
    cached = all(r.generation.cached for r in c.repeats)
    return f"{fmean(ms):,.0f} ms" + (" (cached)" if cached else "")


@dataclass(frozen=True, slots=True)
class _Score:
    metric: str
    base: str
    head: str
    delta: str
    verdict: str


@dataclass(frozen=True, slots=True)
class _CaseRow:
    anchor: str
    case: str
    verdict: str
    verdicts: list[str]  # per metric, in the suite's order ("" where the case has none)
    metric: str
    value: str
    base: _Answer
    head: _Answer
    scores: list[_Score]
    base_latency: str
    head_latency: str


def _case_rows(v: SuiteVerdict) -> list[_CaseRow]:
    compare = v.mode == "compare"
    rows: list[_CaseRow] = []
    for ch in rank_cases(v):
        b, h = _case(v.base, ch.case_id), _case(v.head, ch.case_id)
        ba, ha = _answers(b if compare else None, h)
        rows.append(
            _CaseRow(
                anchor=case_anchor(v.suite, ch.case_id),
                case=ch.case_id,
                verdict=ch.verdict,
                verdicts=[ch.verdicts.get(m.metric, "") for m in v.metrics],
                metric=ch.metric.metric if ch.metric else "",
                value=_value(v, ch),
                base=ba,
                head=ha,
                scores=[_score(m, b, h, ch) for m in v.metrics],
                base_latency=_latency(b) if compare else "",
                head_latency=_latency(h),
            )
        )
    return rows


def _value(v: SuiteVerdict, ch: CaseChange) -> str:
    if ch.metric is None:
        return ""
    return fmt_delta(ch.value) if v.mode == "compare" else fmt(ch.value)


def _score(m: MetricVerdict, b: CaseResult | None, h: CaseResult | None, ch: CaseChange) -> _Score:
    bs = b.scores.get(m.metric) if b else None
    hs = h.scores.get(m.metric) if h else None
    d = m.deltas.get(ch.case_id)
    return _Score(m.metric, fmt(bs), fmt(hs), fmt_delta(d), ch.verdicts.get(m.metric, ""))


@dataclass(frozen=True, slots=True)
class _PromptDiff:
    """``state``: ``diff`` (lines), ``same``, ``unrecorded`` (an older report without the prompt
    source), ``none`` (no prompt template: the cases carry their messages), ``nobase``."""

    state: str
    base: str
    head: str
    lines: list[tuple[str, str]]
    models: str


def _prompt_name(t: TargetInfo) -> str:
    if not t.prompt:
        return "no prompt"
    where = f" at {t.ref}" if t.ref else " (working tree)"
    return f"{t.prompt}@{t.version}{where}"


def _prompt_diff(v: SuiteVerdict) -> _PromptDiff:
    head = v.head.target
    if v.base is None:
        return _PromptDiff("nobase", "", _prompt_name(head), [], "")
    base = v.base.target
    models = f"model {base.model} → {head.model}" if base.model != head.model else ""
    names = (_prompt_name(base), _prompt_name(head))
    if not base.prompt and not head.prompt:
        return _PromptDiff("none", *names, [], models)
    if base.prompt_text is None or head.prompt_text is None:
        same = base.prompt == head.prompt and base.version == head.version
        return _PromptDiff("same" if same else "unrecorded", *names, [], models)
    if base.prompt_text == head.prompt_text:
        return _PromptDiff("same", *names, [], models)
    diff = difflib.unified_diff(
        base.prompt_text.splitlines(),
        head.prompt_text.splitlines(),
        fromfile=f"base: {names[0]}",
        tofile=f"head: {names[1]}",
        lineterm="",
        n=3,
    )
    return _PromptDiff("diff", *names, _diff_lines(diff), models)


def _diff_lines(diff: Iterable[str]) -> list[tuple[str, str]]:
    """A unified diff's lines with their kind (file, hunk, ins, del, ctx) for the CSS."""
    lines: list[tuple[str, str]] = []
    for line in diff:
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = {"+": "ins", "-": "del"}.get(line[:1], "ctx")
        lines.append((kind, line))
    return lines


@dataclass(frozen=True, slots=True)
class _Setting:
    name: str
    value: str
    meaning: str


def _settings(v: SuiteVerdict) -> list[_Setting]:
    g = v.gate
    rows = [
        _Setting("gate.confidence", f"{v.confidence:.0%}", "two-sided confidence of the intervals")
    ]
    if g is None:
        return rows
    return rows + _recorded_settings(g)


def _recorded_settings(g: GateSettings) -> list[_Setting]:
    policy = {
        "pass": "an interval straddling the allowance passes (flagged)",
        "fail": "an interval straddling the allowance fails",
    }
    return [
        _Setting("gate.bootstrap_samples", f"{g.bootstrap_samples:,}", "bootstrap resamples"),
        _Setting("gate.inconclusive", g.inconclusive, policy[g.inconclusive]),
        _Setting("gate.min_cases", str(g.min_cases), "fewer scored (paired) cases is an error"),
        _Setting("gate.max_error_rate", f"{g.max_error_rate:.0%}", "failed generations allowed"),
        _Setting(
            "judge.max_failure_rate",
            f"{g.judge_max_failure_rate:.0%}",
            "judge failures allowed, of the judged scores",
        ),
        _Setting("repeats", str(g.repeats), "answers per case, scores averaged per case"),
        _Setting("seed", str(g.seed), "per-(case, repeat) seeds and the bootstrap derive from it"),
    ]


# what a suite shows -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MetricRow:
    metric: str
    type: str
    arrow: str
    base: str
    head: str
    delta: str
    ci: str
    threshold: str
    max_regression: str
    detectable: str
    n: int
    status: str


@dataclass(frozen=True, slots=True)
class _Chart:
    metric: str
    histogram: _Svg | None
    deltas: _Svg | None


@dataclass(frozen=True, slots=True)
class _SuiteView:
    """One suite's section of the report, every number already formatted as in the Markdown."""

    index: int
    suite: str
    passed: bool
    base_target: str | None
    head_target: str
    reasons: list[tuple[str, str]]
    confidence: str
    metrics: list[_MetricRow]
    compare: bool
    forest: _Forest | None
    charts: list[_Chart]
    cases: list[_CaseRow]
    verdict_words: list[str]
    prompt: _PromptDiff
    settings: list[_Setting]
    gate_recorded: bool
    gate_ref: str | None
    gate_changes: list[str]
    gate_diff: list[tuple[str, str]]
    added_cases: list[str]


def _metric_row(m: MetricVerdict) -> _MetricRow:
    ci = "–" if m.ci_low is None else f"[{fmt_delta(m.ci_low)}, {fmt_delta(m.ci_high)}]"
    return _MetricRow(
        metric=m.metric,
        type=m.type,
        arrow="↑" if m.higher_is_better else "↓",
        base=fmt(m.base_mean),
        head=fmt(m.head_mean),
        delta=fmt_delta(m.delta),
        ci=ci,
        threshold=fmt(m.threshold),
        max_regression=allowed(m),
        detectable=detectable(m),
        n=m.n_paired,
        status=m.status,
    )


def _suite_view(i: int, v: SuiteVerdict) -> _SuiteView:
    reasons = [(r, "note") for r in v.notes] + [(r, "fail") for r in v.reasons]
    reasons += [(f"{m.metric}: {r}", m.status) for m in v.metrics for r in m.reasons]
    compare = v.mode == "compare"
    charts = [
        _Chart(
            metric=m.metric,
            histogram=_histogram(_scores(v.base, m.metric), _scores(v.head, m.metric), 360, 170),
            deltas=_deltas(m, 360, 170) if compare else None,
        )
        for m in v.metrics
    ]
    return _SuiteView(
        index=i,
        suite=v.suite,
        passed=v.passed,
        base_target=target_line(v.base.target) if v.base is not None else None,
        head_target=target_line(v.head.target),
        reasons=reasons,
        confidence=f"{v.confidence:.0%}",
        metrics=[_metric_row(m) for m in v.metrics],
        compare=compare,
        forest=_forest(v.metrics) if compare else None,
        charts=charts,
        cases=_case_rows(v),
        verdict_words=["regressed", "improved", "unchanged"] if compare else ["below", "meets"],
        prompt=_prompt_diff(v),
        settings=_settings(v),
        gate_recorded=v.gate is not None,
        gate_ref=v.gate_ref,
        gate_changes=v.gate_changes,
        gate_diff=_diff_lines(v.gate_diff.splitlines(keepends=True)),
        added_cases=list(v.added_cases),
    )


def html_report(verdicts: list[SuiteVerdict], title: str = "llmops eval report") -> str:
    script, script_src = _script()
    context: dict[str, Any] = {
        "title": title,
        "ok": all(v.passed for v in verdicts),
        "suites": [_suite_view(i, v) for i, v in enumerate(verdicts)],
        "colors": _COLORS,
        "script": Markup(script),  # a constant from templates/, no data in it
        "script_src": script_src,
    }
    return _env().get_template("report.html.j2").render(context)
