"""`llmops ingest` and `llmops search`. Heavy imports (torch, Qdrant) happen inside commands so
`llmops --help` stays fast; all logic lives in the package, this only parses and prints."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from common import typer_settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ._config import RetrievalConfig
    from ._search import Hit

app = typer.Typer(
    help="Ingest documents into Qdrant and search them.", no_args_is_help=True, **typer_settings()
)

ConfigOpt = Annotated[
    Optional[Path],  # noqa: UP045 (typer reads the annotation)
    typer.Option("--config", help="YAML file with a RetrievalConfig (flags override it)."),
]
BackendOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--backend", help="edge (embedded, default) or qdrant (server/cluster)."),
]
PathOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--store-path", help="edge: data folder; qdrant: local-mode path."),
]
UrlOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--url", help="Qdrant server URL (implies --backend qdrant)."),
]
ModelOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--model", help="Embedding model name recorded in the collection."),
]
ModelPathOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--model-path", help="Local sentence-transformers model folder."),
]
EmbedUrlOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--embed-url", help="OpenAI-compatible base URL serving --model."),
]


def config_from_options(
    config: Path | None,
    backend: str | None,
    store_path: str | None,
    url: str | None,
    model: str | None,
    model_path: str | None,
    embed_url: str | None,
) -> RetrievalConfig:
    import os

    import yaml

    from ._config import RetrievalConfig

    data: dict[str, Any] = {}
    if config is not None:
        loaded = yaml.safe_load(config.read_text()) or {}
        data = loaded.get("retrieval", loaded) if isinstance(loaded, dict) else {}
    cfg = RetrievalConfig.model_validate(data)
    store = cfg.store.model_copy()
    if url:
        store.backend, store.url = "qdrant", url
    if backend:
        store.backend = backend  # type: ignore[assignment]
    if store_path:
        store.path = store_path
    if store.backend == "qdrant" and store.api_key is None and store.api_key_env is None:
        if os.environ.get("QDRANT_API_KEY"):
            store.api_key_env = "QDRANT_API_KEY"
    emb = cfg.embedder.model_copy()
    if model:
        emb.model = model
    if model_path:
        emb.path = model_path
    if embed_url:
        emb.kind, emb.base_url = "openai", embed_url
    return cfg.model_copy(update={"store": store, "embedder": emb})


def owning_gateway(
    gateway: str | None, direct: bool, cfg: RetrievalConfig, *named: object
) -> str | None:
    """The gateway that owns the store, which store commands go through: the one named, else
    the one serving the data directory, unless --direct or another store is named."""
    from common import serving_gateway

    return gateway or (None if direct or any(named) else serving_gateway(cfg.resolved_home()))


def _check_mode(mode: str) -> None:
    from ._config import SEARCH_MODES

    if mode not in SEARCH_MODES:
        raise typer.BadParameter(
            f"mode must be one of {', '.join(SEARCH_MODES)}", param_hint="--mode"
        )


def quiet_model_loading() -> None:
    """transformers draws a 'Loading weights' bar on every start; the CLI has its own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _fail(console: Console, exc: Exception) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(code=1)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name.")],
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove chunks of files gone from these paths.")
    ] = False,
    tag: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--tag", "-t", help="Tag stored on every chunk (repeatable)."),
    ] = None,
    mode: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--mode",
            help="Search mode recorded for a new collection: dense (default), sparse, rrf, "
            "dbsf or convex; `llmops retrieval tune` measures which is best.",
        ),
    ] = None,
    chunk_tokens: Annotated[Optional[int], typer.Option(help="Tokens per chunk.")] = None,  # noqa: UP045
    overlap_tokens: Annotated[Optional[int], typer.Option(help="Overlap tokens.")] = None,  # noqa: UP045
    batch_size: Annotated[Optional[int], typer.Option(help="Embedding batch size.")] = None,  # noqa: UP045
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="One line per file.")] = False,
    gateway: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--gateway",
            help="Hand the files to this gateway (its vector store API). "
            "Default: the gateway serving this data directory, if one runs.",
        ),
    ] = None,
    direct: Annotated[
        bool, typer.Option("--direct", help="Write the store directly, even if a gateway runs.")
    ] = False,
    api_key: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--api-key", envvar="LLMOPS_API_KEY", help="Gateway key (with --gateway)."),
    ] = None,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    embed_url: EmbedUrlOpt = None,
) -> None:
    """Ingest Markdown, reST, text, HTML and PDF files; re-running only embeds what changed.

    While a gateway serves the data directory (``llmops serve``), the files go through its
    vector store API and it ingests them while it keeps serving."""
    from common import cli_console

    from ._errors import RetrievalError
    from ._progress import RichProgress, print_summary

    console = cli_console(stderr=True)
    cfg = config_from_options(config, backend, store_path, url, model, model_path, embed_url)
    target = owning_gateway(gateway, direct, cfg, backend, store_path, url, config)
    if target is not None:
        if prune or tag or mode:
            console.print(
                "[bold red]error:[/] --prune, --tag and --mode work on the store directly: add "
                "--direct (with the gateway stopped)"
            )
            raise typer.Exit(2)
        from ._gateway_ingest import GatewayIngestError, ingest_through_gateway, static_chunking

        try:
            strategy = static_chunking(chunk_tokens, overlap_tokens)
        except GatewayIngestError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        console.print(f"handing the files to the gateway at {target}")
        try:
            summary = ingest_through_gateway(target, api_key, paths, collection, console=console,
                                             chunking=strategy)  # fmt: skip
        except GatewayIngestError as exc:
            raise _fail(console, exc) from exc
        console.print(summary.line())
        raise typer.Exit(1 if summary.failed else 0)
    updates: dict[str, Any] = {}
    if chunk_tokens is not None:
        updates["chunking"] = cfg.chunking.model_copy(update={"chunk_tokens": chunk_tokens})
    if overlap_tokens is not None:
        ch = updates.get("chunking", cfg.chunking)
        updates["chunking"] = ch.model_copy(update={"overlap_tokens": overlap_tokens})
    if batch_size is not None:
        updates["embedder"] = cfg.embedder.model_copy(update={"batch_size": batch_size})
    if mode is not None:
        _check_mode(mode)
        updates["search"] = cfg.search.model_copy(update={"mode": mode})
    cfg = cfg.model_copy(update=updates)

    from ._search import Retriever

    quiet_model_loading()
    retriever = Retriever(cfg)
    try:
        with console.status("loading embedding model"):
            _ = retriever.embedder
        with RichProgress(console, verbose=verbose) as progress:
            report = retriever.ingest(
                [str(p) for p in paths], collection, prune=prune, tags=tag or [], progress=progress
            )
    except (RetrievalError, ValueError) as exc:
        raise _fail(console, exc) from exc
    finally:
        retriever.close()
    print_summary(console, report)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 5,
    mode: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--mode", help="dense|sparse|rrf|dbsf|convex (default: the collection's)."),
    ] = None,
    source: Annotated[
        Optional[str], typer.Option("--source", help="Only chunks of this file.")  # noqa: UP045
    ] = None,
    tag: Annotated[
        Optional[list[str]], typer.Option("--tag", "-t", help="Only chunks with any of these tags.")  # noqa: UP045
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON lines.")] = False,
    config: ConfigOpt = None,
    backend: BackendOpt = None,
    store_path: PathOpt = None,
    url: UrlOpt = None,
    model: ModelOpt = None,
    model_path: ModelPathOpt = None,
    embed_url: EmbedUrlOpt = None,
) -> None:
    """Print ranked hits with scores and sources."""
    from common import cli_console

    from ._errors import RetrievalError
    from ._search import Retriever

    console = cli_console()
    err = cli_console(stderr=True)
    if mode is not None:
        _check_mode(mode)
    filters: dict[str, Any] = {}
    if source:
        filters["source"] = str(Path(source).expanduser().resolve())
    if tag:
        filters["tags"] = list(tag)
    quiet_model_loading()
    retriever = Retriever(
        config_from_options(config, backend, store_path, url, model, model_path, embed_url)
    )
    try:
        t0 = time.perf_counter()
        hits = retriever.search_sync(collection, query, top_k, filters or None, mode)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - t0
    except (RetrievalError, ValueError) as exc:
        raise _fail(err, exc) from exc
    finally:
        retriever.close()
    if as_json:
        for h in hits:
            typer.echo(json.dumps(h.as_dict(), default=str))
        return
    console.print(hits_table(query, collection, hits, elapsed))


def hits_table(query: str, collection: str, hits: list[Hit], elapsed_s: float) -> Table:
    """The ranked hits as a table; every value is shown as text (a snippet's ``[...]`` is not
    rich markup)."""
    from rich.markup import escape
    from rich.table import Table

    title = f"{len(hits)} hits for {query!r} in {collection} ({elapsed_s * 1000:.0f} ms)"
    table = Table(title=escape(title))
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("text")
    for i, h in enumerate(hits, 1):
        where = escape(str(h.metadata.get("path") or h.source))
        if h.metadata.get("heading"):
            where = f"{where}\n[dim]{escape(str(h.metadata['heading']))}[/]"
        snippet = " ".join(h.text.split())
        snippet = snippet[:240] + ("…" if len(snippet) > 240 else "")
        table.add_row(str(i), f"{h.score:.4f}", where, escape(snippet))
    return table


if __name__ == "__main__":
    app()
