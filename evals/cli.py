"""``llmops eval run``, ``compare``, ``plan`` and ``validate``.

Exit codes: 0 the gate passed; 1 the gate failed; 2 the evaluation could not run (bad suite,
empty dataset, unknown prompt or model, unreachable gateway, crash); 3 (``compare`` only) the
gate passed, judged by the base's settings, but the head changes the gate (thresholds,
allowances, gate settings, cases): a reviewer must sign that off. ``validate`` exits 1 when an
allowance is below what its suite can detect. Every failure is non-zero: CI must never read
"could not evaluate" as "passed". Heavy imports happen inside the commands.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from common import typer_settings
from evals._retrieval_cli import app as retrieval_app  # noqa: F401 (``llmops retrieval``)

app = typer.Typer(
    help="Evals that gate promotion: run suites, compare git refs or models.",
    no_args_is_help=True,
    **typer_settings(),
)

EXIT_FAIL, EXIT_ERROR, EXIT_GATE_CHANGED = 1, 2, 3

SuitesArg = Annotated[
    list[Path], typer.Argument(help="suite YAML file(s), e.g. evals/suites/*.yaml")
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="report folder (default $LLMOPS_HOME/evals/reports/<time>)"),
]
CacheOpt = Annotated[bool, typer.Option("--cache/--no-cache", help="reuse cached outputs")]
CacheDirOpt = Annotated[Path | None, typer.Option(help="cache folder (default under LLMOPS_HOME)")]
LimitOpt = Annotated[int | None, typer.Option(help="only the first N cases (smoke runs)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _g3(x: float | None) -> str:
    """A table cell: three significant digits, a dash for nothing."""
    return "–" if x is None else f"{x:.3g}"


ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress")]
LangfuseOpt = Annotated[
    bool, typer.Option("--langfuse/--no-langfuse", help="push runs when LANGFUSE_* is set")
]


def _out_dir(out: Path | None) -> Path:
    if out is not None:
        return out
    from common import llmops_home

    return llmops_home() / "evals" / "reports" / time.strftime("%Y%m%d-%H%M%S")


def _context(cache: bool, cache_dir: Path | None, on_step: Any) -> Any:
    from evals._cache import DiskCache, default_cache_dir
    from evals._runner import RunContext

    root = (cache_dir or default_cache_dir()) if cache else None
    return RunContext(cache=DiskCache(root), on_step=on_step)


def _execute(
    suites: list[Path],
    out: Path | None,
    *,
    cache: bool,
    cache_dir: Path | None,
    limit: int | None,
    progress: bool,
    langfuse: bool,
    sides: int,
    job: Any,
    load: Any = None,
    on_done: Any = None,
) -> None:
    """Shared driver: load suites, run ``job`` per suite under a progress bar, write reports."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from common import cli_console, print_markdown
    from evals._dataset import load_dataset
    from evals._errors import EvalError
    from evals._report_md import markdown_report
    from evals._reports import write_error_reports, write_reports
    from evals._suite import load_suite

    console = cli_console(stderr=True)
    folder = _out_dir(out)
    try:
        loaded = []
        for p in suites:
            if load is not None:
                loaded.append(load(p, limit))
                continue
            s = load_suite(p)
            loaded.append((s, load_dataset(s, limit)))
        total = sum(len(c) * s.repeats * sides for s, c in loaded)
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not progress,
        )
        verdicts = []
        with bar:
            task = bar.add_task("evaluating", total=total)
            ctx = _context(cache, cache_dir, lambda: bar.advance(task))
            for s, cases in loaded:
                bar.update(task, description=f"{s.name}")
                v = asyncio.run(job(s, ctx, cases))
                verdicts.append(v)
                if langfuse:
                    from evals._langfuse import push_if_configured

                    note = push_if_configured(s, v)
                    if note:
                        console.print(f"[dim]{escape(note)}[/dim]")
    except EvalError as e:
        write_error_reports(folder, str(e))
        console.print(f"[red]error:[/red] {escape(str(e))}\nreports: {escape(str(folder))}")
        raise typer.Exit(EXIT_ERROR) from None
    except Exception as e:  # fail closed on anything unexpected, but say what it was
        msg = f"{type(e).__name__}: {e}"
        write_error_reports(folder, msg)
        console.print_exception()
        console.print(
            f"[red]evaluation crashed:[/red] {escape(msg)}\nreports: {escape(str(folder))}"
        )
        raise typer.Exit(EXIT_ERROR) from None
    paths = write_reports(folder, verdicts)
    print_markdown(cli_console(), markdown_report(verdicts))
    console.print(f"reports: {escape(', '.join(str(p) for p in paths.values()))}")
    changed = [v.suite for v in verdicts if v.gate_changed]
    passed = all(v.passed for v in verdicts)
    code = 0 if passed and not changed else EXIT_FAIL if not passed else EXIT_GATE_CHANGED
    if on_done is not None:
        note = on_done(loaded, verdicts, code, folder)
        if note:
            console.print(escape(note))
    if not passed:
        raise typer.Exit(EXIT_FAIL)
    if changed:
        console.print(
            f"[yellow]gate changed[/yellow] in {escape(', '.join(changed))}: judged by the base's "
            f"gate, which passed; the change needs a reviewer's sign-off (exit {EXIT_GATE_CHANGED})"
        )
        raise typer.Exit(EXIT_GATE_CHANGED)


@app.command()
def run(
    suites: SuitesArg,
    ref: Annotated[
        str | None, typer.Option(help="git ref of the prompt (default: working tree)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="model override")] = None,
    version: Annotated[str | None, typer.Option(help="prompt version id or label to pin")] = None,
    out: OutOpt = None,
    cache: CacheOpt = True,
    cache_dir: CacheDirOpt = None,
    limit: LimitOpt = None,
    progress: ProgressOpt = True,
    langfuse: LangfuseOpt = True,
) -> None:
    """Evaluate suites once and gate on their thresholds."""
    from evals._api import Side, evaluate

    side = Side(ref=ref, model=model, version=version)

    async def job(s: Any, ctx: Any, cases: Any) -> Any:
        return await evaluate(s, ctx, side, cases)

    _execute(
        suites,
        out,
        cache=cache,
        cache_dir=cache_dir,
        limit=limit,
        progress=progress,
        langfuse=langfuse,
        sides=1,
        job=job,
    )


@app.command()
def compare(
    suites: SuitesArg,
    base: Annotated[str | None, typer.Option(help="git ref of the baseline prompt")] = None,
    head: Annotated[
        str | None, typer.Option(help="git ref of the candidate (default: working tree)")
    ] = None,
    base_model: Annotated[str | None, typer.Option(help="baseline model")] = None,
    head_model: Annotated[str | None, typer.Option(help="candidate model")] = None,
    merge_base: Annotated[
        bool, typer.Option(help="compare against git merge-base(base, head)")
    ] = False,
    out: OutOpt = None,
    cache: CacheOpt = True,
    cache_dir: CacheDirOpt = None,
    limit: LimitOpt = None,
    progress: ProgressOpt = True,
    langfuse: LangfuseOpt = True,
) -> None:
    """Compare base and head (git refs and/or models): paired bootstrap CIs, thresholds, gate."""
    from evals._api import Side
    from evals._api import compare as do_compare

    if base is None and base_model is None:
        typer.echo("error: give --base REF and/or --base-model MODEL", err=True)
        raise typer.Exit(EXIT_ERROR)

    deleted: set[Path] = set()

    def base_ref_of(s: Any) -> str | None:
        if merge_base and base is not None:
            from evals._prompt_refs import merge_base as mb

            return str(mb(s.repo_path(), base, head or "HEAD"))
        return base if base is not None else head

    async def job(s: Any, ctx: Any, cases: Any) -> Any:
        from evals._base_suite import base_gate

        base_ref = base_ref_of(s)
        # The gate is the base's whenever the base is another git ref than the head.
        gate = None
        if base_ref is not None and base_ref != head:
            gate = base_gate(s, cases, base_ref, limit, deleted=s.path in deleted)
        return await do_compare(
            s,
            ctx,
            Side(ref=base_ref, model=base_model),
            Side(ref=head, model=head_model),
            cases,
            gate,
        )

    def load(path: Path, n: int | None) -> Any:
        """A suite file the head deleted is still judged: read as at the base ref."""
        from evals._base_suite import deleted_suite
        from evals._dataset import load_dataset
        from evals._suite import load_suite

        if path.exists() or base is None:
            s = load_suite(path)
            return s, load_dataset(s, n)
        s, found = deleted_suite(path, base)
        if s.path is not None:
            deleted.add(s.path)
        return s, found[:n] if n else found

    def record_model_gate(loaded: Any, verdicts: Any, code: int, folder: Path) -> str | None:
        """A model comparison leaves the record ``llmops promote`` requires."""
        if base_model is None or head_model is None or limit is not None:
            return None
        from evals._model_gate import ModelGateRecord, SuiteOutcome, head_commit, write_model_gate

        record = ModelGateRecord(
            base_model=base_model,
            head_model=head_model,
            passed=code == 0,
            exit_code=code,
            commit=head_commit(loaded[0][0].repo_path()) if loaded else None,
            suites=[
                SuiteOutcome(suite=v.suite, passed=v.passed, gate_changed=v.gate_changed)
                for v in verdicts
            ],
        )
        where = write_model_gate(record, folder)
        verdict = "passed" if record.passed else f"did not pass (exit {code})"
        return f"model gate {head_model} vs {base_model} {verdict}: recorded in {where[0]}"

    _execute(
        suites,
        out,
        cache=cache,
        cache_dir=cache_dir,
        limit=limit,
        progress=progress,
        langfuse=langfuse,
        sides=2,
        job=job,
        load=load,
        on_done=record_model_gate,
    )


@app.command()
def plan(
    suites: SuitesArg,
    ref: Annotated[
        str | None, typer.Option(help="git ref of the prompt (default: working tree)")
    ] = None,
    cache: CacheOpt = True,
    cache_dir: CacheDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per metric: what the suite can detect at its size (minimum detectable regression at 80%
    and 95% power) and the cases its allowance needs, from one (cached) run."""
    import json

    from rich.markup import escape
    from rich.table import Table

    from common import cli_console
    from evals._api import Side, evaluate
    from evals._dataset import load_dataset
    from evals._errors import EvalError
    from evals._suite import load_suite

    console = cli_console()
    rows: list[dict[str, Any]] = []
    try:
        ctx = _context(cache, cache_dir, None)
        for p in suites:
            s = load_suite(p)
            v = asyncio.run(evaluate(s, ctx, Side(ref=ref), load_dataset(s)))
            for m in v.metrics:
                rows.append(
                    {
                        "suite": s.name,
                        "metric": m.metric,
                        "n": m.n_paired,
                        "max_regression": m.max_regression,
                        "delta_sd": m.delta_sd,
                        "mde_80": m.mde_80,
                        "mde_95": m.mde_95,
                        "cases_needed_80": m.cases_needed_80,
                        "cases_needed_95": m.cases_needed_95,
                    }
                )
    except EvalError as e:
        cli_console(stderr=True).print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(EXIT_ERROR) from None
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        "suite",
        "metric",
        "n",
        "allowed drop",
        "sd (planned)",
        "detectable 80%",
        "detectable 95%",
        "cases for the allowance 80% / 95%",
    )
    for r in rows:
        table.add_row(
            r["suite"],
            r["metric"],
            str(r["n"]),
            _g3(r["max_regression"]),
            _g3(r["delta_sd"]),
            _g3(r["mde_80"]),
            _g3(r["mde_95"]),
            f"{r['cases_needed_80'] or '∞'} / {r['cases_needed_95'] or '∞'}",
        )
    console.print(table)


SUITES_GLOB = "evals/suites/*.yaml"


@app.command()
def validate(
    suites: Annotated[
        list[Path] | None,
        typer.Argument(
            help=f"suite YAML file(s) (default: {SUITES_GLOB} here, subfolders such as extra/ "
            "not included)"
        ),
    ] = None,
    from_run: Annotated[
        bool,
        typer.Option(
            "--from-run",
            help="run each suite once (cached) and plan every metric with the run's sd; "
            "without it no model is called and continuous metrics are not checked",
        ),
    ] = False,
    ref: Annotated[
        str | None, typer.Option(help="--from-run: git ref of the prompt (default: working tree)")
    ] = None,
    cache: CacheOpt = True,
    cache_dir: CacheDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check suites and datasets, and that each allowed drop is detectable at 80% power with the
    suite's cases (else the gate fails harmless edits too often to be useful).

    Exits 1 when an allowance is below what its suite can detect, 2 when a suite or dataset is
    invalid (CI runs it before comparing).
    """
    import json

    from rich.markup import escape
    from rich.table import Table

    from common import cli_console
    from evals._api import Side, evaluate
    from evals._dataset import load_dataset
    from evals._errors import EvalError
    from evals._suite import load_suite
    from evals._validate import Finding, check_power

    paths = suites or sorted(Path.cwd().glob(SUITES_GLOB))
    if not paths:
        typer.echo(f"error: no suites given and none match {SUITES_GLOB} here", err=True)
        raise typer.Exit(EXIT_ERROR)
    findings: list[Finding] = []
    errors = 0
    ctx = _context(cache, cache_dir, None) if from_run else None
    for p in paths:
        try:
            s = load_suite(p)
            cases = load_dataset(s)
            run = None
            if ctx is not None:
                run = asyncio.run(evaluate(s, ctx, Side(ref=ref), cases)).head
            findings.extend(check_power(s, len(cases), run))
        except EvalError as e:
            errors += 1
            cli_console(stderr=True).print(f"[red]error:[/red] {escape(str(e))}")
    if json_out:
        typer.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    elif findings:
        table = Table(
            "suite",
            "metric",
            "n",
            "allowed drop",
            "sd (planned)",
            "sd from",
            "detectable 80%",
            "cases needed 80%",
            "status",
        )
        for f in findings:
            table.add_row(
                f.suite,
                f.metric,
                str(f.n),
                _g3(f.max_regression),
                _g3(f.delta_sd),
                f.sd_basis or "–",
                _g3(f.mde_80),
                "–" if f.cases_needed_80 is None else str(f.cases_needed_80),
                f.status.replace("_", " "),
            )
        cli_console().print(table)
    failed = [f for f in findings if f.failed]
    for f in failed:
        typer.echo(f"FAIL {f.suite}: {f.message}", err=True)
    if errors:
        typer.echo(f"{errors} suite(s) could not be read", err=True)
        raise typer.Exit(EXIT_ERROR)
    if failed:
        n_suites = len({f.suite for f in failed})
        typer.echo(
            f"{len(failed)} metric(s) in {n_suites} suite(s) cannot detect their allowed drop",
            err=True,
        )
        raise typer.Exit(EXIT_FAIL)
    unplanned = sum(f.status == "needs_run" for f in findings)
    note = f"; {unplanned} continuous metric(s) need --from-run to plan" if unplanned else ""
    if not json_out:
        typer.echo(f"{len(paths)} suite(s) valid: every checked allowance is detectable{note}")


def main() -> None:  # pragma: no cover - for `python -m evals.cli`
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
