"""Push eval runs to Langfuse as dataset runs with scores, when ``LANGFUSE_*`` is configured.

Each suite becomes a Langfuse dataset (``llmops-evals/<suite>``), each case an item (upserted by a
stable id), and each side of a run (``base``/``head``/``run``) an experiment run over those items
whose per-item scores are the metric values already computed here (the SDK's ``run_experiment``
with a task that returns the stored answer: no model call is repeated). A push never changes the
verdict: failures are reported as a note.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from evals._results import RunResult, SuiteVerdict
from evals._suite import Suite


def configured() -> bool:
    return bool(os.environ.get("LANGFUSE_PUBLIC_KEY") and os.environ.get("LANGFUSE_SECRET_KEY"))


def dataset_name(suite: Suite) -> str:
    return f"llmops-evals/{suite.name}"


def item_id(suite: Suite, case_id: str) -> str:
    return "llmops-" + hashlib.sha256(f"{suite.name}\x00{case_id}".encode()).hexdigest()[:24]


def push_if_configured(suite: Suite, verdict: SuiteVerdict, client: Any = None) -> str | None:
    """Push when configured (or when ``client`` is given); return a note for the console."""
    if client is None and not configured():
        return None
    try:
        if client is None:
            from langfuse import Langfuse

            client = Langfuse()
        names = push(suite, verdict, client)
        client.flush()
    except Exception as e:  # observability must not decide the gate
        return f"langfuse push failed (verdict unaffected): {type(e).__name__}: {e}"
    return f"langfuse: pushed runs {', '.join(names)} to dataset {dataset_name(suite)}"


def push(suite: Suite, verdict: SuiteVerdict, client: Any) -> list[str]:
    from langfuse import Evaluation

    ds = dataset_name(suite)
    client.create_dataset(
        name=ds,
        description=suite.description or None,
        metadata={"suite": suite.name, "source": "llmops eval"},
    )
    items = []
    for c in verdict.head.cases:
        items.append(
            client.create_dataset_item(
                dataset_name=ds,
                id=item_id(suite, c.case_id),
                input=c.input or {"case": c.case_id},
                expected_output=c.references or None,
                metadata={"case_id": c.case_id},
            )
        )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    names = []
    for run in (r for r in (verdict.base, verdict.head) if r is not None):
        by_item = {item_id(suite, c.case_id): c for c in run.cases}
        t = run.target
        run_name = f"{t.label} {t.prompt or ''}@{t.version or '-'} {t.model} {stamp}"

        def task(*, item: Any, _by: dict[str, Any] = by_item, **kw: Any) -> dict[str, Any]:
            c = _by[item.id]
            g = c.repeats[0].generation
            return {"case_id": c.case_id, "answer": g.text, "error": g.error}

        def scores(*, output: Any, _run: RunResult = run, **kw: Any) -> list[Any]:
            c = next(x for x in _run.cases if x.case_id == output["case_id"])
            return [
                Evaluation(name=k, value=float(v)) for k, v in c.scores.items() if v is not None
            ]

        client.run_experiment(
            name=f"llmops-evals/{suite.name}",
            run_name=run_name,
            data=items,
            task=task,
            evaluators=[scores],
            max_concurrency=8,
            metadata={
                "label": t.label,
                "prompt": t.prompt or "",
                "version": t.version or "",
                "commit": t.commit or "",
                "model": t.model or "",
                "verdict": "pass" if verdict.passed else "fail",
            },
        )
        names.append(run_name)
    return names
