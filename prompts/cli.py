"""``llmops prompts ...``: inspect, render and validate the prompt templates of a git repository.

Works on the repository it is run in or the one ``--repo`` names, so a user's own prompt
repository works as well as this one. Reads git objects at ``--ref`` (default HEAD); ``--worktree``
reads the files on disk instead (with git history attached where there is one).
"""

from __future__ import annotations

import difflib
import json
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from common import typer_settings

from ._errors import InvalidTemplate, PromptError
from ._langfuse_sync import (
    LangfuseSettings,
    LangfuseSyncError,
    LangfuseUnavailable,
    sync_to_langfuse,
)
from ._registry import PromptRegistry, PromptVersion

app = typer.Typer(
    help="Prompt templates versioned in git.", no_args_is_help=True, **typer_settings()
)

RepoOpt = Annotated[
    Path | None, typer.Option("--repo", help="git repository (default: the one of the cwd)")
]
RefOpt = Annotated[str | None, typer.Option("--ref", help="git ref to read (default HEAD)")]
DirOpt = Annotated[str, typer.Option("--prompts-dir", help="folder of templates in the repo")]
WorktreeOpt = Annotated[
    bool, typer.Option("--worktree", "-w", help="read the files on disk, not git objects")
]
UserOpt = Annotated[str | None, typer.Option("--user", help="user id for canary splits")]


def _echo_err(msg: str) -> None:
    typer.secho(msg, fg=typer.colors.RED, err=True)


def _find_repo(start: Path) -> Path:
    for args in (["--show-toplevel"], ["--absolute-git-dir"]):
        proc = subprocess.run(
            ["git", "-C", str(start), "rev-parse", *args], capture_output=True, text=True
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return Path(proc.stdout.strip())
    _echo_err(f"{start} is not inside a git repository; pass --repo PATH or use --worktree")
    raise typer.Exit(2)


def _has_worktree(repo: Path) -> bool:
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() == "true"


def _load(repo: Path | None, ref: str | None, prompts_dir: str, worktree: bool) -> PromptRegistry:
    try:
        if worktree:
            base = repo or _find_repo(Path.cwd())
            return PromptRegistry.from_directory(base / prompts_dir)
        return PromptRegistry.from_git(repo or _find_repo(Path.cwd()), ref or "HEAD", prompts_dir)
    except InvalidTemplate as e:
        for path, problem in sorted(e.errors.items()):
            _echo_err(f"invalid {path}: {problem}")
        raise typer.Exit(1) from None
    except PromptError as e:
        _echo_err(e.message)
        raise typer.Exit(2) from None


def _split(spec: str) -> tuple[str, str | None]:
    name, _, version = spec.partition("@")
    return name, version or None


def _get(reg: PromptRegistry, spec: str, user: str | None = None) -> PromptVersion:
    name, version = _split(spec)
    try:
        if user is None and version in (None, "production"):
            return reg.production(name)  # the CLI shows the served version, not a random arm
        return reg.get(name, version, user=user)
    except PromptError as e:
        _echo_err(e.message)
        raise typer.Exit(1) from None


def _get_quiet(reg: PromptRegistry, name: str, version: str) -> PromptVersion:
    if version == "production":
        return reg.production(name)
    return reg.get(name, version)


def _labels_for(reg: PromptRegistry, pv: PromptVersion) -> list[str]:
    out = [
        label
        for label, target in reg.labels_of(pv.name).items()
        if isinstance(target, PromptVersion) and target.version == pv.version
    ]
    if reg.production(pv.name).version == pv.version:
        out.insert(0, "production")
    return out


def _coerce(raw: str, kind: str) -> Any:
    if raw.startswith("@"):
        raw = Path(raw[1:]).read_text(encoding="utf-8")
    if kind == "string":
        return raw
    if kind == "boolean" and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
        return raw.lower() in ("true", "1", "yes")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # let validation name the type error


@app.command("list")
def list_(
    repo: RepoOpt = None,
    ref: RefOpt = None,
    prompts_dir: DirOpt = "prompts",
    worktree: WorktreeOpt = False,
) -> None:
    """List prompts with their production version and labels."""
    reg = _load(repo, ref, prompts_dir, worktree)
    for name in reg.names():
        pv = reg.production(name)
        weights = reg.weights(name)
        labels = ", ".join(
            f"{k}={v.version if isinstance(v, PromptVersion) else 'unavailable'}"
            for k, v in sorted(reg.labels_of(name).items())
        )
        if weights:
            labels += " [" + ", ".join(f"{k} {w:.0%} of traffic" for k, w in weights.items()) + "]"
        desc = pv.template.description.strip().splitlines()[0] if pv.template.description else ""
        commit = (pv.commit or "")[:10] or "worktree"
        typer.echo(f"{name:24} {pv.version}  {commit:12} {labels or '-'}  {desc}")


@app.command()
def show(
    spec: Annotated[str, typer.Argument(metavar="NAME[@VERSION|LABEL]")],
    repo: RepoOpt = None,
    ref: RefOpt = None,
    prompts_dir: DirOpt = "prompts",
    worktree: WorktreeOpt = False,
    user: UserOpt = None,
) -> None:
    """Print one version of a prompt: where it comes from and its YAML."""
    reg = _load(repo, ref, prompts_dir, worktree)
    pv = _get(reg, spec, user)
    typer.echo(f"# {pv.name}@{pv.version}  labels: {', '.join(_labels_for(reg, pv)) or '-'}")
    if pv.commit:
        typer.echo(f"# commit {pv.commit}  {pv.author}  {pv.date:%Y-%m-%d %H:%M %z}")
        typer.echo(f"# {pv.message}")
    typer.echo(pv.text.rstrip("\n"))


@app.command()
def render(
    spec: Annotated[str, typer.Argument(metavar="NAME[@VERSION|LABEL]")],
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="k=v (typed by the declaration; v=@FILE reads a file)"),
    ] = None,
    vars_json: Annotated[str | None, typer.Option("--vars", help="variables as JSON")] = None,
    documents: Annotated[
        Path | None, typer.Option(help="JSON list of retrieval hits to expose")
    ] = None,
    repo: RepoOpt = None,
    ref: RefOpt = None,
    prompts_dir: DirOpt = "prompts",
    worktree: WorktreeOpt = False,
    user: UserOpt = None,
) -> None:
    """Render a prompt with variables and print the resulting request fields as JSON."""
    reg = _load(repo, ref, prompts_dir, worktree)
    pv = _get(reg, spec, user)
    tpl = pv.template
    values: dict[str, Any] = json.loads(vars_json) if vars_json else {}
    for item in var or []:
        key, sep, raw = item.partition("=")
        if not sep:
            _echo_err(f"--var wants k=v, got {item!r}")
            raise typer.Exit(2)
        spec_ = tpl.variables.get(key)
        values[key] = _coerce(raw, spec_.type if spec_ else "string")
    context = None
    if tpl.retrieval is not None:
        hits = json.loads(documents.read_text()) if documents else []
        context = {tpl.retrieval.variable: hits}
    try:
        out = tpl.render(values, context=context)
        query = tpl.render_query(out.variables) if tpl.retrieval is not None else None
    except PromptError as e:
        _echo_err(e.message)
        raise typer.Exit(1) from None
    result: dict[str, Any] = {"prompt": pv.name, "version": pv.version, "model": out.model}
    result.update(out.params)
    if out.response_format:
        result["response_format"] = out.response_format
    if query is not None:
        result["retrieval"] = {
            "collection": tpl.retrieval.collection if tpl.retrieval else None,
            "query": query,
        }
    result["messages"] = out.messages
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


@app.command("log")
def log_(
    name: str,
    repo: RepoOpt = None,
    ref: RefOpt = None,
    prompts_dir: DirOpt = "prompts",
    worktree: WorktreeOpt = False,
) -> None:
    """Every version of a prompt, newest first, with commit, author, date and labels."""
    reg = _load(repo, ref, prompts_dir, worktree)
    try:
        history = reg.history(name)
    except PromptError as e:
        _echo_err(e.message)
        raise typer.Exit(1) from None
    for pv in history:
        labels = ", ".join(_labels_for(reg, pv))
        date = f"{pv.date:%Y-%m-%d %H:%M}" if pv.date else "-"
        commit = (pv.commit or "")[:10] or "worktree"
        extra = f"  [{labels}]" if labels else ""
        typer.echo(f"{pv.version}  {commit:12} {date}  {pv.author or '-'}  {pv.message}{extra}")
    if reg.shallow:
        typer.secho("(shallow clone: older history is missing)", fg=typer.colors.YELLOW)


@app.command()
def diff(
    name: str,
    a: Annotated[str, typer.Argument(help="version, label or git ref")],
    b: Annotated[str, typer.Argument(help="version, label or git ref")],
    repo: RepoOpt = None,
    ref: RefOpt = None,
    prompts_dir: DirOpt = "prompts",
    worktree: WorktreeOpt = False,
) -> None:
    """Unified diff between two versions of a prompt."""
    reg = _load(repo, ref, prompts_dir, worktree)

    def pick(spec: str) -> PromptVersion:
        try:
            return _get_quiet(reg, name, spec)
        except PromptError as first:
            try:
                return reg.version_at(name, spec)
            except PromptError:
                _echo_err(first.message)
                raise typer.Exit(1) from None

    va, vb = pick(a), pick(b)
    lines = difflib.unified_diff(
        va.text.splitlines(keepends=True),
        vb.text.splitlines(keepends=True),
        fromfile=f"{name}@{va.version}",
        tofile=f"{name}@{vb.version}",
    )
    typer.echo("".join(lines), nl=False)


@app.command()
def validate(
    repo: RepoOpt = None,
    ref: RefOpt = None,
    prompts_dir: DirOpt = "prompts",
    worktree: Annotated[
        bool | None,
        typer.Option(
            "--worktree/--git",
            help="files on disk (default when there is a work tree and no --ref) or git objects",
        ),
    ] = None,
) -> None:
    """Check every template and the labels file, and render each template's examples.

    Exits non-zero on any problem (CI runs it). Eval suites: `llmops eval validate`.
    """
    base = repo or _find_repo(Path.cwd())
    if worktree is None:
        worktree = ref is None and _has_worktree(base)
    reg = _load(base, ref, prompts_dir, worktree)
    failures = 0
    for name in reg.names():
        pv = reg.production(name)
        problems = pv.template.check_examples()
        for label, target in sorted(reg.labels_of(name).items()):
            if isinstance(target, PromptError):
                problems.append(f"label {label}: {target.message}")
        if problems:
            failures += 1
            for p in problems:
                _echo_err(f"FAIL {name}@{pv.version}: {p}")
        else:
            n = len(pv.template.examples)
            typer.echo(f"ok   {name}@{pv.version} ({n} example{'s' if n != 1 else ''})")
    if failures:
        _echo_err(f"{failures} prompt(s) failed validation")
        raise typer.Exit(1)
    typer.echo(f"{len(reg)} prompt(s) valid ({reg.source})")


@app.command("sync-langfuse")
def sync_langfuse(
    repo: RepoOpt = None,
    ref: RefOpt = None,
    prompts_dir: DirOpt = "prompts",
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Langfuse URL (default $LANGFUSE_BASE_URL, else $LANGFUSE_HOST, "
            "else http://127.0.0.1:3000)",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="read Langfuse and print the plan; send nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Push every git version of every prompt to Langfuse prompt management (idempotent).

    Oldest first, so Langfuse's version numbers follow git order; labels: production, the labels
    file's labels, the commit's short sha. A second run creates nothing; a moved label is moved
    in Langfuse. Keys: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY (exit 2 without them).
    """
    try:
        settings = LangfuseSettings.from_env(base_url)
    except PromptError as e:
        _echo_err(e.message)
        raise typer.Exit(2) from None
    reg = _load(repo, ref, prompts_dir, False)
    try:
        result = sync_to_langfuse(reg, settings, dry_run=dry_run)
    except PromptError as e:
        remote = isinstance(e, LangfuseSyncError) and not isinstance(e, LangfuseUnavailable)
        _echo_err(f"{e.message} (Langfuse at {settings.base_url})" if remote else e.message)
        raise typer.Exit(1 if remote else 2) from None
    for warning in result.warnings:
        typer.secho(warning, fg=typer.colors.YELLOW, err=True)
    if as_json:
        typer.echo(json.dumps({"base_url": settings.base_url, **result.to_dict()}, indent=2))
    else:
        typer.echo("\n".join(result.lines()))


def main() -> None:  # pragma: no cover - for python -m prompts.cli
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
