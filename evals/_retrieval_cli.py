"""``llmops retrieval``: retrieval maintenance that needs judging (``tune``, and ``rebuild``
with its gate), the aliases that versions are served behind (``versions``, ``alias``,
``rollback``) and snapshots (``snapshot``, ``restore``). It lives with the evals because it
scores with their metrics and intervals; the store options are retrieval's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

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
    owning_gateway,
    quiet_model_loading,
)

if TYPE_CHECKING:
    from retrieval import Store

GatewayOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--gateway",
        help="Work through this gateway (its admin API) while it serves. "
        "Default: the gateway serving this data directory, if one runs.",
    ),
]
DirectOpt = Annotated[
    bool, typer.Option("--direct", help="Work on the store directly, even if a gateway runs.")
]
AdminKeyOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--admin-key", envvar="LLMOPS_ADMIN_KEY", help="The gateway's admin key."),
]


def _need_admin_key(target: str, admin_key: str | None, what: str) -> str:
    if admin_key:
        return admin_key
    from rich.markup import escape

    from common import cli_console

    cli_console(stderr=True).print(
        f"[bold red]error:[/] the gateway at {escape(target)} serves this store; its admin key "
        f"is needed to {what} through it: --admin-key or LLMOPS_ADMIN_KEY (or --direct with the "
        "gateway stopped)"
    )
    raise typer.Exit(2)


app = typer.Typer(
    help="Tune how collections are searched, and rebuild them as gated versions.",
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


@contextmanager
def _opened_store(
    config: Path | None, backend: str | None, store_path: str | None, url: str | None
) -> Iterator[Store]:
    """The configured store for one command; its errors become a message and exit 1."""
    from rich.markup import escape

    from common import cli_console
    from retrieval import RetrievalError, Retriever

    r = Retriever(config_from_options(config, backend, store_path, url, None, None, None))
    try:
        yield r.store
    except (RetrievalError, ValueError, OSError) as exc:
        cli_console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        r.close()


@app.command()
def versions(
    alias: Annotated[str, typer.Argument(help="Alias (the name clients search).")],
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """List an alias's versions and the one it serves."""
    from rich.markup import escape

    from common import cli_console
    from retrieval import collection_versions

    console, err = cli_console(), cli_console(stderr=True)
    with _opened_store(config, backend, store_path, url) as store:
        v = collection_versions(store, alias)
        counts = {n: store.count(n) for n in v.versions + ([alias] if v.plain else [])}
    if not counts:
        err.print(f"[bold red]error:[/] no collection or version named {escape(alias)!r}")
        raise typer.Exit(1)
    for name, n in counts.items():
        mark = " <- serving" if name == v.serving else (" (plain)" if name == alias else "")
        console.print(f"{escape(name)}  {n} chunks{mark}")


@app.command()
def alias(
    name: Annotated[str, typer.Argument(help="Alias to create or switch.")],
    collection: Annotated[str, typer.Argument(help="Collection it names from now on.")],
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Point an alias at a collection, atomically (no gate: `rebuild` gates)."""
    from rich.markup import escape

    from common import cli_console
    from retrieval import switch_alias

    with _opened_store(config, backend, store_path, url) as store:
        ms = switch_alias(store, name, collection) * 1000
    cli_console().print(f"{escape(name)} -> {escape(collection)} ({ms:.1f} ms)")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Alias to move back one version.")],
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Point an alias back at the version before the one it serves."""
    from rich.markup import escape

    from common import cli_console
    from retrieval import rollback_alias

    with _opened_store(config, backend, store_path, url) as store:
        was, now = rollback_alias(store, name)
    cli_console().print(f"{escape(name)} -> {escape(now)} (was {escape(was)})")


@app.command()
def snapshot(
    name: Annotated[str, typer.Argument(help="Collection or alias (its serving version).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Snapshot file to write.")],
    gateway: GatewayOpt = None,
    direct: DirectOpt = False,
    admin_key: AdminKeyOpt = None,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Write a consistent copy of a collection: Qdrant's snapshot on a server, a tar of the
    flushed folder on the embedded engine (writes wait, searches go on). While a gateway
    serves the store, the gateway writes it and the CLI downloads it."""
    from rich.markup import escape

    from common import cli_console

    cfg = config_from_options(config, backend, store_path, url, None, None, None)
    target = owning_gateway(gateway, direct, cfg, backend, store_path, url, config)
    if target is not None:
        from evals._retrieval_gateway import GatewayVersionError, download_snapshot

        key = _need_admin_key(target, admin_key, "snapshot")
        try:
            real, path = download_snapshot(target, key, name, out)
        except GatewayVersionError as exc:
            cli_console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(1) from None
    else:
        with _opened_store(config, backend, store_path, url) as store:
            real = store.resolve(name)
            path = store.snapshot(name, out)
    size = path.stat().st_size / 1e6
    cli_console().print(f"{escape(real)} -> {escape(str(path))} ({size:.1f} MB)")


@app.command()
def restore(
    snapshot_file: Annotated[Path, typer.Argument(help="Snapshot file (from `snapshot`).")],
    name: Annotated[str, typer.Option("--as", help="New collection to create (must not exist).")],
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
) -> None:
    """Create a collection from a snapshot; point an alias at it with `alias` once checked."""
    from rich.markup import escape

    from common import cli_console

    with _opened_store(config, backend, store_path, url) as store:
        store.restore(snapshot_file, name)
        n = store.count(name)
    cli_console().print(f"restored {escape(name)}: {n} chunks")


@app.command()
def rebuild(
    name: Annotated[str, typer.Argument(help="Alias (or plain collection) to rebuild.")],
    queries: Annotated[Path, typer.Option("--queries", help="BEIR queries.jsonl (_id, text).")],
    qrels: Annotated[
        Path, typer.Option("--qrels", help="BEIR qrels TSV: query-id, corpus-id, score.")
    ],
    chunk_tokens: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--chunk-tokens", min=16, help="Tokens per chunk of the new version."),
    ] = None,
    overlap_tokens: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--overlap-tokens", min=0, help="Overlap tokens of the new version."),
    ] = None,
    new_model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--new-model", help="Embedding model name of the new version."),
    ] = None,
    new_model_path: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--new-model-path", help="Local model folder of the new version."),
    ] = None,
    max_regression: Annotated[
        float,
        typer.Option(
            "--max-regression",
            min=0.0,
            max=1.0,
            help="nDCG@10 and recall@10 the new version may lose (interval bound).",
        ),
    ] = 0.02,
    keep: Annotated[
        int, typer.Option("--keep", min=1, help="Previous versions kept for rollback.")
    ] = 1,
    depth: Annotated[int, typer.Option("--depth", min=10, max=1000)] = 100,
    id_field: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--id-field", help="Chunk metadata naming its document (default: file stem)."),
    ] = None,
    json_out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--json", help="Also write the gate's measurements to this file."),
    ] = None,
    gateway: GatewayOpt = None,
    direct: DirectOpt = False,
    api_key: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--api-key", envvar="LLMOPS_API_KEY", help="Gateway key, for its search."),
    ] = None,
    admin_key: AdminKeyOpt = None,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    embed_url: EmbedUrlOpt = None,
) -> None:
    """Build NAME@vN+1 from the sources of what NAME serves (new chunking or embedder) while
    NAME keeps serving, gate it against the serving version on judged queries, and switch the
    alias only if it passes. Exit 1 when the gate fails (nothing switched).

    While a gateway serves the data directory, it builds the new version itself (the
    embedded engine lets one process open a collection) and both versions are scored through
    its search endpoint; that needs its admin key."""
    from rich.markup import escape

    from common import cli_console
    from evals._retrieval_rebuild import LocalVersions, VersionBackend
    from evals._retrieval_rebuild import rebuild as run_rebuild
    from evals._retrieval_tune import TuneError, load_judged
    from retrieval import RetrievalError, Retriever

    console, err = cli_console(), cli_console(stderr=True)
    cfg = config_from_options(config, backend, store_path, url, model, model_path, embed_url)
    target = owning_gateway(gateway, direct, cfg, backend, store_path, url, config)
    if target is not None and (new_model or new_model_path):
        err.print(
            "[bold red]error:[/] a gateway searches with its own embedder, so a version built "
            "with another one needs the gateway's config changed with it: stop the gateway, "
            "add --direct, and point its retrieval.embedder at the new model"
        )
        raise typer.Exit(2)
    if target is not None:
        admin_key = _need_admin_key(target, admin_key, "rebuild")
    cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update={"mode": None})})
    pairs = (("chunk_tokens", chunk_tokens), ("overlap_tokens", overlap_tokens))
    asked = {k: v for k, v in pairs if v is not None}  # the new version's chunking
    chunking = cfg.chunking.model_copy(update=asked)
    embedder = cfg.embedder.model_copy(update={
        k: v for k, v in (("model", new_model), ("model_path", new_model_path)) if v is not None
    })  # fmt: skip
    try:
        judged = load_judged(queries, qrels)
        new_cfg = cfg.model_copy(update={"chunking": chunking, "embedder": embedder})
    except (TuneError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    versions: VersionBackend
    if target is not None:
        from evals._retrieval_gateway import GatewayVersions

        err.print(f"rebuilding {escape(name)} through the gateway at {escape(target)}")
        remote = GatewayVersions(target, name, api_key=api_key, admin_key=admin_key or "",
                                 chunking=asked, depth=depth, id_field=id_field)  # fmt: skip
        versions, close = remote, remote.close
    else:
        quiet_model_loading()
        serving = Retriever(cfg)
        same_model = new_cfg.embedder == cfg.embedder
        candidate = Retriever(new_cfg, store=serving.store,
                              embedder=serving.embedder if same_model else None)  # fmt: skip
        versions = LocalVersions(name, serving=serving, candidate=candidate, depth=depth,
                                 id_field=id_field)  # fmt: skip
        close = serving.close
    try:
        with err.status(f"building the next version of {name} and scoring both"):
            result = run_rebuild(name, judged, versions, max_regression=max_regression,
                                 keep=keep)  # fmt: skip
    except (RetrievalError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        close()
    for m in result.missing:
        err.print(f"[yellow]warning:[/] source gone, not in {result.candidate}: {escape(m)}")
    for rd in result.readings:
        d = rd.delta
        console.print(f"{rd.metric}: {result.baseline} {rd.baseline:.3f} -> {result.candidate} "
                      f"{rd.candidate:.3f}, delta {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] "
                      f"{rd.reading}")  # fmt: skip
    if json_out is not None:
        json_out.write_text(json.dumps(result.as_dict(), indent=2))
    if not result.passed:
        err.print(f"[bold red]gate failed:[/] {escape(name)} still serves "
                  f"{escape(result.baseline)}; {escape(result.candidate)} was dropped "
                  f"(allowed loss {max_regression:g})")  # fmt: skip
        raise typer.Exit(1)
    console.print(
        f"{escape(name)} -> {escape(result.candidate)} (switch {result.switch_ms:.1f} "
        f"ms; was {escape(result.baseline)}"
        + (f"; dropped {', '.join(result.dropped)}" if result.dropped else "")
        + ")"
    )
