"""Registry from git objects: history, pinned versions, labels, canaries, bare/shallow clones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from prompts import (
    GitError,
    HistoryUnavailable,
    InvalidTemplate,
    PromptNotFound,
    PromptRegistry,
)

from .conftest import Repo


def three_versions(repo: Repo) -> list[str]:
    """greet: v1 -> v2 -> v3 (plus an unrelated commit); returns commit ids oldest first."""
    repo.prompt("greet", "Hello {{ who }}")
    repo.write("README.md", "x")
    c1 = repo.commit("greet: first", "Ada <ada@example.com>")
    repo.prompt("greet", "Hi {{ who }}")
    repo.prompt("other", "Other {{ who }}")
    c2 = repo.commit("greet: shorter", "Bob <bob@example.com>")
    repo.write("README.md", "y")
    repo.commit("docs only")
    repo.prompt("greet", "Hey {{ who }}!")
    c3 = repo.commit("greet: excited", "Cy <cy@example.com>")
    return [c1, c2, c3]


def text(reg: PromptRegistry, name: str, v: str | None = None, **kw: str) -> str:
    return reg.get(name, v, **kw).template.render({"who": "W"}).messages[0]["content"]


def test_history_from_git(repo: Repo) -> None:
    c1, c2, c3 = three_versions(repo)
    reg = PromptRegistry.from_git(repo.path)
    assert reg.names() == ["greet", "other"]
    assert reg.commit == c3
    hist = reg.history("greet")
    assert [h.commit for h in hist] == [c3, c2, c1]
    assert [h.message for h in hist] == ["greet: excited", "greet: shorter", "greet: first"]
    assert [h.author for h in hist] == [
        "Cy <cy@example.com>",
        "Bob <bob@example.com>",
        "Ada <ada@example.com>",
    ]
    assert hist[0].date is not None and hist[0].date > hist[2].date  # type: ignore[operator]
    assert len({h.version for h in hist}) == 3
    assert reg.get("greet") == hist[0]
    assert text(reg, "greet") == "Hey W!"
    # pinned old versions, by full id and by unique prefix
    assert text(reg, "greet", hist[2].version) == "Hello W"
    assert text(reg, "greet", hist[1].version[:6]) == "Hi W"
    assert "Hello {{ who }}" in hist[2].text
    assert reg.history("other")[0].commit == c2


def test_version_is_content_hash_not_commit(repo: Repo) -> None:
    repo.prompt("greet", "Hello {{ who }}")
    repo.commit("one")
    v1 = PromptRegistry.from_git(repo.path).get("greet").version
    # reformatting (comment, quoting) keeps the version; reverting restores it
    p = repo.path / "prompts/greet.yaml"
    p.write_text("# comment\n" + p.read_text())
    repo.commit("comment only")
    reg = PromptRegistry.from_git(repo.path)
    assert reg.get("greet").version == v1
    assert len(reg.history("greet")) == 1
    repo.prompt("greet", "Bye {{ who }}")
    repo.commit("change")
    repo.prompt("greet", "Hello {{ who }}")
    repo.commit("revert")
    reg = PromptRegistry.from_git(repo.path)
    assert [h.message for h in reg.history("greet")] == ["revert", "change", "one"]
    assert reg.get("greet").version == v1
    assert reg.get("greet", v1).message == "revert"


def test_ref_and_version_at(repo: Repo) -> None:
    c1, c2, _ = three_versions(repo)
    repo.git("tag", "v1", c1)
    old = PromptRegistry.from_git(repo.path, ref="v1")
    assert old.names() == ["greet"] and text(old, "greet") == "Hello W"
    reg = PromptRegistry.from_git(repo.path)
    assert reg.version_at("greet", c2).commit == c2
    assert reg.version_at("greet", "v1").version == reg.history("greet")[-1].version
    assert reg.version_at("greet", "HEAD~1").commit == c2  # docs-only commit: unchanged
    with pytest.raises(PromptNotFound):
        reg.version_at("other", "v1")
    with pytest.raises(GitError):
        PromptRegistry.from_git(repo.path, ref="no-such-branch")


def test_unknown_names_and_versions(repo: Repo) -> None:
    three_versions(repo)
    reg = PromptRegistry.from_git(repo.path)
    with pytest.raises(PromptNotFound) as ei:
        reg.get("nope")
    assert ei.value.status == 404 and ei.value.param == "prompt.id"
    with pytest.raises(PromptNotFound) as ei:
        reg.get("greet", "deadbeef0000")
    assert ei.value.param == "prompt.version"
    assert not isinstance(ei.value, HistoryUnavailable)


def test_bare_clone_reads_everything(repo: Repo, tmp_path: Path) -> None:
    commits = three_versions(repo)
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    reg = PromptRegistry.from_git(bare)
    assert [h.commit for h in reg.history("greet")] == commits[::-1]
    assert text(reg, "greet", reg.history("greet")[-1].version) == "Hello W"


def test_shallow_clone_gives_a_clear_error_for_missing_history(repo: Repo, tmp_path: Path) -> None:
    three_versions(repo)
    full = PromptRegistry.from_git(repo.path)
    oldest = full.history("greet")[-1].version
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(shallow)], check=True
    )
    reg = PromptRegistry.from_git(shallow)
    assert reg.shallow
    assert text(reg, "greet") == "Hey W!"
    assert len(reg.history("greet")) == 1
    with pytest.raises(HistoryUnavailable, match="shallow clone") as ei:
        reg.get("greet", oldest)
    assert ei.value.status == 404
    with pytest.raises(HistoryUnavailable, match="shallow"):
        reg.version_at("greet", full.history("greet")[-1].commit or "")


def test_labels_pin_versions_and_fall_back_to_production(repo: Repo) -> None:
    three_versions(repo)
    hist = PromptRegistry.from_git(repo.path).history("greet")
    repo.write("prompts/labels.yaml", f"labels:\n  staging:\n    greet: {hist[2].version}\n")
    repo.commit("stage the first greet")
    reg = PromptRegistry.from_git(repo.path)
    assert "labels" not in reg.names()  # the labels file is not a template
    assert text(reg, "greet", "staging") == "Hello W"
    assert text(reg, "greet", "production") == "Hey W!"
    assert text(reg, "other", "staging") == "Other W"  # not staged: production
    assert reg.labels == {"staging": {"greet": hist[2].version}}
    with pytest.raises(PromptNotFound):
        reg.get("greet", "nonexistent-label")


def test_canary_weight_splits_production_traffic_sticky_per_user(repo: Repo) -> None:
    three_versions(repo)
    hist = PromptRegistry.from_git(repo.path).history("greet")
    repo.write(
        "prompts/labels.yaml",
        f"labels:\n  canary:\n    greet: {{version: {hist[1].version}, weight: 0.2}}\n",
    )
    repo.commit("canary 20%")
    reg = PromptRegistry.from_git(repo.path)
    n = 20_000
    picks = [reg.get("greet", user=f"user-{i}").version for i in range(n)]
    share = picks.count(hist[1].version) / n
    assert abs(share - 0.2) < 0.015, share
    assert set(picks) == {hist[0].version, hist[1].version}
    # sticky: the same user always gets the same arm
    for i in range(200):
        assert reg.get("greet", user=f"user-{i}").version == picks[i]
    # without a user the split still holds (random, not sticky)
    anon = [reg.get("greet").version for _ in range(n)]
    assert abs(anon.count(hist[1].version) / n - 0.2) < 0.02
    # naming the label always gets the canary; other prompts are untouched
    assert all(reg.get("greet", "canary", user=f"u{i}").version == hist[1].version
               for i in range(100))  # fmt: skip
    assert reg.weights("greet") == pytest.approx({"canary": 0.2})
    assert reg.weights("other") == {}


def test_two_weighted_labels_share_traffic(repo: Repo) -> None:
    three_versions(repo)
    hist = PromptRegistry.from_git(repo.path).history("greet")
    repo.write(
        "prompts/labels.yaml",
        f"""\
        labels:
          arm-a: {{greet: {{version: {hist[1].version}, weight: 0.25}}}}
          arm-b: {{greet: {{version: {hist[2].version}, weight: 0.25}}}}
        """,
    )
    repo.commit("two arms")
    reg = PromptRegistry.from_git(repo.path)
    n = 20_000
    picks = [reg.get("greet", user=str(i)).version for i in range(n)]
    for v, want in ((hist[0].version, 0.5), (hist[1].version, 0.25), (hist[2].version, 0.25)):
        assert abs(picks.count(v) / n - want) < 0.015


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ("labels:\n  production: {greet: abcd}\n", "reserved"),
        ("labels:\n  staging: {nope: abcdef}\n", "unknown prompt"),
        ("labels:\n  staging: {greet: ffffffffffff}\n", "not in the history"),
        (
            "labels:\n  x: {greet: {version: VV, weight: 0.7}}\n"
            "  y: {greet: {version: VV, weight: 0.7}}\n",
            "more than 1",
        ),
        ("labels:\n  staging: {greet: {version: VV, weight: 2}}\n", "less than or equal"),
        ("labels: [\n", "YAML"),
        ("labels:\n  cafe: {greet: VV}\n", "looks like a version id"),
    ],
)
def test_bad_labels_file_is_refused(repo: Repo, labels: str, problem: str) -> None:
    three_versions(repo)
    v = PromptRegistry.from_git(repo.path).get("greet").version
    repo.write("prompts/labels.yaml", labels.replace("VV", v))
    repo.commit("bad labels")
    with pytest.raises(InvalidTemplate) as ei:
        PromptRegistry.from_git(repo.path)
    assert "prompts/labels.yaml" in ei.value.errors
    assert problem in ei.value.errors["prompts/labels.yaml"]


def test_label_to_old_version_in_shallow_clone_fails_only_when_used(
    repo: Repo, tmp_path: Path
) -> None:
    three_versions(repo)
    old = PromptRegistry.from_git(repo.path).history("greet")[-1].version
    repo.write("prompts/labels.yaml", f"labels:\n  staging: {{greet: {old}}}\n")
    repo.commit("stage old")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(shallow)], check=True
    )
    reg = PromptRegistry.from_git(shallow)
    assert text(reg, "greet") == "Hey W!"
    with pytest.raises(HistoryUnavailable, match="staging"):
        reg.get("greet", "staging")


def test_invalid_template_at_ref_is_refused_old_invalid_versions_skipped(repo: Repo) -> None:
    repo.write("prompts/greet.yaml", "name: greet\nmessages: [{role: user, content: '{{ x'}]\n")
    repo.commit("broken")
    repo.prompt("greet", "fixed {{ who }}")
    repo.commit("fixed")
    reg = PromptRegistry.from_git(repo.path)
    assert [h.message for h in reg.history("greet")] == ["fixed"]
    assert any("broken" not in w and "greet.yaml" in w for w in reg.warnings)
    repo.write("prompts/bad.yaml", "name: bad\nmessages: nope\n")
    repo.write("prompts/labels2.yaml", "name: wrong-name\nmessages: [{role: user, content: x}]\n")
    repo.commit("two broken")
    with pytest.raises(InvalidTemplate) as ei:
        PromptRegistry.from_git(repo.path)
    assert set(ei.value.errors) == {"prompts/bad.yaml", "prompts/labels2.yaml"}


def test_deleted_prompt_disappears_and_readded_keeps_history(repo: Repo) -> None:
    repo.prompt("greet", "A {{ who }}")
    repo.prompt("other")
    repo.commit("add")
    (repo.path / "prompts/greet.yaml").unlink()
    repo.commit("remove")
    reg = PromptRegistry.from_git(repo.path)
    assert reg.names() == ["other"]
    repo.prompt("greet", "B {{ who }}")
    repo.commit("re-add")
    reg = PromptRegistry.from_git(repo.path)
    assert [h.message for h in reg.history("greet")] == ["re-add", "add"]


def test_prompts_at_repository_root(tmp_path: Path) -> None:
    r = Repo(tmp_path / "own")
    r.write("summ.yaml", "name: summ\nmessages: [{role: user, content: hi}]\n")
    r.write("sub/ignored.yaml", "not: a template\n")
    r.commit("mine")
    reg = PromptRegistry.from_git(r.path, prompts_dir=".")
    assert reg.names() == ["summ"]
    assert len(reg.history("summ")) == 1


def test_from_directory_without_git(tmp_path: Path) -> None:
    d = tmp_path / "plain"
    d.mkdir()
    (d / "a.yaml").write_text("name: a\nmessages: [{role: user, content: hi}]\n")
    reg = PromptRegistry.from_directory(d)
    assert reg.names() == ["a"] and not reg.has_history
    assert reg.get("a").commit is None
    with pytest.raises(HistoryUnavailable, match="no git history"):
        reg.get("a", "0123456789ab")


def test_from_directory_sees_uncommitted_edits_on_top_of_history(repo: Repo) -> None:
    three_versions(repo)
    repo.prompt("greet", "Draft {{ who }}")
    reg = PromptRegistry.from_directory(repo.path / "prompts")
    assert text(reg, "greet") == "Draft W"
    assert reg.get("greet").commit is None
    hist = reg.history("greet")
    assert len(hist) == 4 and hist[0].message == "working tree"
    assert text(reg, "greet", hist[-1].version) == "Hello W"


def test_previous_registry_cache_is_reused(repo: Repo) -> None:
    three_versions(repo)
    first = PromptRegistry.from_git(repo.path)
    repo.prompt("other", "changed {{ who }}")
    repo.commit("change other")
    second = PromptRegistry.from_git(repo.path, previous=first)
    # unchanged blobs keep the very same template object (no re-parse, no re-compile)
    assert second.get("greet").template is first.get("greet").template
    assert text(second, "other") == "changed W"
