"""The drift job: live window vs reference, one two-sample test, results as gauges.

Results are written as JSON under ``<drift dir>/results/`` (the gateway's ``/metrics`` reads
them at scrape time) and, when asked, as a Prometheus textfile for node-exporter's textfile
collector (a Pushgateway is not needed).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor._reference import Reference
from monitor._stats import mmd_permutation_test
from observability import (
    DriftStore,
    Embed,
    drift_families,
    load_embedder,
    model_label,
    read_results,
)


class InsufficientData(Exception):
    """Too few live samples in the window for a meaningful test."""


@dataclass(frozen=True, slots=True)
class DriftReport:
    reference: str
    model: str | None
    prompt: str | None
    method: str
    statistic: float
    p_value: float
    alpha: float
    detected: bool
    n_live: int
    n_reference: int
    n_permutations: int
    bandwidth: float
    window_hours: float
    embedding_model: str
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:100]


def live_embeddings(
    store: DriftStore,
    since: float,
    *,
    model: str | None,
    prompt: str | None,
    embedding_model: str,
    embed: Embed | None,
    embed_loader: Any,
) -> tuple[np.ndarray, list[str]]:
    """Stored vectors of the window (same embedding model), texts embedded where missing."""
    samples = store.read(since, model=model, prompt=prompt)
    vecs: list[np.ndarray] = []
    texts: list[str] = []
    todo: list[str] = []
    for s in samples:
        if s.embedding is not None and s.embedding_model == embedding_model:
            vecs.append(s.embedding)
            texts.append(s.text or "")
        elif s.text:
            todo.append(s.text)
    if todo:
        fn = embed or embed_loader()
        vecs.extend(fn(todo))
        texts.extend(todo)
    if not vecs:
        return np.zeros((0, 0), dtype=np.float32), []
    return np.vstack(vecs).astype(np.float32), texts


def run_drift(
    reference: Reference,
    store: DriftStore,
    *,
    window_hours: float = 24.0,
    model: str | None = None,
    prompt: str | None = None,
    alpha: float = 0.01,
    n_permutations: int = 500,
    max_samples: int = 1000,
    min_samples: int = 30,
    embedding_model_path: str | None = None,
    embed: Embed | None = None,
    seed: int = 0,
    now: float | None = None,
) -> DriftReport:
    now = time.time() if now is None else now
    label = reference.embedding_model or model_label(embedding_model_path)
    cache: dict[str, Embed] = {}

    def loader() -> Embed:
        if "e" not in cache:
            cache["e"] = embed or load_embedder(embedding_model_path)
        return cache["e"]

    live, _ = live_embeddings(
        store,
        now - window_hours * 3600,
        model=model,
        prompt=prompt,
        embedding_model=label,
        embed=embed,
        embed_loader=loader,
    )
    if len(live) < min_samples:
        raise InsufficientData(
            f"{len(live)} live samples in the last {window_hours:g} h (need {min_samples})"
        )
    ref = reference.embeddings if reference.embeddings is not None else loader()(reference.texts)
    res = mmd_permutation_test(
        ref, live, n_permutations=n_permutations, max_samples=max_samples, seed=seed
    )
    return DriftReport(
        reference=reference.name,
        model=model,
        prompt=prompt,
        method="mmd-rbf-permutation",
        statistic=res.statistic,
        p_value=res.p_value,
        alpha=alpha,
        detected=res.p_value < alpha,
        n_live=res.n_live,
        n_reference=res.n_reference,
        n_permutations=res.n_permutations,
        bandwidth=res.bandwidth,
        window_hours=window_hours,
        embedding_model=label,
        timestamp=now,
    )


def save_result(store: DriftStore, report: DriftReport) -> Path:
    name = _slug(f"{report.reference}--{report.model or 'all'}--{report.prompt or 'all'}")
    path = store.results_dir / f"{name}.json"
    _atomic_write(path, orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    return path


def write_textfile(store: DriftStore, path: Path) -> None:
    """All saved results as one ``.prom`` file (node-exporter textfile collector format)."""
    from prometheus_client import CollectorRegistry, generate_latest

    results = read_results(store.results_dir)

    class _C:
        def collect(self) -> Any:
            return drift_families(results)

        def describe(self) -> list[Any]:
            return []

    reg = CollectorRegistry()
    reg.register(_C())  # type: ignore[arg-type]
    _atomic_write(path, generate_latest(reg))
