"""The gate a comparison is judged by comes from the base ref, not from the change it judges.

A pull request that regresses a prompt could otherwise loosen its own gate in the same diff:
raise ``max_regression``, drop a threshold, set ``inconclusive: pass`` or delete the hard cases.
So ``compare`` reads the suite file and its dataset as they are at the base ref (git objects,
nothing is checked out) and uses their metrics, thresholds, allowances, gate settings, repeats,
seed and cases for both sides. What the head changed in any of them is listed and diffed, and
the CLI exits with its own code for it, so a reviewer signs the change off.
"""

from __future__ import annotations

import difflib
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common import Git, GitError
from evals._dataset import Case, parse_dataset
from evals._errors import SuiteError, TargetError
from evals._prompt_refs import git_toplevel
from evals._suite import Suite, parse_suite


@dataclass(frozen=True)
class BaseGate:
    """The suite and cases as at ``ref``, and how the head's differ.

    ``suite`` is None when the suite file does not exist at the base (a new suite: the head is
    gated on thresholds alone). ``changes`` are one line each; ``diff`` is a unified diff of the
    gate's settings (empty when only cases changed).
    """

    ref: str
    suite: Suite | None
    cases: list[Case] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    diff: str = ""


def _repo_path(path: Path) -> tuple[Git, str]:
    """The git repository holding the suite file ``path`` (which the working tree may no longer
    have) and the file's path inside it."""
    p = path.resolve()
    root = git_toplevel(next((d for d in p.parents if d.is_dir()), Path.cwd()))
    try:
        rel = p.relative_to(root.resolve())
    except ValueError:
        raise SuiteError(f"{path} is not inside the git repository {root}") from None
    return Git(root), rel.as_posix()


def _show(git: Git, commit: str, path: str) -> str | None:
    """A file's text at ``commit``; None when the path does not exist there."""
    try:
        return git.run("show", f"{commit}:{path}").decode("utf-8")
    except GitError:
        return None


def suite_at(path: Path, ref: str) -> tuple[Suite | None, list[Case], str]:
    """(the suite file ``path`` as at ``ref`` or None, its dataset's cases there, the commit)."""
    git, rel = _repo_path(path)
    try:
        commit = git.resolve(ref)
    except GitError as e:
        raise TargetError(f"git ref {ref!r}: {e}") from None
    text = _show(git, commit, rel)
    if text is None:
        return None, [], commit
    base = parse_suite(text, path.resolve(), f"{ref}:{rel}")
    if Path(base.dataset).is_absolute():
        raise SuiteError(
            f"{ref}:{rel}: dataset {base.dataset} is outside the repository, so the base's cases "
            "cannot be read from git; keep datasets in the repository"
        )
    ds = posixpath.normpath(posixpath.join(posixpath.dirname(rel), base.dataset))
    ds_text = _show(git, commit, ds)
    if ds_text is None:
        raise SuiteError(f"{ref}:{rel}: its dataset {ds} does not exist at {ref}")
    return base, parse_dataset(base, ds_text, f"{ref}:{ds}"), commit


def gate_settings(suite: Suite) -> dict[str, Any]:
    """Everything of a suite that decides a verdict (not what is evaluated, nor where)."""
    return {
        "metrics": [m.model_dump(mode="json", by_alias=True) for m in suite.metrics],
        "gate": suite.gate.model_dump(mode="json"),
        "judge": {"max_failure_rate": suite.judge.max_failure_rate},
        "repeats": suite.repeats,
        "seed": suite.seed,
    }


def _settings_changes(base: Suite, head: Suite) -> list[str]:
    out: list[str] = []
    b_metrics = {m.id: m for m in base.metrics}
    h_metrics = {m.id: m for m in head.metrics}
    for mid, bm in b_metrics.items():
        hm = h_metrics.get(mid)
        if hm is None:
            out.append(f"metric {mid!r} removed by the head (still gated)")
            continue
        b, h = bm.model_dump(by_alias=True), hm.model_dump(by_alias=True)
        for key in sorted(k for k in b if b[k] != h[k]):
            out.append(f"metric {mid!r}: {key} {b[key]!r} -> {h[key]!r}")
    for mid in h_metrics.keys() - b_metrics.keys():
        out.append(f"metric {mid!r} added by the head (not scored until it is merged)")
    bs, hs = gate_settings(base), gate_settings(head)
    for key, bv in bs["gate"].items():
        if hs["gate"][key] != bv:
            out.append(f"gate.{key}: {bv!r} -> {hs['gate'][key]!r}")
    for key in ("repeats", "seed"):
        if bs[key] != hs[key]:
            out.append(f"{key}: {bs[key]!r} -> {hs[key]!r}")
    if bs["judge"] != hs["judge"]:
        out.append(
            f"judge.max_failure_rate: {base.judge.max_failure_rate!r} -> "
            f"{head.judge.max_failure_rate!r}"
        )
    return out


def _case_changes(base: list[Case], head: list[Case]) -> list[str]:
    b = {c.id: c for c in base}
    h = {c.id: c for c in head}
    out: list[str] = []
    removed = [i for i in b if i not in h]
    added = [i for i in h if i not in b]
    edited = [i for i in b if i in h and b[i].model_dump() != h[i].model_dump()]
    if removed:
        out.append(f"{len(removed)} case(s) removed by the head, still gated: {_ids(removed)}")
    if edited:
        out.append(
            f"{len(edited)} case(s) edited by the head, gated as at the base: {_ids(edited)}"
        )
    if added:
        out.append(f"{len(added)} case(s) added by the head, reported, not gated: {_ids(added)}")
    return out


def _ids(ids: list[str], show: int = 10) -> str:
    head = ", ".join(ids[:show])
    return head + (f" and {len(ids) - show} more" if len(ids) > show else "")


def _settings_diff(base: Suite, head: Suite, ref: str) -> str:
    def dump(s: Suite) -> list[str]:
        return yaml.safe_dump(gate_settings(s), sort_keys=False).splitlines(keepends=True)

    return "".join(
        difflib.unified_diff(dump(base), dump(head), f"gate at {ref}", "gate at head", n=2)
    )


def base_gate(
    head: Suite, head_cases: list[Case], ref: str, limit: int | None = None, deleted: bool = False
) -> BaseGate:
    """The gate at ``ref`` for ``head`` (the suite as the working tree or head ref has it, its
    cases cut to ``limit`` like the base's). ``deleted``: the head no longer has the file, so
    ``head`` is the base's own copy and only the deletion is a change."""
    if head.path is None:
        raise SuiteError("the suite was not loaded from a file, so it has no version in git")
    base, cases, _ = suite_at(head.path, ref)
    if base is None:
        return BaseGate(ref=ref, suite=None)
    cases = cases[:limit] if limit else cases
    settings = _settings_changes(base, head)
    changes = settings + _case_changes(cases, head_cases)
    if deleted:
        changes.insert(0, "the head deletes this suite file (judged as at the base)")
    diff = _settings_diff(base, head, ref) if settings else ""
    return BaseGate(ref=ref, suite=base, cases=cases, changes=changes, diff=diff)


def deleted_suite(path: Path, ref: str) -> tuple[Suite, list[Case]]:
    """A suite file the head deleted, as at ``ref`` with its cases, so it still judges the
    head; raises :class:`SuiteError` when it does not exist at ``ref`` either."""
    base, cases, _ = suite_at(path, ref)
    if base is None:
        raise SuiteError(f"{path}: no such suite file, neither here nor at {ref}")
    return base, cases
