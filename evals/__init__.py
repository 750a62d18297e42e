"""Evals that gate promotion: suites in git, paired comparisons with bootstrap CIs, reports.

Public face; the modules behind it are private. Typical use::

    suite = load_suite("evals/suites/summarise.yaml")
    ctx = RunContext(cache=DiskCache(default_cache_dir()))
    verdict = asyncio.run(compare(suite, ctx, Side(ref="main"), Side(ref="HEAD")))
    write_reports(Path("out"), [verdict])

Models are reached only over HTTP, through the gateway, with the official ``openai`` SDK.
"""

from evals._api import Side, compare, evaluate
from evals._cache import DiskCache, default_cache_dir
from evals._dataset import Case, load_dataset
from evals._errors import EvalError, PromptMissing, SuiteError, TargetError
from evals._gate import gate_compare, gate_run
from evals._metrics import mrr, ndcg_at_k, recall_at_k
from evals._model_gate import ModelGateRecord, read_model_gate, write_model_gate
from evals._reports import write_error_reports, write_reports
from evals._results import MetricVerdict, RunResult, SuiteVerdict
from evals._runner import RunContext, run_suite
from evals._stats import (
    bootstrap_diff_ci,
    bootstrap_mean_ci,
    cases_needed,
    classify,
    min_detectable,
)
from evals._suite import MetricSpec, Suite, load_suite

__all__ = [
    "Case",
    "DiskCache",
    "EvalError",
    "MetricSpec",
    "MetricVerdict",
    "ModelGateRecord",
    "PromptMissing",
    "RunContext",
    "RunResult",
    "Side",
    "Suite",
    "SuiteError",
    "SuiteVerdict",
    "TargetError",
    "bootstrap_diff_ci",
    "bootstrap_mean_ci",
    "cases_needed",
    "classify",
    "compare",
    "default_cache_dir",
    "evaluate",
    "gate_compare",
    "gate_run",
    "load_dataset",
    "load_suite",
    "min_detectable",
    "mrr",
    "ndcg_at_k",
    "read_model_gate",
    "recall_at_k",
    "run_suite",
    "write_error_reports",
    "write_model_gate",
    "write_reports",
]
