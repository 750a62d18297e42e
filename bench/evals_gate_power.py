"""Gate error rates on real answers: false fails on harmless rewordings, detection of planted
regressions, and how often the gate's interval covers the true change.

Step 1, generations (the real engine behind the real gateway, once): for each suite, the evals
API (``evaluate``, ``Side(ref=...)``) scores with the suite's own metrics

- ``shipped``: the prompt as it is in ``prompts/``;
- rewordings of its system message that keep the meaning (``whitespace``: one sentence a line;
  ``synonyms``: a few words swapped for synonyms; ``polite``: "Please ..."), the no-ops;
- degraded variants (``truncated``: ``max_tokens`` 2; ``verbose``: ``ignore_eos``, so every
  answer runs to ``max_tokens``; set in the template and in the suite's ``target.params``, which
  override it), the regressions; per metric the one that hurts it most is used.

Each variant is a commit (tagged with its name) in a temporary git repository holding a copy of
``prompts/``, which the suite reads its prompt from (the suite's ``repo``). Every variant is
rendered here (``render: local``; the gateway could not serve the temporary versions), then sent
through the gateway: the one answering at ``--url`` (``make run``), else the real engine started
here behind the real gateway, only when some answer is not cached. Answers land in the evals
cache under ``$LLMOPS_HOME``, the per-case scores in ``$LLMOPS_HOME/bench/evals_gate_power.json``
(keyed by the suite, its cases, the prompt and the variants), so a re-run resamples at once,
without the engine.

Step 2, resampling (no engine; about 20 ms a replication at n=100 here): per suite and gated metric
(those with ``max_regression``), ``--reps`` replications each draw n cases with replacement (n =
the suite's cases) and put the paired deltas through the gate's own interval code (``evals._gate``:
BCa bootstrap with the suite's confidence, resamples and seed, the three-way reading,
``inconclusive`` counted as a fail). Base is the shipped prompt. The head's deltas are a
rewording's (replications cycle through them) with a random sign per case: the case-by-case
spread of a harmless edit, with a mean change of exactly 0. That is the false-fail rate; "as is"
is the same with the rewordings' real mean change, which on a 135M model is not always 0
("reword Δ"). Planted regressions swap a random share of those cases for the degraded variant's
deltas, the share set so that the expected mean drop is 0.5x, 1x and 2x the allowance and the
gate's own ``mde_95`` (a drop out of reach even with every case swapped is planted at its largest
and marked ``*``). Coverage: how often the interval holds the setup's true mean delta, against
the nominal confidence.

    python -m bench.evals_gate_power [--suites rag-answer extract-json] [--limit 60]
        [--reps 500] [--markdown] [--json OUT] [--offline]

Targets: false fails <= 5% on no-ops, detection >= 95% at the allowance (the regression a
shipped suite states it detects), coverage within 2 points of nominal. The gate fails a change
whose interval's worse end passes the allowance, so by normal theory false fails are at most 5%
once the allowance reaches ``mde_95`` and detection at the allowance is about 97.5%. Measured,
an allowance at ``mde_95`` false-fails 5-11% (the intervals run a little short of nominal and the
deltas are skewed), so the shipped suites' allowances are 1.2x their measured ``mde_95``; "det
mde_95" shows what that headroom costs. The table says PASS or FAIL per metric.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals._gate import _interval, paired_deltas, power  # noqa: E402 - after sys.path
from evals._results import CaseResult, MetricVerdict, RunResult, TargetInfo  # noqa: E402
from evals._stats import delta_sd  # noqa: E402
from evals._suite import MetricSpec, Suite, parse_suite  # noqa: E402

NEEDS_ENGINE = True
SHIPPED = "shipped"
# Bump when a variant's definition changes: stored scores of an older definition are not reused.
VARIANTS_REVISION = 2
TARGET_FALSE_FAIL = 0.05
TARGET_DETECTION = 0.95
TARGET_COVERAGE_POINTS = 0.02
MULTIPLES = (0.5, 1.0, 2.0)

Scores = dict[str, dict[str, float | None]]  # case id -> metric id -> score


# --- the variants ---------------------------------------------------------------------------


def _whitespace(text: str) -> str:
    """One sentence a line (same words, other tokens)."""
    out = re.sub(r"([.!?:]) +(?=\S)", r"\1\n", text)
    return out if out != text else text + "\n"


SYNONYMS = (
    (r"\bAnswer using\b", "Respond using"),
    (r"\bReply with only\b", "Respond with just"),
    (r"\bReply with\b", "Respond with"),
    (r"\bExtract data from\b", "Pull the data out of"),
    (r"\bSummarise\b", "Summarize"),
    (r"\bKeep only\b", "Keep just"),
    (r"\bmain points\b", "key points"),
    (r"\bonly the sources\b", "just the sources"),
    (r"\bCite sources like\b", "Cite the sources as"),
    (r"\bUse null for\b", "Write null for"),
    (r"\bsay\b", "reply"),
)


def _synonyms(text: str) -> str:
    out = text
    for pattern, repl in SYNONYMS:
        out = re.sub(pattern, repl, out)
    return out if out != text else "Instructions: " + text


def _polite(text: str) -> str:
    first, rest = text[:1], text[1:]
    return "Please " + (first.lower() if not rest.startswith(" ") else first) + rest


REWORDINGS: dict[str, Callable[[str], str]] = {
    "whitespace": _whitespace,
    "synonyms": _synonyms,
    "polite": _polite,
}


# Degraded variants: sampling parameters that break answers. Set in the template, and in the
# suite's ``target.params`` too, which override the template's (a suite may cap max_tokens).
DEGRADED: dict[str, dict[str, Any]] = {
    "truncated": {"max_tokens": 2},
    "verbose": {"ignore_eos": True},
}


def _system_index(data: dict[str, Any]) -> int:
    """The message a rewording edits: the first system (or developer) one, else the first."""
    msgs = data.get("messages") or []
    if not msgs:
        raise ValueError(f"prompt {data.get('name')!r} has no messages to reword")
    roles = [m.get("role") for m in msgs]
    return next((i for i, r in enumerate(roles) if r in ("system", "developer")), 0)


def variant_text(shipped: str, variant: str) -> str:
    """The prompt file's YAML for ``variant`` (a rewording or a degradation of ``shipped``)."""
    data = yaml.safe_load(shipped)
    if variant in REWORDINGS:
        msg = data["messages"][_system_index(data)]
        msg["content"] = REWORDINGS[variant](str(msg["content"]))
    else:
        data.setdefault("params", {}).update(DEGRADED[variant])
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


def prompt_files(prompts: Path) -> dict[str, Path]:
    """Prompt name -> its file in ``prompts``."""
    out: dict[str, Path] = {}
    for p in sorted(prompts.glob("*.yaml")):
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and isinstance(data.get("name"), str) and data.get("messages"):
            out[data["name"]] = p
    return out


def build_variant_repo(dest: Path, prompt_names: Sequence[str], variants: Sequence[str]) -> None:
    """A git repo with a copy of ``prompts/``: the shipped files tagged ``shipped``, then one
    commit per variant (every named prompt changed), tagged with its name, then the shipped
    files again at HEAD, so the working tree serves the shipped prompts and every variant's
    version is in the history the gateway reads."""
    files = prompt_files(ROOT / "prompts")
    (dest / "prompts").mkdir(parents=True)
    for p in (ROOT / "prompts").glob("*.yaml"):
        shutil.copy(p, dest / "prompts" / p.name)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-qm", SHIPPED)
    _git(dest, "tag", SHIPPED)
    for v in variants:
        for name in prompt_names:
            shipped = files[name].read_text(encoding="utf-8")
            (dest / "prompts" / files[name].name).write_text(variant_text(shipped, v))
        _git(dest, "commit", "-qam", v)
        _git(dest, "tag", v)
    for name in prompt_names:
        shutil.copy(files[name], dest / "prompts" / files[name].name)
    _git(dest, "commit", "-qam", "back to shipped")


# --- step 1: generations -------------------------------------------------------------------


def _start_stack() -> tuple[str, list[Any]]:
    """The real engine behind the real gateway (the helper of bench/evals_throughput.py)."""
    from bench.evals_throughput import _engine_stack

    started = _engine_stack()
    if started is None:
        raise SystemExit(
            "evals_gate_power: answers are missing from the cache, no gateway answers and no "
            "engine is prepared (make engine); --offline resamples stored scores only"
        )
    return started


def fingerprint(
    suite_path: Path, suite: Suite, cases: Sequence[Any], variants: Sequence[str]
) -> str:
    """What the stored scores depend on: the suite file, its cases, the prompt, the variants."""
    h = hashlib.sha256()
    h.update(suite_path.read_bytes())
    for c in cases:
        h.update(json.dumps(c.model_dump(mode="json"), sort_keys=True, default=str).encode())
    if suite.target.prompt:
        prompt = prompt_files(ROOT / "prompts").get(suite.target.prompt)
        if prompt is not None:
            h.update(prompt.read_bytes())
    h.update(json.dumps([VARIANTS_REVISION, list(variants)]).encode())
    return h.hexdigest()[:16]


@dataclass
class Generator:
    """Runs the variants of a suite with the evals API. Answers come from the cache when they
    can; else from the gateway at ``url`` when one answers there, else from the real engine,
    started behind the real gateway on the first miss."""

    url: str
    stop: list[Any] = field(default_factory=list)
    # Nothing listens on port 9: a run whose answers are all cached never connects, and the
    # first miss raises, which finds the gateway (or starts one).
    active: str = "http://127.0.0.1:9/v1"
    connected: bool = False
    ctx: Any = None

    async def run(self, suite: Suite, cases: list[Any], ref: str) -> RunResult:
        from evals import DiskCache, RunContext, Side, TargetError, default_cache_dir, evaluate

        if self.ctx is None:
            self.ctx = RunContext(cache=DiskCache(default_cache_dir()))
        for attempt in (0, 1):
            os.environ["LLMOPS_EVAL_BASE_URL"] = self.active
            try:
                verdict = await evaluate(suite, self.ctx, Side(ref=ref), cases)
                return verdict.head
            except TargetError as e:
                if attempt or self.connected or "unreachable" not in str(e):
                    raise
                self.connect()
        raise AssertionError("unreachable")

    def connect(self) -> None:
        from bench.evals_throughput import _reachable

        self.connected = True
        if _reachable(self.url):
            print(f"answers missing from the cache: the gateway at {self.url}", file=sys.stderr)
            self.active = self.url
            return
        print(f"no gateway answers at {self.url}: starting the local engine", file=sys.stderr)
        self.active, self.stop = _start_stack()

    def close(self) -> None:
        for s in self.stop:
            s.stop()


def _with_params(suite: Suite, params: dict[str, Any]) -> Suite:
    if not params:
        return suite
    target = suite.target.model_copy(update={"params": {**suite.target.params, **params}})
    out = suite.model_copy(update={"target": target})
    out.path = suite.path
    return out


def generate_scores(
    suite_paths: Sequence[Path],
    limit: int | None,
    variants: Sequence[str],
    store: Path,
    offline: bool,
    regenerate: bool,
    url: str,
) -> dict[str, Any]:
    """Per suite: its YAML, the gated metrics' per-case scores per variant, run statistics."""
    from evals import load_dataset, load_suite

    stored: dict[str, Any] = {}
    if store.exists() and not regenerate:
        stored = json.loads(store.read_text(encoding="utf-8"))
    wanted = [(p, load_suite(p)) for p in suite_paths]
    out: dict[str, Any] = {}
    todo = []
    for path, suite in wanted:
        key = f"{suite.name}@{limit or 'all'}"
        cases = load_dataset(suite, limit)
        fp = fingerprint(path, suite, cases, variants)
        if offline:
            if key not in stored:
                raise SystemExit(f"--offline: no stored scores for {key} in {store}")
            # The suite file as it is now (allowances, gate), with the stored scores.
            out[suite.name] = {**stored[key], "suite_yaml": path.read_text(encoding="utf-8")}
            if stored[key].get("fingerprint") != fp:
                print(
                    f"--offline: {key}'s stored scores predate a change to its suite file, cases "
                    "or prompt; resampling them with the current suite file",
                    file=sys.stderr,
                )
            continue
        if stored.get(key, {}).get("fingerprint") == fp:
            out[suite.name] = stored[key]
        else:
            todo.append((key, path, suite, cases, fp))
    if not todo:
        return out
    prompts = sorted({s.target.prompt for _, _, s, _, _ in todo if s.target.prompt})
    missing = [s.name for _, _, s, _, _ in todo if not s.target.prompt]
    if missing:
        raise SystemExit(f"suite(s) {', '.join(missing)} have no target.prompt to reword")
    repo = Path(tempfile.mkdtemp(prefix="gate-power-"))
    build_variant_repo(repo, prompts, variants)
    gen = Generator(url)
    try:
        for key, path, suite, cases, fp in todo:
            # Prompts from the variants' repo at each tag, rendered here for every variant alike.
            target = suite.target.model_copy(update={"render": "local"})
            s = suite.model_copy(update={"repo": str(repo), "target": target})
            s.path = suite.path
            entry: dict[str, Any] = {
                "fingerprint": fp,
                "suite_yaml": path.read_text(encoding="utf-8"),
                "suite_path": str(path),
                "n": len(cases),
                "variants": {},
            }
            for ref in (SHIPPED, *variants):
                t0 = time.perf_counter()
                sv = _with_params(s, DEGRADED.get(ref, {}))
                run = asyncio.run(gen.run(sv, cases, ref))
                if run.generation_errors:  # failures are not cached: only they go out again
                    run = asyncio.run(gen.run(sv, cases, ref))
                took = time.perf_counter() - t0
                entry["variants"][ref] = {
                    "prompt_version": run.target.version,
                    "scores": {c.case_id: dict(c.scores) for c in run.cases},
                    "means": run.means,
                    "generation_errors": run.generation_errors,
                    "cache_misses": run.cache_misses,
                    "wall_s": round(took, 1),
                }
                print(
                    f"{suite.name} {ref:10s} {len(cases)} cases in {took:6.1f} s "
                    f"({run.cache_misses} generated, {run.generation_errors} errors) "
                    + " ".join(f"{k}={v:.3g}" for k, v in run.means.items() if v is not None),
                    file=sys.stderr,
                    flush=True,
                )
            stored[key] = entry
            out[suite.name] = entry
            store.parent.mkdir(parents=True, exist_ok=True)
            store.write_text(json.dumps(stored, indent=1), encoding="utf-8")
    finally:
        gen.close()
        shutil.rmtree(repo, ignore_errors=True)
    return out


# --- step 2: resampling --------------------------------------------------------------------


def _run(suite: Suite, label: str, scores: Scores) -> RunResult:
    cases = [CaseResult(case_id=k, repeats=[], scores=dict(v)) for k, v in scores.items()]
    return RunResult(suite=suite.name, target=TargetInfo(label=label), cases=cases)


def pool_deltas(suite: Suite, m: MetricSpec, base: Scores, head: Scores) -> np.ndarray:
    """head - base per base case, missing scores imputed as the gate does."""
    deltas, _ = paired_deltas(m, _run(suite, "base", base), _run(suite, "head", head))
    return np.array([deltas[k] for k in base], dtype=float)


def gate_reading(suite: Suite, m: MetricSpec, deltas: np.ndarray) -> tuple[bool, float, float]:
    """(fails, ci_low, ci_high) of the gate on these paired deltas: the gate's interval code,
    its confidence, resamples, seed and inconclusive policy; ``inconclusive`` counts as a fail
    whatever the policy (the default policy fails it)."""
    v = MetricVerdict(
        metric=m.id,
        type=m.type,
        higher_is_better=m.higher_is_better,
        max_regression=m.max_regression,
    )
    d = {str(i): float(x) for i, x in enumerate(deltas)}
    power(suite, m, v, delta_sd(deltas), len(d))
    _interval(suite, m, v, d)
    lo = v.ci_low if v.ci_low is not None else math.nan
    hi = v.ci_high if v.ci_high is not None else math.nan
    return v.status != "pass", lo, hi


@dataclass
class Setup:
    """One resampling setup: which degraded share per rewording, what drop was aimed at."""

    name: str
    shares: list[float]  # per rewording, 0 for the no-op
    target_drop: float | None = None  # oriented, raw scale
    achieved_drop: float | None = None  # mean over rewordings
    capped: bool = False
    null: bool = True  # the no-ops' mean change set to 0 (random signs), see ``replicate``


@dataclass
class SetupResult:
    setup: Setup
    reps: int
    fail_rate: float
    coverage: float

    def as_dict(self) -> dict[str, Any]:
        s = self.setup
        return {
            "setup": s.name,
            "target_drop": s.target_drop,
            "achieved_drop": s.achieved_drop,
            "capped": s.capped,
            "shares": s.shares,
            "reps": self.reps,
            "fail_rate": self.fail_rate,
            "coverage": self.coverage,
        }


def replicate(
    suite: Suite,
    m: MetricSpec,
    noops: Sequence[np.ndarray],
    degraded: np.ndarray | None,
    setup: Setup,
    reps: int,
    rng: np.random.Generator,
) -> SetupResult:
    """``reps`` bootstrap replications of a whole suite run through the gate.

    With ``setup.null`` each no-op delta gets a random sign: the case-by-case spread of a
    harmless edit stays, its mean change becomes exactly 0 (a rewording that moves a metric on
    this small model is a real change, and the gate is right to see it; the false-fail target is
    about edits that change nothing)."""
    n = len(noops[0])
    fails = covered = 0
    for i in range(reps):
        r = i % len(noops)
        share = setup.shares[r]
        idx = rng.integers(0, n, n)
        d = noops[r][idx]
        true = float(noops[r].mean())
        if setup.null:
            d = d * rng.choice((-1.0, 1.0), n)
            true = 0.0
        if share > 0 and degraded is not None:
            swap = rng.random(n) < share
            d = np.where(swap, degraded[idx], d)
            true = (1.0 - share) * true + share * float(degraded.mean())
        failed, lo, hi = gate_reading(suite, m, d)
        fails += failed
        tol = 1e-12 * max(1.0, abs(true))
        covered += bool(lo - tol <= true <= hi + tol)
    return SetupResult(setup, reps, fails / reps, covered / reps)


def _setup_for(name: str, drop: float, gap: float, rewordings: int) -> Setup:
    """The share of swapped cases whose expected mean drop is ``drop``, given the degraded
    variant's mean gap below the base (the no-ops around them change nothing on average)."""
    share = min(1.0, drop / gap)
    return Setup(name, [share] * rewordings, drop, share * gap, drop > gap)


def metric_power(
    suite: Suite,
    m: MetricSpec,
    noops: Sequence[np.ndarray],
    degraded: dict[str, np.ndarray],
    reps: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """False fails on no-ops (mean change 0) and on the rewordings as they are, detection at
    0.5x/1x/2x the allowance and at the gate's own ``mde_95``, coverage."""
    o = 1.0 if m.higher_is_better else -1.0
    n = len(noops[0])
    mdes: dict[str, list[float]] = {"mde_80": [], "mde_95": []}
    sds = [delta_sd(d) for d in noops]
    for sd in sds:
        v = MetricVerdict(metric=m.id, type=m.type, max_regression=m.max_regression)
        power(suite, m, v, sd, n)
        for k in mdes:
            x = getattr(v, k)
            mdes[k].append(x if x is not None else math.nan)
    mde_80, mde_95 = (float(np.mean(mdes[k])) for k in ("mde_80", "mde_95"))
    # The degraded variant that lowers this metric most (oriented) below the base.
    best, best_gap = None, 0.0
    for name, d in degraded.items():
        gap = float(-o * d.mean())
        if gap > best_gap:
            best, best_gap = name, gap
    setups = [Setup("noop", [0.0] * len(noops)), Setup("as_is", [0.0] * len(noops), null=False)]
    if best is not None:
        for k in MULTIPLES:
            setups.append(_setup_for(f"{k:g}x", k * m.max_regression, best_gap, len(noops)))
        if mde_95 > 0 and math.isfinite(mde_95):
            setups.append(_setup_for("mde_95", mde_95, best_gap, len(noops)))
    results = [
        replicate(suite, m, noops, degraded[best] if best else None, s, reps, rng) for s in setups
    ]
    by = {r.setup.name: r for r in results}
    coverage = float(np.mean([r.coverage for r in results]))
    nominal = suite.gate.confidence
    out: dict[str, Any] = {
        "suite": suite.name,
        "metric": m.id,
        "n": n,
        "max_regression": m.max_regression,
        "delta_sd": float(np.mean(sds)),  # what a suite's ``delta_sd`` states
        "mde_80": mde_80,
        "mde_95": mde_95,
        "mde_95_per_rewording": mdes["mde_95"],
        "noop_delta": float(np.mean([d.mean() for d in noops])),
        "noop_delta_per_rewording": [float(d.mean()) for d in noops],
        "degraded": best,
        "degraded_gap": best_gap if best else None,
        "false_fail": by["noop"].fail_rate,
        "false_fail_as_is": by["as_is"].fail_rate,
        "detection": {k: by[k].fail_rate for k in by if k not in ("noop", "as_is")},
        "coverage": coverage,
        "coverage_min": min(r.coverage for r in results),
        "nominal": nominal,
        "setups": [r.as_dict() for r in results],
    }
    checks = {"false_fail": out["false_fail"] <= TARGET_FALSE_FAIL}
    # Every case scoring alike on every variant leaves zero-width intervals: nothing to cover.
    if max(sds) > 0 or any(float(np.abs(d).max(initial=0.0)) > 0 for d in degraded.values()):
        checks["coverage"] = abs(coverage - nominal) <= TARGET_COVERAGE_POINTS + 1e-9
    if "1x" in by and not by["1x"].setup.capped:
        checks["detection_1x"] = by["1x"].fail_rate >= TARGET_DETECTION
    out["checks"] = checks
    out["pass"] = all(checks.values())
    return out


def suite_from_entry(entry: dict[str, Any]) -> Suite:
    path = Path(entry.get("suite_path") or "suite.yaml")
    return parse_suite(entry["suite_yaml"], path, str(path))


def resample_suite(
    suite: Suite,
    variants: dict[str, Scores],
    rewordings: Sequence[str],
    degraded: Sequence[str],
    reps: int,
    seed: int,
    bootstrap_samples: int | None = None,
) -> list[dict[str, Any]]:
    """Every gated metric of ``suite``: base = ``variants[SHIPPED]``, no-ops = ``rewordings``."""
    if bootstrap_samples:
        suite = suite.model_copy(
            update={"gate": suite.gate.model_copy(update={"bootstrap_samples": bootstrap_samples})}
        )
    base = variants[SHIPPED]
    rows = []
    for m in suite.metrics:
        if not m.max_regression or not m.gated:
            continue
        rng = np.random.default_rng([seed, int(hashlib.sha256(m.id.encode()).hexdigest()[:8], 16)])
        noops = [pool_deltas(suite, m, base, variants[r]) for r in rewordings]
        deg = {g: pool_deltas(suite, m, base, variants[g]) for g in degraded}
        rows.append(metric_power(suite, m, noops, deg, reps, rng))
    return rows


# --- the table -----------------------------------------------------------------------------

COLUMNS = (
    "suite",
    "metric",
    "n",
    "max_reg",
    "delta_sd",
    "mde_80",
    "mde_95",
    "reword Δ",
    "false fail",
    "as is",
    "det 0.5x",
    "det 1x",
    "det 2x",
    "det mde_95",
    "coverage",
    "planted",
    "result",
)


def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def table_rows(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in rows:
        setups = {s["setup"]: s for s in r["setups"]}

        def det(name: str, setups: dict[str, Any] = setups) -> str:
            s = setups.get(name)
            if s is None:
                return "n/a"
            return f"{s['fail_rate']:.3f}" + ("*" if s["capped"] else "")

        failed = [k for k, ok in r["checks"].items() if not ok]
        out.append(
            [
                r["suite"],
                r["metric"],
                str(r["n"]),
                _num(r["max_regression"]),
                _num(r["delta_sd"]),
                _num(r["mde_80"]),
                _num(r["mde_95"]),
                _num(r["noop_delta"]),
                f"{r['false_fail']:.3f}",
                f"{r['false_fail_as_is']:.3f}",
                det("0.5x"),
                det("1x"),
                det("2x"),
                det("mde_95"),
                f"{r['coverage']:.3f} / {r['nominal']:.2f}",
                r["degraded"] or "none",
                "PASS" if r["pass"] else "FAIL (" + ", ".join(failed) + ")",
            ]
        )
    return out


def render_text(rows: Sequence[dict[str, Any]]) -> str:
    body = [list(COLUMNS), *table_rows(rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(rows)]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------


def _suite_paths(names: Sequence[str]) -> list[Path]:
    if not names:
        return sorted((ROOT / "evals" / "suites").glob("*.yaml"))
    out = []
    for name in names:
        p = Path(name)
        if not p.suffix:
            p = ROOT / "evals" / "suites" / f"{name}.yaml"
        if not p.is_file():
            raise SystemExit(f"no suite file {p}")
        out.append(p.resolve())
    return out


def _names(text: str, known: dict[str, Any], what: str) -> list[str]:
    names = [x for x in text.split(",") if x]
    bad = [x for x in names if x not in known]
    if bad or not names:
        raise SystemExit(f"unknown {what} {', '.join(bad) or '(none)'}; known: {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> int:
    from common import llmops_home

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--suites",
        nargs="+",
        default=[],
        help="suite names or files (default: evals/suites/*.yaml)",
    )
    ap.add_argument("--limit", type=int, default=None, help="first N cases of each suite")
    ap.add_argument(
        "--reps",
        type=int,
        default=500,
        help="replications per setup (each is one BCa interval, about 20 ms at n=100 here)",
    )
    ap.add_argument(
        "--bootstrap-samples",
        type=int,
        default=None,
        help="resamples per interval (default: the suite's gate.bootstrap_samples)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rewordings", default=",".join(REWORDINGS))
    ap.add_argument("--degraded", default=",".join(DEGRADED))
    ap.add_argument(
        "--scores",
        default=str(llmops_home() / "bench" / "evals_gate_power.json"),
        help="per-case scores, reused while suite, cases, prompts and variants are unchanged",
    )
    ap.add_argument(
        "--url",
        default=os.environ.get("LLMOPS_EVAL_BASE_URL", "http://127.0.0.1:8000/v1"),
        help="a gateway to use when one answers there (else the engine is started here)",
    )
    ap.add_argument("--offline", action="store_true", help="only the stored scores, no engine")
    ap.add_argument(
        "--regenerate",
        action="store_true",
        help=(
            "ignore the stored scores (use it after an engine change: they are keyed by suite, "
            "cases, prompt and variants, not by the engine; clear the evals cache too)"
        ),
    )
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "evals_gate_power.json"))
    args = ap.parse_args(argv)
    rewordings = _names(args.rewordings, REWORDINGS, "rewording")
    degraded = _names(args.degraded, DEGRADED, "degraded variant")
    if args.reps < 1:
        ap.error("--reps must be at least 1")

    t0 = time.perf_counter()
    entries = generate_scores(
        _suite_paths(args.suites),
        args.limit,
        [*rewordings, *degraded],
        Path(args.scores),
        args.offline,
        args.regenerate,
        args.url,
    )
    gen_s = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    t1 = time.perf_counter()
    settings = []
    for name, entry in entries.items():
        suite = suite_from_entry(entry)
        variants = {k: v["scores"] for k, v in entry["variants"].items()}
        b = args.bootstrap_samples or suite.gate.bootstrap_samples
        own = suite.gate.bootstrap_samples
        settings.append(
            f"{name}: n={entry['n']}, confidence {suite.gate.confidence}, {b} bootstrap "
            f"resamples{f' (REDUCED: the suite says {own})' if b != own else ''}, "
            f"inconclusive counted as fail (suite policy: {suite.gate.inconclusive})"
        )
        rows += resample_suite(
            suite, variants, rewordings, degraded, args.reps, args.seed, args.bootstrap_samples
        )
    resample_s = time.perf_counter() - t1
    print(render_text(rows))
    print(
        f"\n{args.reps} replications per setup; "
        + "; ".join(settings)
        + f"\nrewordings (no-ops): {', '.join(rewordings)}; degraded: {', '.join(degraded)}; "
        "* = the drop is out of reach with every case swapped, planted at its largest."
        "\nfalse fail: no-ops with their mean change set to 0 (random signs); as is: the "
        "rewordings with the change they really make on this model (reword Δ)"
        f"\ntargets: false fail <= {TARGET_FALSE_FAIL:.0%}, detection at 1x (the allowance) >= "
        f"{TARGET_DETECTION:.0%}, coverage within {TARGET_COVERAGE_POINTS * 100:.0f} points"
        f"\ngenerations {gen_s:.1f} s, resampling {resample_s:.1f} s"
    )
    if args.markdown:
        print("\n" + render_markdown(rows))
    result = {
        "reps": args.reps,
        "seed": args.seed,
        "bootstrap_samples": args.bootstrap_samples,
        "rewordings": rewordings,
        "degraded": degraded,
        "generation_s": round(gen_s, 1),
        "resample_s": round(resample_s, 1),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "runs": {
            name: {
                k: {x: y for x, y in v.items() if x != "scores"}
                for k, v in entry["variants"].items()
            }
            for name, entry in entries.items()
        },
        "rows": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
