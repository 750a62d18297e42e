"""The Typer group every ``llmops`` app uses: plain click output when not on a terminal.

Imported only by the command modules (through ``common.typer_settings``), never by
``import common``: the gateway process does not load typer for this.
"""

from __future__ import annotations

import sys
from typing import Any

from typer.core import TyperGroup

from common._console import is_terminal


def _plain(command: Any) -> None:
    """No rich panels for this command and everything under it: click's own ``Error: ...``
    line and help text instead (a rich panel is wrapped at 80 columns on a pipe)."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        _plain(sub)


class CliGroup(TyperGroup):
    """Decides at each invocation, from the real streams, whether output may be rich.

    The click objects are built afresh for each run (``app()``, ``CliRunner.invoke``), so
    switching them to plain output here does not outlive the run.
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not (is_terminal(sys.stdout) and is_terminal(sys.stderr)):
            _plain(self)
        return super().main(*args, **kwargs)
