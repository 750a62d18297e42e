"""``llmops monitor``: drift between live traffic and what the evals covered, online quality.

Heavy imports (numpy work, sentence-transformers, ragas, langfuse) happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from common import duration_s, typer_settings

app = typer.Typer(
    help="Monitor live traffic: drift against eval inputs, online quality scores.",
    no_args_is_help=True,
    **typer_settings(),
)


def hours(text: str) -> float:
    """'90m', '24h', '7d', '3600s' or a bare number of hours."""
    try:
        return duration_s(text, bare="h") / 3600
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def _store(store_dir: Path | None):  # type: ignore[no-untyped-def]
    from observability import DriftSamplingConfig, DriftStore

    return DriftStore(store_dir or DriftSamplingConfig().store_dir())


@app.command()
def drift(
    reference: str = typer.Option(
        ...,
        "--reference",
        "-r",
        help="Eval suite (.yaml), dataset (.jsonl) or saved sample (.npz).",
    ),
    window: str = typer.Option("24h", help="Live window to test (e.g. 6h, 7d)."),
    model: str | None = typer.Option(None, help="Only live traffic of this model."),
    prompt: str | None = typer.Option(None, help="Only live traffic of this prompt."),
    alpha: float = typer.Option(0.01, help="Significance level: p < alpha means drift."),
    permutations: int = typer.Option(500, min=50),
    max_samples: int = typer.Option(1000, min=10, help="Subsample each side to this many."),
    min_samples: int = typer.Option(30, min=2),
    store_dir: Path | None = typer.Option(None, "--store", help="Default: $LLMOPS_HOME/drift."),
    textfile: Path | None = typer.Option(
        None, help="Also write all results as a .prom file (node-exporter textfile collector)."
    ),
    embedding_model: str | None = typer.Option(None, help="Default: all-MiniLM-L6-v2."),
    fail_on_drift: bool = typer.Option(False, help="Exit 1 when drift is detected."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Two-sample test (MMD, permutation p-value) of live queries against a reference."""
    from monitor._drift import InsufficientData, run_drift, save_result, write_textfile
    from monitor._reference import load_reference

    store = _store(store_dir)
    try:
        ref = load_reference(reference)
        report = run_drift(
            ref,
            store,
            window_hours=hours(window),
            model=model,
            prompt=prompt,
            alpha=alpha,
            n_permutations=permutations,
            max_samples=max_samples,
            min_samples=min_samples,
            embedding_model_path=embedding_model,
        )
    except InsufficientData as e:
        typer.echo(f"not enough live data: {e}", err=True)
        raise typer.Exit(3) from None
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    path = save_result(store, report)
    if textfile is not None:
        write_textfile(store, textfile)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        verdict = "DRIFT" if report.detected else "no drift"
        typer.echo(
            f"{verdict}: MMD^2={report.statistic:.5f} p={report.p_value:.4f} (alpha {alpha}) "
            f"live={report.n_live} reference={report.n_reference} [{ref.name}] -> {path}"
        )
    if fail_on_drift and report.detected:
        raise typer.Exit(1)


@app.command()
def snapshot(
    out: Path = typer.Option(..., "--out", "-o", help="File to write (.npz)."),
    window: str = typer.Option("7d"),
    model: str | None = typer.Option(None),
    prompt: str | None = typer.Option(None),
    store_dir: Path | None = typer.Option(None, "--store"),
    embedding_model: str | None = typer.Option(None),
) -> None:
    """Save the live window as a reference for later drift tests."""
    import time

    from monitor._drift import live_embeddings
    from monitor._reference import save_reference
    from observability import load_embedder, model_label

    label = model_label(embedding_model)
    emb, texts = live_embeddings(
        _store(store_dir),
        time.time() - hours(window) * 3600,
        model=model,
        prompt=prompt,
        embedding_model=label,
        embed=None,
        embed_loader=lambda: load_embedder(embedding_model),
    )
    if len(emb) == 0:
        typer.echo("no live samples in the window", err=True)
        raise typer.Exit(3)
    save_reference(out, emb, texts, label)
    typer.echo(f"saved {len(emb)} samples to {out}")


@app.command()
def quality(
    since: str = typer.Option("1h", help="Look at traces from this far back."),
    sample_rate: float = typer.Option(0.1, min=0.0, max=1.0, help="Fraction of traces scored."),
    limit: int = typer.Option(200, min=1, help="At most this many traces are read."),
    metrics: str = typer.Option("answer_relevancy", help="Comma-separated judged metrics."),
    judge_model: str = typer.Option(..., help="Model the judge uses (through the gateway)."),
    gateway_url: str = typer.Option("http://127.0.0.1:8000", envvar="LLMOPS_GATEWAY_URL"),
    api_key_env: str = typer.Option("LLMOPS_API_KEY", help="Env var holding the gateway key."),
    seed: int | None = typer.Option(None),
    dry_run: bool = typer.Option(False, help="Score but do not write scores to Langfuse."),
) -> None:
    """Score a sample of recent traced responses with judge metrics; write scores to Langfuse."""
    import asyncio
    import os

    from langfuse import Langfuse

    from monitor._quality import LangfuseTraces, RagasScorer, run_quality

    lf = Langfuse()
    scorer = RagasScorer(
        model=judge_model,
        base_url=gateway_url,
        api_key=os.environ.get(api_key_env) or "none",
        metrics=[m.strip() for m in metrics.split(",") if m.strip()],
    )
    summary = asyncio.run(
        run_quality(
            LangfuseTraces(lf),
            scorer,
            None if dry_run else lf,
            since_hours=hours(since),
            sample_rate=sample_rate,
            limit=limit,
            seed=seed,
        )
    )
    lf.flush()
    typer.echo(json.dumps(summary.to_dict(), indent=2))
