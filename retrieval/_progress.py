"""Rich progress bar (chunks and chunks/s) and the end-of-run summary for `llmops ingest`."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ._ingest import FileStatus, IngestReport


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        speed = task.completed / elapsed if elapsed and task.completed else None
        return Text(f"{speed:.1f} chunks/s" if speed else "-- chunks/s", style="cyan")


class RichProgress:
    """Implements `IngestProgress` for the terminal."""

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        self._console = console
        self._verbose = verbose
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._progress.add_task("planning", total=None)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def planned(self, files: int, chunks_to_embed: int) -> None:
        self._progress.update(
            self._task, description=f"embedding ({files} files)", total=chunks_to_embed, completed=0
        )
        self._progress.reset(self._task, total=chunks_to_embed)

    def advance(self, chunks: int) -> None:
        self._progress.advance(self._task, chunks)

    def file_done(self, path: str, status: FileStatus, chunks: int, reason: str = "") -> None:
        if status == "failed":
            self._console.print(f"[yellow]skipped[/] {escape(path)}: {escape(reason)}")
        elif self._verbose and status != "unchanged":
            self._console.print(f"[green]{status}[/] {escape(path)} ({chunks} chunks)")


def print_summary(console: Console, report: IngestReport) -> None:
    table = Table(title=escape(f"ingest into {report.collection!r}"), show_header=False)
    table.add_column(justify="right")
    table.add_column()
    table.add_row("files added", str(len(report.added)))
    table.add_row("files updated", str(len(report.updated)))
    table.add_row("files unchanged", str(len(report.unchanged)))
    table.add_row("files failed", str(len(report.failed)))
    if report.skipped:
        table.add_row("paths refused", str(len(report.skipped)))
    if report.pruned:
        table.add_row("files pruned", str(len(report.pruned)))
    table.add_row("chunks embedded", str(report.chunks_embedded))
    table.add_row("chunks reused", str(report.chunks_reused))
    table.add_row("chunks in these files", str(report.chunks_total))
    table.add_row("time", f"{report.seconds:.1f} s ({report.chunks_per_s:.1f} chunks/s)")
    console.print(table)
    for path, reason in report.skipped:
        console.print(f"[yellow]refused[/] {escape(path)}: {escape(reason)}")
