"""``llmops prompts`` commands against temporary git repositories and the shipped templates."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from prompts import PromptRegistry
from prompts.cli import app

from .conftest import Repo

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def history_repo(repo: Repo) -> list[str]:
    repo.prompt("greet", "Hello {{ who }}", desc="Greets")
    repo.commit("first")
    repo.prompt("greet", "Hi {{ who }}", desc="Greets")
    repo.commit("second", "Bob <bob@example.com>")
    versions = [h.version for h in PromptRegistry.from_git(repo.path).history("greet")]
    repo.write(
        "prompts/labels.yaml",
        f"labels:\n  canary: {{greet: {{version: {versions[1]}, weight: 0.1}}}}\n",
    )
    repo.commit("canary")
    return versions


def test_list_show_log(repo: Repo) -> None:
    new, old = history_repo(repo)
    code, out = run("list", "--repo", str(repo.path))
    assert code == 0, out
    assert "greet" in out and new in out and f"canary={old}" in out and "10% of traffic" in out
    code, out = run("show", f"greet@{old}", "--repo", str(repo.path))
    assert code == 0 and "Hello {{ who }}" in out and "labels: canary" in out and "first" in out
    code, out = run("show", "greet@canary", "--repo", str(repo.path))
    assert code == 0 and old in out
    code, out = run("log", "greet", "--repo", str(repo.path))
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith(new) and "Bob" in lines[0] and "[production]" in lines[0]
    assert lines[1].startswith(old) and "[canary]" in lines[1]
    code, out = run("show", "nope", "--repo", str(repo.path))
    assert code == 1 and "not found" in out


def test_ref_option_reads_an_older_commit(repo: Repo) -> None:
    _new, old = history_repo(repo)
    code, out = run("show", "greet", "--repo", str(repo.path), "--ref", "HEAD~2")
    assert code == 0 and f"greet@{old}" in out


def test_render_types_variables(repo: Repo) -> None:
    history_repo(repo)
    code, out = run("render", "greet", "--var", "who=Zoë", "--repo", str(repo.path))
    assert code == 0, out
    assert json.loads(out)["messages"] == [{"role": "user", "content": "Hi Zoë"}]
    code, out = run("render", "greet", "--repo", str(repo.path))
    assert code == 1 and "who" in out


def test_diff_by_version_and_ref(repo: Repo) -> None:
    new, old = history_repo(repo)
    code, out = run("diff", "greet", old, new, "--repo", str(repo.path))
    assert code == 0
    assert '-    content: "Hello {{ who }}"' in out and '+    content: "Hi {{ who }}"' in out
    code, out2 = run("diff", "greet", "HEAD~2", "production", "--repo", str(repo.path))
    assert code == 0 and out2 == out


def test_validate_fails_on_invalid_templates_and_examples(repo: Repo) -> None:
    history_repo(repo)
    code, out = run("validate", "--repo", str(repo.path))
    assert code == 0 and "1 prompt(s) valid" in out
    repo.write(
        "prompts/ex.yaml",
        "name: ex\nvariables: {v: {}}\nmessages: [{role: user, content: '{{ v }}'}]\n"
        "examples: [{variables: {v: a}, expect: {contains: [b]}}]\n",
    )
    code, out = run("validate", "--repo", str(repo.path))  # work tree by default
    assert code == 1 and "FAIL ex@" in out and "lacks 'b'" in out
    code, out = run("validate", "--repo", str(repo.path), "--git")  # committed state is fine
    assert code == 0
    repo.write("prompts/ex.yaml", "name: ex\nmessages: nope\n")
    repo.commit("broken")
    code, out = run("validate", "--repo", str(repo.path), "--ref", "HEAD")
    assert code == 1 and "invalid prompts/ex.yaml" in out


def test_not_a_repository(tmp_path: Path) -> None:
    code, out = run("list", "--repo", str(tmp_path))
    assert code == 2 and "git" in out


def test_shipped_prompts_validate() -> None:
    code, out = run("validate", "--repo", str(ROOT), "--worktree")
    assert code == 0, out
    for name in ("rag-answer", "extract-json", "summarise"):
        assert f"ok   {name}@" in out
