"""``llmops retrieval``: retrieval maintenance that needs judging (``tune``). It lives with the
evals because it scores with their metrics and intervals; the store options are retrieval's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from common import typer_settings
from retrieval.cli import (
    BackendOpt,
    ConfigOpt,
    EmbedUrlOpt,
    ModelOpt,
    ModelPathOpt,
    PathOpt,
    UrlOpt,
    config_from_options,
    quiet_model_loading,
)

app = typer.Typer(
    help="Tune how collections are searched, on judged queries.",
    no_args_is_help=True,
    **typer_settings(),
)


@app.command()
def tune(
    collection: Annotated[str, typer.Argument(help="Collection to tune.")],
    queries: Annotated[Path, typer.Option("--queries", help="BEIR queries.jsonl (_id, text).")],
    qrels: Annotated[
        Path, typer.Option("--qrels", help="BEIR qrels TSV: query-id, corpus-id, score.")
    ],
    folds: Annotated[int, typer.Option("--folds", min=2, max=20)] = 5,
    depth: Annotated[
        int,
        typer.Option(
            "--depth", min=10, max=1000, help="Chunk hits per query, collapsed to documents."
        ),
    ] = 100,
    id_field: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--id-field", help="Chunk metadata naming its document (default: file stem)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the table; record nothing.")
    ] = False,
    json_out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--json", help="Also write the measurements to this file."),
    ] = None,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    embed_url: EmbedUrlOpt = None,
) -> None:
    """Score every search mode (dense, BM25, RRF over k and weights, DBSF, convex) on judged
    queries, choose on cross-validated folds and record the choice in the collection."""
    from rich.markup import escape

    from common import cli_console
    from evals._retrieval_tune import (
        TuneError,
        choose,
        grid,
        load_judged,
        record,
        score_modes,
    )
    from retrieval import RetrievalError, Retriever, make_embedder

    console = cli_console()
    err = cli_console(stderr=True)
    cfg = config_from_options(config, backend, store_path, url, model, model_path, embed_url)
    cfg = cfg.model_copy(
        update={"search": cfg.search.model_copy(update={"mode": None, "prefetch_limit": depth})}
    )
    try:
        judged = load_judged(queries, qrels)
    except TuneError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    quiet_model_loading()
    # Every mode searches the same queries: the query cache holds them all, so each is
    # embedded once.
    size = max(cfg.embedder.query_cache_size, len(judged.queries))
    embedder = make_embedder(cfg.embedder.model_copy(update={"query_cache_size": size}))
    retriever = Retriever(cfg, embedder=embedder)
    try:
        with err.status(f"scoring {len(grid())} modes on {len(judged.queries)} queries"):
            scores = score_modes(retriever, collection, judged, candidates=grid(), depth=depth,
                                 id_field=id_field)  # fmt: skip
        if all(not s.ndcg.any() for s in scores):
            raise TuneError(
                f"no judged document was found in {collection!r} by any mode: do the qrels' "
                "corpus ids match the documents' file names (or --id-field)?"
            )
        result = choose(collection, scores, folds)
        if not dry_run:
            record(retriever, result)
    except (TuneError, RetrievalError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        retriever.close()
    summary = result.summary()
    console.print(_table(summary))
    verb = "would record" if dry_run else "recorded"
    console.print(f"{verb} mode [bold]{escape(result.chosen.label)}[/] for {escape(collection)}: "
                  f"{escape(result.reason)}")  # fmt: skip
    if json_out is not None:
        json_out.write_text(json.dumps({"collection": collection, **summary}, indent=2))


def _table(summary: dict) -> object:
    from rich.table import Table

    def ci(v: list[float], signed: bool = False) -> str:
        f = "{:+.3f}" if signed else "{:.3f}"
        return f"{f.format(v[0])} [{f.format(v[1])}, {f.format(v[2])}]"

    table = Table(title=f"{summary['queries']} judged queries, {summary['folds']} folds")
    for col in ("mode", "nDCG@10 [95% CI]", "recall@10", "vs dense", "picked"):
        table.add_column(col)
    for label, m in summary["modes"].items():
        mark = " *" if label == summary["chosen"] else ""
        vs_dense = ci(m["vs_dense_ndcg@10"], signed=True)
        recall = f"{m['recall@10'][0]:.3f}"
        table.add_row(label + mark, ci(m["ndcg@10"]), recall, vs_dense, str(m["picked_in_folds"]))
    table.caption = (f"held-out nDCG@10 of the choosing: {ci(summary['held_out_ndcg@10'])}; "
                     f"* = recorded")  # fmt: skip
    return table
