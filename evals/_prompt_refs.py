"""Git ref -> prompt version: the one place that talks to the prompts registry.

Versions are read from git objects (``PromptRegistry.from_git``), never by checking a ref out, so
``compare --base main --head HEAD`` works in any clone with the history, CI included. With no ref,
the working tree is read, so uncommitted edits can be evaluated on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common import Git, GitError
from evals._errors import PromptMissing, TargetError


@dataclass(frozen=True, slots=True)
class ResolvedPrompt:
    """A prompt version pinned for a run: ``version`` is the content hash the gateway knows."""

    name: str
    version: str
    commit: str | None
    ref: str | None
    template: object  # prompts.PromptTemplate (kept loose: prompts is imported lazily)


def git_toplevel(start: Path) -> Path:
    """The work tree root holding ``start`` (``start`` itself outside git)."""
    try:
        root = Git(start).toplevel()
    except GitError:
        root = None
    return root if root is not None else start.resolve()


def resolve_prompt(
    repo: Path, name: str, ref: str | None, prompts_dir: str = "prompts", pin: str | None = None
) -> ResolvedPrompt:
    """The version of prompt ``name`` at git ``ref`` (None: the working tree).

    ``pin`` (a version id or label) selects a version from that snapshot's history instead of the
    current one. Raises :class:`TargetError` with the registry's message on any failure.
    """
    from prompts import HistoryUnavailable, PromptError, PromptNotFound, PromptRegistry

    try:
        if ref is None:
            reg = PromptRegistry.from_directory(repo / prompts_dir)
        else:
            reg = PromptRegistry.from_git(repo, ref, prompts_dir)
        pv = reg.get(name, pin)
    except PromptError as e:
        where = f"git ref {ref!r}" if ref else f"working tree {repo / prompts_dir}"
        if isinstance(e, PromptNotFound) and not isinstance(e, HistoryUnavailable) and not pin:
            raise PromptMissing(f"prompt {name!r} does not exist at {where}") from None
        where = f"git ref {ref!r}" if ref else f"working tree {repo / prompts_dir}"
        raise TargetError(f"prompt {name!r} at {where}: {e.message}") from None
    return ResolvedPrompt(pv.name, pv.version, pv.commit, ref, pv.template)


def merge_base(repo: Path, a: str, b: str) -> str:
    """``git merge-base a b`` (what a pull request is compared against)."""
    try:
        return Git(repo).merge_base(a, b)
    except GitError as e:
        raise TargetError(str(e)) from None
