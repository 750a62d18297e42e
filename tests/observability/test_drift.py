"""Drift: the MMD permutation test on synthetic shifted/unshifted samples (false-alarm rate and
power printed), on real MiniLM embeddings of two topics, and end to end: the gateway samples
live queries into the store (embedding in its background thread), ``llmops monitor drift``
tests them against an eval dataset, and the result shows up as gauges (gateway /metrics and a
textfile)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from monitor._stats import mmd_permutation_test
from monitor.cli import app as monitor_app
from observability import DriftStore, load_embedder
from tests.observability.conftest import ADMIN_KEY

COUNTRIES = [
    "France",
    "Peru",
    "Japan",
    "Kenya",
    "Norway",
    "Chile",
    "Egypt",
    "India",
    "Canada",
    "Brazil",
    "Spain",
    "Ghana",
    "Nepal",
    "Cuba",
    "Italy",
    "Mexico",
    "Poland",
    "Laos",
]
GEO = [
    "What is the capital of {}?",
    "How many people live in {}?",
    "What language is spoken in {}?",
    "Which currency does {} use?",
    "What is the largest city of {}?",
]
CODE = [
    "How do I reverse a list in {}?",
    "Why does my {} program segfault?",
    "How do I read a file line by line in {}?",
    "What is the {} syntax for a lambda?",
    "How do I install a package for {}?",
]
LANGS = ["Python", "Rust", "Go", "C++", "Java", "Haskell", "Ruby", "Kotlin", "Swift", "Lua"]


def geo(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(GEO).format(rng.choice(COUNTRIES)) for _ in range(n)]


def code(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(CODE).format(rng.choice(LANGS)) for _ in range(n)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_false_alarm_rate_and_power_synthetic() -> None:
    """Unit-norm 64-d 'embeddings'; the shift moves 10% of the mass to a new direction."""
    rng = np.random.default_rng(7)
    alpha, trials, n = 0.05, 40, 80
    base = rng.normal(size=64)

    def draw(k: int, shifted: bool) -> np.ndarray:
        x = rng.normal(size=(k, 64)) + 2.0 * base
        if shifted:  # a new topic appears in 30% of the queries
            mask = rng.random(k) < 0.3
            x[mask, :8] += 3.0
        return _unit(x)

    false_alarms = sum(
        mmd_permutation_test(draw(n, False), draw(n, False), n_permutations=200, seed=i).p_value
        < alpha
        for i in range(trials)
    )
    hits = sum(
        mmd_permutation_test(draw(n, False), draw(n, True), n_permutations=200, seed=i).p_value
        < alpha
        for i in range(trials)
    )
    far, power = false_alarms / trials, hits / trials
    print(f"\nsynthetic, n={n}/side, alpha={alpha}: false-alarm rate {far:.2f}, power {power:.2f}")
    assert far <= 0.15
    assert power >= 0.8


@pytest.fixture(scope="module")
def embed() -> Any:
    return load_embedder()


def test_false_alarm_rate_and_power_real_embeddings(embed: Any) -> None:
    rng = random.Random(3)
    alpha, trials, n = 0.05, 24, 60
    pool_geo = embed(sorted(set(geo(rng, 400))))
    pool_code = embed(sorted(set(code(rng, 400))))
    nrng = np.random.default_rng(0)

    def pick(pool: np.ndarray, k: int) -> np.ndarray:
        return pool[nrng.integers(0, len(pool), size=k)]

    fa = hits = 0
    for i in range(trials):
        ref = pick(pool_geo, n)
        same = pick(pool_geo, n)
        mixed = np.vstack([pick(pool_geo, n - n // 4), pick(pool_code, n // 4)])
        fa += mmd_permutation_test(ref, same, n_permutations=200, seed=i).p_value < alpha
        hits += mmd_permutation_test(ref, mixed, n_permutations=200, seed=i).p_value < alpha
    print(
        f"\nMiniLM, n={n}/side, 25% new topic: false-alarm rate {fa / trials:.2f}, "
        f"power {hits / trials:.2f}"
    )
    assert fa / trials <= 0.3  # expected ~alpha; 24 trials on a shared finite pool are noisy
    assert hits / trials >= 0.75


def test_gateway_samples_and_cli_detects_drift(
    start_gateway: Any, tmp_path: Path, embed: Any
) -> None:
    store_dir = tmp_path / "drift"
    gw, _ = start_gateway(
        {
            "tracing": {"enabled": False},
            "drift": {"enabled": True, "sample_rate": 1.0, "dir": str(store_dir)},
        },
        embedder=embed,
    )
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    rng = random.Random(11)
    live = [*code(rng, 45), "write to me at alice@example.com please"]
    for i, q in enumerate(live):
        if i % 5 == 4:  # the Responses API is sampled too, its query read from ``input``
            c.responses.create(model="chat", input=[{"role": "user", "content": q}])
        else:
            c.chat.completions.create(model="chat", messages=[{"role": "user", "content": q}])
    c.embeddings.create(model="emb", input="not sampled: embeddings route is off by default")
    obs = gw.gw.observability
    obs.flush()
    samples = DriftStore(store_dir).read()
    assert len(samples) == len(live)
    assert all(s.embedding is not None and s.embedding.shape == (384,) for s in samples)
    assert {s.model for s in samples} == {"chat"} and {s.route for s in samples} == {
        "chat",
        "responses",
    }
    assert "write to me at [REDACTED] please" in {s.text for s in samples}  # redacted at rest
    assert obs.drift.written == len(live) and obs.drift.dropped == 0

    ref_geo = tmp_path / "geo.jsonl"
    ref_geo.write_text(
        "\n".join(
            json.dumps({"id": str(i), "vars": {"question": q}}) for i, q in enumerate(geo(rng, 60))
        )
    )
    ref_code = tmp_path / "code.jsonl"
    ref_code.write_text(
        "\n".join(
            json.dumps({"id": str(i), "messages": [{"role": "user", "content": q}]})
            for i, q in enumerate(code(rng, 60))
        )
    )
    prom = tmp_path / "textfile" / "llmops_drift.prom"
    runner = CliRunner()
    out = {}
    for ref in (ref_geo, ref_code):
        res = runner.invoke(
            monitor_app,
            [
                "drift",
                "--reference",
                str(ref),
                "--store",
                str(store_dir),
                "--textfile",
                str(prom),
                "--json",
                "--window",
                "1h",
                "--min-samples",
                "20",
            ],
        )
        assert res.exit_code == 0, res.output
        out[ref.stem] = json.loads(res.stdout)
    print(
        f"\nlive=code questions: vs geo p={out['geo']['p_value']:.4f}, "
        f"vs code p={out['code']['p_value']:.4f}"
    )
    assert out["geo"]["detected"] is True and out["geo"]["p_value"] < 0.01
    assert out["code"]["detected"] is False
    assert out["geo"]["n_live"] == len(live)

    # the gauges: textfile and the gateway's own /metrics
    def gauges(text: str) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels["reference"]): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name.startswith("llmops_drift_") and "reference" in s.labels
        }

    for text in (prom.read_text(), gw.metrics()):
        g = gauges(text)
        assert g[("llmops_drift_detected", "geo")] == 1.0
        assert g[("llmops_drift_detected", "code")] == 0.0
        assert g[("llmops_drift_live_samples", "geo")] == len(live)
    assert gw.metric_value("llmops_drift_samples_total", outcome="written") == len(live)

    res = runner.invoke(
        monitor_app,
        ["drift", "--reference", str(ref_geo), "--store", str(store_dir), "--fail-on-drift"],
    )
    assert res.exit_code == 1 and "DRIFT" in res.output
    res = runner.invoke(
        monitor_app, ["drift", "--reference", str(ref_geo), "--store", str(tmp_path / "empty")]
    )
    assert res.exit_code == 3

    snap = tmp_path / "live.npz"
    res = runner.invoke(monitor_app, ["snapshot", "--out", str(snap), "--store", str(store_dir)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        monitor_app,
        [
            "drift",
            "--reference",
            str(snap),
            "--store",
            str(store_dir),
            "--json",
            "--min-samples",
            "20",
        ],
    )
    assert res.exit_code == 0 and json.loads(res.stdout)["p_value"] > 0.5  # same sample


def test_store_window_filters_and_prune(tmp_path: Path) -> None:
    st = DriftStore(tmp_path)
    now = 1_800_000_000.0
    st.append(
        [
            {"ts": now - 40 * 86400, "model": "a", "text": "old"},
            {"ts": now - 3600, "model": "a", "text": "recent", "embedding": np.ones(3)},
            {"ts": now - 60, "model": "b", "text": "other"},
        ]
    )
    assert [s.text for s in st.read(now - 7200, model="a")] == ["recent"]
    assert np.allclose(st.read(now - 7200, model="a")[0].embedding, 1.0)
    assert st.prune(30, now=now) == 1
    assert {s.text for s in st.read()} == {"recent", "other"}
