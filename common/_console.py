"""Where command output goes: rich on a terminal, whole unwrapped lines anywhere else.

rich wraps at the terminal's width, and at 80 columns (or ``$COLUMNS``) when the stream is a
pipe or a file: a long path in an error then breaks over two lines and a script that greps the
output misses it. Every ``llmops`` command builds its consoles here, so that on a pipe nothing is
wrapped, truncated or boxed: messages stay one line, tables take the width of their content and
Markdown is printed as its source text.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported by the commands that print, not by `import common`
    from rich.console import Console

# Wide enough that no table or message reaches it; only renderables that expand to the full
# width (rules, expanded panels) would, and no command prints those on a pipe.
PIPE_WIDTH = 1_000_000


def is_terminal(stream: IO[str] | None) -> bool:
    """Whether ``stream`` is an interactive terminal (False for pipes, files and test runners)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a real stream
        return False


def cli_console(*, stderr: bool = False) -> Console:
    """A console for ``sys.stdout`` (or ``sys.stderr``), looked up when it prints.

    On a terminal: rich's defaults (the terminal's width, colours, live progress bars). Anywhere
    else: ``soft_wrap`` (a line is never broken) and a width no table reaches, so tables are
    neither wrapped nor cropped.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if is_terminal(stream):
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=PIPE_WIDTH)


def print_markdown(console: Console, text: str) -> None:
    """Render Markdown on a terminal; elsewhere write the source, which a pull-request comment
    or a script reads as it is (rendering would centre headings across the full width)."""
    if is_terminal(console.file):
        from rich.markdown import Markdown

        console.print(Markdown(text))
        return
    console.file.write(text if text.endswith("\n") else text + "\n")
    console.file.flush()


def typer_settings() -> dict[str, Any]:
    """Keyword arguments for every ``typer.Typer(...)`` of the CLI.

    Off a terminal (decided when the command runs), usage errors are click's plain one-line
    ``Error: ...`` instead of a rich panel wrapped at 80 columns, and an unexpected exception is
    Python's own traceback (decided when the app is built: the process's streams).
    """
    from common._typer import CliGroup

    return {
        "cls": CliGroup,
        "pretty_exceptions_enable": is_terminal(sys.stdout) and is_terminal(sys.stderr),
    }
