"""Drift results as Prometheus gauges, shared by the gateway's ``/metrics`` and the textfile
``llmops monitor drift`` writes (for node-exporter's textfile collector).

A result is the JSON ``monitor`` saves under ``<drift dir>/results/<reference>.json``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

LABELS = ["reference", "model"]

# (metric name, help, result key)
GAUGES = (
    (
        "llmops_drift_detected",
        "1 when the last drift test rejected 'same distribution'",
        "detected",
    ),
    ("llmops_drift_p_value", "Permutation p-value of the last drift test", "p_value"),
    (
        "llmops_drift_statistic",
        "Two-sample statistic (MMD^2, RBF kernel) of the last test",
        "statistic",
    ),
    ("llmops_drift_live_samples", "Live queries in the tested window", "n_live"),
    ("llmops_drift_reference_samples", "Reference queries in the test", "n_reference"),
    (
        "llmops_drift_last_run_timestamp_seconds",
        "When the last drift test ran (unix time)",
        "timestamp",
    ),
)


def read_results(results_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not results_dir.is_dir():
        return out
    for p in sorted(results_dir.glob("*.json")):
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            r = orjson.loads(p.read_bytes())
            if isinstance(r, dict) and "reference" in r:
                out.append(r)
    return out


def drift_families(results: Iterable[dict[str, Any]]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    results = list(results)
    if not results:
        return
    for name, help_, key in GAUGES:
        g = GaugeMetricFamily(name, help_, labels=LABELS)
        for r in results:
            v = r.get(key)
            if v is None:
                continue
            g.add_metric([str(r["reference"]), str(r.get("model") or "")], float(v))
        yield g
