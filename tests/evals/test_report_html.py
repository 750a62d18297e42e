"""The HTML report: everything from suites, datasets, prompts and model answers is escaped; the
only script is the report's own (pinned by the page's CSP); cases are ranked and anchored as the
Markdown comment links them; the word diff, prompt diff, forest plot and gate settings."""

from __future__ import annotations

import base64
import hashlib
import re
from html import unescape

import pytest

from evals._report_html import _forest, html_report, word_diff
from evals._report_md import case_anchor, markdown_report, rank_cases
from evals._results import (
    CaseResult,
    GateSettings,
    Generation,
    MetricVerdict,
    RepeatResult,
    RunResult,
    SuiteVerdict,
    TargetInfo,
    template_source,
)

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _run(label: str, score: float, prompt_text: str | None = None) -> RunResult:
    gen = Generation(text=f"answer {XSS}", latency_ms=12.0)
    case = CaseResult(
        case_id=XSS,
        scores={XSS: score},
        repeats=[RepeatResult(repeat=0, generation=gen, scores={XSS: score})],
    )
    return RunResult(
        suite=XSS,
        target=TargetInfo(
            label=label, model=XSS, prompt=XSS, version="v1", prompt_text=prompt_text
        ),
        cases=[case],
        generations=1,
        means={XSS: score},
    )


def _script(html: str) -> str:
    (body,) = re.findall(r"<script>(.*?)</script>", html, re.S)
    return str(body)


def test_names_and_answers_are_escaped() -> None:
    metric = MetricVerdict(
        metric=XSS,
        type="contains",
        threshold=0.5,
        base_mean=1.0,
        head_mean=0.0,
        delta=-1.0,
        ci_low=-1.0,
        ci_high=-1.0,
        n_paired=1,
        status="fail",
        reasons=[f"regression in {XSS}"],
        deltas={XSS: -1.0},
    )
    v = SuiteVerdict(
        suite=XSS,
        mode="compare",
        passed=False,
        reasons=[XSS],
        metrics=[metric],
        base=_run("base", 1.0, prompt_text=f"content: {XSS}\n"),
        head=_run("head", 0.0, prompt_text=f"content: {XSS}!\n"),
    )
    html = html_report([v], title=XSS)
    # one script, the report's own constant one, allowed by hash and by nothing else
    assert html.lower().count("<script") == 1 and "alert(1)</" not in html
    script = _script(html)
    assert "alert" not in script and "<" not in script
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp, html[:600]
    policy = unescape(csp.group(1)).split("; ")
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy
    # title, h1, suite heading, both target lines, reasons, tables, forest row, case row,
    # both answers, the prompt diff, the score histogram and delta bars
    assert html.count(ESCAPED) >= 20
    assert f"<title>{ESCAPED}</title>" in html
    assert f"<del>answer {ESCAPED}</del>" not in html  # same answers: nothing marked
    assert f'<div class="ans">answer {ESCAPED}</div>' in html
    assert f"<td><code>{ESCAPED}</code></td>" in html  # the case's id
    assert f'data-metric="{ESCAPED}"' in html  # the forest row
    assert f'<span class="d-ins">+content: {ESCAPED}!</span>' in html
    assert f"<title>{ESCAPED}: -1.000</title>" in html  # a delta bar's tooltip
    assert html.count("<svg") == 3 and html.endswith("</html>\n")
    assert not re.search(r"(src|href)=\"?https?:", html)
    assert "@import" not in html and "url(" not in html


def test_word_diff_marks_changed_words_only() -> None:
    left, right = word_diff("The capital is Paris.", "The capital is Rome, I think.")
    assert left == [("same", "The capital is "), ("del", "Paris"), ("same", ".")]
    assert right == [
        ("same", "The capital is "),
        ("ins", "Rome, I think"),
        ("same", "."),
    ]
    # unrelated answers: whitespace alone never matches, so each side is one block
    assert word_diff("Paris", "Well, it is old") == (
        [("del", "Paris")],
        [("ins", "Well, it is old")],
    )
    assert "".join(t for _, t in word_diff("a  b\nc", "a b c")[1]) == "a b c"


def _case(cid: str, scores: dict[str, float], text: str) -> CaseResult:
    gen = Generation(text=text, latency_ms=scores.get("latency_ms"))
    return CaseResult(
        case_id=cid, scores=dict(scores), repeats=[RepeatResult(repeat=0, generation=gen)]
    )


def _verdict() -> SuiteVerdict:
    """Six cases: ``c<d`` changes contains by ``d`` tenths; latency is worse on ``b1``."""
    base_s = {"a": 1.0, "b1": 1.0, "b2": 0.8, "c": 0.5, "d.x/y": 0.0, "e": 1.0}
    head_s = {"a": 1.0, "b1": 1.0, "b2": 0.2, "c": 0.1, "d.x/y": 1.0, "e": 1.0}
    lat_b = {"a": 10.0, "b1": 10.0, "b2": 10.0, "c": 10.0, "d.x/y": 10.0, "e": 10.0}
    lat_h = {**lat_b, "b1": 30.0}
    base = RunResult(
        suite="s",
        target=TargetInfo(label="base", prompt="p", version="v1", ref="main", model="m"),
        cases=[
            _case(c, {"contains": s, "latency_ms": lat_b[c]}, f"base {c}")
            for c, s in base_s.items()
        ],
    )
    head = RunResult(
        suite="s",
        target=TargetInfo(label="head", prompt="p", version="v2", ref="HEAD", model="m"),
        cases=[
            _case(c, {"contains": s, "latency_ms": lat_h[c]}, f"head {c}")
            for c, s in head_s.items()
        ],
    )
    contains = MetricVerdict(
        metric="contains",
        type="contains",
        threshold=0.5,
        max_regression=0.05,
        delta=-0.1,
        ci_low=-0.4,
        ci_high=0.2,
        status="fail",
        deltas={c: head_s[c] - base_s[c] for c in base_s},
    )
    latency = MetricVerdict(
        metric="latency_ms",
        type="latency_ms",
        higher_is_better=False,
        max_regression=5.0,
        delta=3.3,
        ci_low=0.0,
        ci_high=10.0,
        status="inconclusive",
        deltas={c: lat_h[c] - lat_b[c] for c in lat_b},
    )
    return SuiteVerdict(
        suite="s", mode="compare", passed=False, metrics=[contains, latency], base=base, head=head
    )


def test_cases_ranked_worst_first_and_linked_from_markdown() -> None:
    v = _verdict()
    ranked = rank_cases(v)
    # the worst change on the failing metric first (b2 -0.6, c -0.4), then the latency-only one,
    # the unchanged ones in dataset order, the improvement last
    assert [c.case_id for c in ranked] == ["b2", "c", "b1", "a", "e", "d.x/y"]
    assert [c.verdict for c in ranked] == [
        "regressed",
        "regressed",
        "regressed",
        "unchanged",
        "unchanged",
        "improved",
    ]
    assert ranked[2].metric is not None and ranked[2].metric.metric == "latency_ms"
    assert ranked[2].verdicts == {"contains": "unchanged", "latency_ms": "regressed"}
    html = html_report([v])
    ids = re.findall(r'<tr class="case" id="([^"]+)"', html)
    assert ids == [case_anchor("s", c.case_id) for c in ranked]
    assert ids[0] == "case-s-b2" and re.fullmatch(r"case-s-d\.x-y-[0-9a-f]{8}", ids[-1])
    assert case_anchor("s", "d.x/y") != case_anchor("s", "d.x-y")
    md = markdown_report([v])
    links = re.findall(r"\[`([^`]+)`\]\(report\.html#([^)]+)\)", md)
    assert links == [("b2", "case-s-b2"), ("c", "case-s-c"), ("b1", "case-s-b1")]
    assert "| [`b2`](report.html#case-s-b2) | `contains` | -0.600 | base b2 | head b2 |" in md
    assert all(f'id="{anchor}"' in html for _, anchor in links)
    # per-metric verdicts for the filter, and the worsened words marked up
    assert 'data-verdict="regressed" data-m0="unchanged" data-m1="regressed"' in html
    assert '<div class="ans"><ins>head</ins> b2</div>' in html


def test_forest_puts_the_allowance_on_the_worse_side() -> None:
    v = _verdict()
    forest = _forest(v.metrics)
    assert forest is not None
    contains, latency = forest.rows
    assert contains.x_allow < contains.x_zero and contains.bad[0] == forest.x0
    assert latency.x_allow > latency.x_zero
    assert latency.bad[0] + latency.bad[1] == pytest.approx(forest.x1)
    assert contains.x_lo is not None and contains.x_hi is not None and contains.x_mid is not None
    assert contains.x_lo < contains.x_mid < contains.x_zero < contains.x_hi
    assert (
        contains.summary == "-0.100 [-0.400, +0.200]" and contains.allow_label == "allowed -0.050"
    )
    # a metric without an interval says why instead of drawing one
    v.metrics[0] = v.metrics[0].model_copy(
        update={
            "ci_low": None,
            "ci_high": None,
            "delta": None,
            "status": "error",
            "reasons": ["only 2 paired cases (gate.min_cases 5)"],
        }
    )
    again = _forest(v.metrics)
    assert again is not None
    row = again.rows[0]
    assert row.x_mid is None and row.note.startswith("only 2 paired cases")


def test_prompt_diff_and_gate_settings() -> None:
    from prompts._template import parse_template

    def template(instruction: str) -> str | None:
        text = (
            "name: p\nmessages:\n  - role: system\n    content: |\n      "
            + instruction
            + "\n      Be brief.\n  - role: user\n    content: '{{ q }}'\n"
            + "variables:\n  q: {type: string}\n"
        )
        return template_source(parse_template(text, source="p.yaml"))

    v = _verdict()
    assert v.base is not None
    v.base.target.prompt_text = template("Answer with the city only.")
    v.head.target.prompt_text = template("Tell me about the country.")
    v.gate = GateSettings(inconclusive="fail", min_cases=8, bootstrap_samples=5000, seed=3)
    html = html_report([v])
    diff = re.search(r'<pre class="diff">(.*?)</pre>', html, re.S)
    assert diff
    assert '<span class="d-del">-    Answer with the city only.</span>' in diff.group(1)
    assert '<span class="d-ins">+    Tell me about the country.</span>' in diff.group(1)
    assert '<span class="d-ctx">     Be brief.</span>' in diff.group(1)
    assert '<span class="d-file">--- base: p@v1 at main</span>' in diff.group(1)
    for name, value in [
        ("gate.confidence", "95%"),
        ("gate.bootstrap_samples", "5,000"),
        ("gate.inconclusive", "fail"),
        ("gate.min_cases", "8"),
        ("gate.max_error_rate", "0%"),
        ("judge.max_failure_rate", "10%"),
        ("seed", "3"),
    ]:
        assert f'<td><code>{name}</code></td><td class="n">{value}</td>' in html, name
    assert "not recorded" not in html


def test_a_report_without_the_new_fields_still_renders() -> None:
    """report.json from before prompt sources and gate settings were recorded."""
    v = _verdict()
    html = html_report([SuiteVerdict.model_validate(v.model_dump(exclude={"gate"}))])
    assert "the prompt sources are not recorded" in html
    assert "The other gate settings were not recorded" in html


def test_a_run_without_base_ranks_by_threshold() -> None:
    v = _verdict()
    run = SuiteVerdict(
        suite="s",
        mode="run",
        passed=False,
        metrics=[v.metrics[0].model_copy(update={"deltas": {}})],
        head=v.head,
    )
    ranked = rank_cases(run)
    assert [c.case_id for c in ranked][:2] == ["c", "b2"]  # 0.1 and 0.2 against 0.5
    assert ranked[0].verdict == "below" and ranked[-1].verdict == "meets"
    html = html_report([run])
    assert "<th>base answer</th>" not in html and "<svg" in html
    assert '<option value="below">below</option>' in html
    assert "No baseline" in html
