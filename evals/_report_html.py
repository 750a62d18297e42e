"""Self-contained HTML report: inline CSS and inline SVG charts, no script, no CDN.

Per metric: a histogram of per-case scores, base vs head, and the per-case deltas sorted (bars
below zero are cases that got worse). It opens offline from a CI artifact.
"""

from __future__ import annotations

from html import escape

from evals._report_md import _answer, fmt, fmt_delta, target_line, worst_cases
from evals._results import MetricVerdict, RunResult, SuiteVerdict

_BASE, _HEAD, _GOOD, _BAD = "#8a9bb0", "#2f6fdb", "#2e9e5b", "#d0453a"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1c2430;
max-width:1200px}
h1{margin:0 0 8px}.pass{color:#1f7a45}.fail{color:#b3261e}.inconclusive{color:#9a6700}
.error{color:#b3261e}table{border-collapse:collapse;margin:8px 0 16px}
td,th{border:1px solid #d5dbe3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #e3e7ee;padding:8px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
code{background:#f1f4f8;padding:0 3px}.ans{max-width:420px;white-space:pre-wrap}
"""


def _md_code(s: str) -> str:
    """Backticks from shared Markdown helpers -> <code>."""
    parts = escape(s).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _scores(run: RunResult | None, metric: str) -> list[float]:
    if run is None:
        return []
    return [s for c in run.cases if (s := c.scores.get(metric)) is not None]


def histogram_svg(base: list[float], head: list[float], width: int = 360, height: int = 170) -> str:
    vals = base + head
    if not vals:
        return "<p>no scores</p>"
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
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="score distribution">'
    ]
    for i in range(bins):
        x = pad_l + i * bw
        for j, (c, color) in enumerate(((cb[i], _BASE), (ch[i], _HEAD))):
            if base == [] and j == 0:
                continue
            h = ph * c / top
            w = bw / 2 - 1 if base else bw - 2
            xx = x + 1 + (j * bw / 2 if base else 0)
            out.append(
                f'<rect x="{xx:.1f}" y="{pad_t + ph - h:.1f}" width="{w:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{c}</title></rect>'
            )
    y0 = pad_t + ph
    out.append(f'<line x1="{pad_l}" y1="{y0}" x2="{pad_l + pw}" y2="{y0}" stroke="#555"/>')
    out.append(f'<text x="{pad_l}" y="{y0 + 16}" font-size="11">{fmt(lo)}</text>')
    out.append(
        f'<text x="{pad_l + pw}" y="{y0 + 16}" font-size="11" text-anchor="end">{fmt(hi)}</text>'
    )
    out.append(f'<text x="4" y="{pad_t + 10}" font-size="11">{top}</text>')
    out.append("</svg>")
    return "".join(out)


def deltas_svg(m: MetricVerdict, width: int = 360, height: int = 170) -> str:
    if not m.deltas:
        return "<p>no paired cases</p>"
    sign = 1.0 if m.higher_is_better else -1.0
    items = sorted(m.deltas.items(), key=lambda kv: sign * kv[1])
    span = max(abs(d) for _, d in items) or 1.0
    pad, ph = 8, height - 16
    mid = pad + ph / 2
    bw = (width - 2 * pad) / len(items)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="per-case deltas">'
    ]
    for i, (cid, d) in enumerate(items):
        h = (ph / 2) * abs(d) / span
        y = mid - h if d > 0 else mid
        color = _GOOD if sign * d > 0 else _BAD
        out.append(
            f'<rect x="{pad + i * bw:.1f}" y="{y:.1f}" width="{max(bw - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{color}"><title>{escape(cid)}: {fmt_delta(d)}'
            "</title></rect>"
        )
    out.append(f'<line x1="{pad}" y1="{mid}" x2="{width - pad}" y2="{mid}" stroke="#555"/>')
    out.append(f'<text x="{pad}" y="12" font-size="11">+{fmt(span)}</text>')
    out.append(f'<text x="{pad}" y="{height - 2}" font-size="11">-{fmt(span)}</text>')
    out.append("</svg>")
    return "".join(out)


def _suite_html(v: SuiteVerdict) -> str:
    cls = "pass" if v.passed else "fail"
    h = [f'<h2 class="{cls}">{escape(v.suite)}: {"PASS" if v.passed else "FAIL"}</h2><ul>']
    if v.base is not None:
        h.append(f"<li>base: {_md_code(target_line(v.base.target))}</li>")
    h.append(f"<li>head: {_md_code(target_line(v.head.target))}</li></ul>")
    reasons = [(r, "fail") for r in v.reasons]
    reasons += [(f"{m.metric}: {r}", m.status) for m in v.metrics for r in m.reasons]
    if reasons:
        h.append(
            "<ul>" + "".join(f'<li class="{c}">{escape(r)}</li>' for r, c in reasons) + "</ul>"
        )
    h.append(
        "<table><tr><th>metric</th><th>base</th><th>head</th><th>delta</th>"
        f"<th>{v.confidence:.0%} CI</th><th>threshold</th><th>allowed drop</th><th>n</th>"
        "<th>status</th></tr>"
    )
    for m in v.metrics:
        ci = "–" if m.ci_low is None else f"[{fmt_delta(m.ci_low)}, {fmt_delta(m.ci_high)}]"
        arrow = "↑" if m.higher_is_better else "↓"
        h.append(
            f"<tr><td><code>{escape(m.metric)}</code> {arrow}</td><td class=n>{fmt(m.base_mean)}"
            f"</td><td class=n>{fmt(m.head_mean)}</td><td class=n>{fmt_delta(m.delta)}</td>"
            f"<td>{ci}</td><td class=n>{fmt(m.threshold)}</td><td class=n>"
            f"{fmt(m.max_regression)}</td><td class=n>{m.n_paired}</td>"
            f'<td class="{m.status}">{m.status}</td></tr>'
        )
    h.append("</table>")
    h.append(
        '<p class="legend"><span style="background:' + _BASE + '"></span>base'
        '<span style="background:' + _HEAD + '"></span>head'
        '<span style="background:' + _BAD + '"></span>worse'
        '<span style="background:' + _GOOD + '"></span>better</p>'
    )
    h.append('<div class="charts">')
    for m in v.metrics:
        h.append(
            f'<div class="chart"><b>{escape(m.metric)}</b><br>'
            f"{histogram_svg(_scores(v.base, m.metric), _scores(v.head, m.metric))}"
        )
        if v.mode == "compare":
            h.append(f"<br><small>per-case delta (sorted)</small><br>{deltas_svg(m)}")
        h.append("</div>")
    h.append("</div>")
    worst = worst_cases(v, limit=10)
    if worst:
        h.append(
            "<h3>Worst cases</h3><table><tr><th>case</th><th>metric</th><th>value</th>"
            + ("<th>base answer</th>" if v.base else "")
            + "<th>head answer</th></tr>"
        )
        for m, cid, d in worst:
            val = (
                fmt_delta(m.deltas.get(cid))
                if v.mode == "compare"
                else fmt(d if m.higher_is_better else -d)
            )
            h.append(
                f"<tr><td><code>{escape(cid)}</code></td><td>{escape(m.metric)}</td>"
                f"<td class=n>{val}</td>"
            )
            if v.base:
                h.append(f'<td class="ans">{escape(_answer(v.base, cid)[:600])}</td>')
            h.append(f'<td class="ans">{escape(_answer(v.head, cid)[:600])}</td></tr>')
        h.append("</table>")
    return "".join(h)


def html_report(verdicts: list[SuiteVerdict], title: str = "llmops eval report") -> str:
    ok = all(v.passed for v in verdicts)
    body = "".join(_suite_html(v) for v in verdicts)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{_CSS}</style></head><body>"
        f'<h1 class="{"pass" if ok else "fail"}">{"PASS" if ok else "FAIL"}: {escape(title)}</h1>'
        f"{body}</body></html>\n"
    )
