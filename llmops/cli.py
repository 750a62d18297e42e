"""The ``llmops`` command: one entry point composing each package's own Typer app."""

from __future__ import annotations

import typer

from gateway.cli import keys_app, serve
from gateway.engine.cli import app as models_app
from prompts.cli import app as prompts_app
from retrieval.cli import app as retrieval_app

app = typer.Typer(
    help="LLMOps: gateway, prompts in git, retrieval and gated evals for open models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("serve")(serve)
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(prompts_app, name="prompts")
for _cmd in retrieval_app.registered_commands:  # ingest and search sit at the top level
    app.registered_commands.append(_cmd)
try:  # evals may be absent from slim installs
    from evals.cli import app as evals_app
except ImportError:  # pragma: no cover
    pass
else:
    app.add_typer(evals_app, name="eval")
try:  # monitoring needs the observability extra
    from monitor.cli import app as monitor_app
except ImportError:  # pragma: no cover
    pass
else:
    app.add_typer(monitor_app, name="monitor")


def main() -> None:
    app()
