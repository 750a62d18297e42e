"""Filter parsing (OpenAI shapes and shorthand) and the file scan's refusal of paths that lead
outside the folders the user named."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import ComparisonFilter, CompoundFilter, InvalidFilterError, parse_filters
from retrieval._ingest import scan


def test_shorthand_becomes_and_of_eq_and_in() -> None:
    f = parse_filters({"source": "/a.md", "tags": ["x", "y"]})
    assert isinstance(f, CompoundFilter) and f.type == "and"
    assert f.filters == [
        ComparisonFilter(type="eq", key="source", value="/a.md"),
        ComparisonFilter(type="in", key="tags", value=["x", "y"]),
    ]
    assert parse_filters({}) is None and parse_filters(None) is None


def test_openai_compound_filter_nests() -> None:
    f = parse_filters(
        {
            "type": "or",
            "filters": [
                {"type": "eq", "key": "doc_type", "value": "pdf"},
                {"type": "and", "filters": [{"type": "lt", "key": "page", "value": 3}]},
            ],
        }
    )
    assert isinstance(f, CompoundFilter) and isinstance(f.filters[1], CompoundFilter)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "gt", "key": "position", "value": "high"},
        {"type": "in", "key": "tags", "value": "x"},
        {"type": "like", "key": "a", "value": "b"},
        {"type": "and", "filters": [{"type": "eq"}]},
    ],
)
def test_invalid_filters_are_refused(bad: dict) -> None:
    with pytest.raises(InvalidFilterError):
        parse_filters(bad)


def test_scan_refuses_links_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "keys.txt").write_text("do not index")
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# A\n\ntext")
    (root / "sub" / "b.rst").write_text("B\n=\n\ntext")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden.md").write_text("# hidden")
    (root / "leak.txt").symlink_to(outside / "keys.txt")
    (root / "leakdir").symlink_to(outside, target_is_directory=True)
    (root / "alias.md").symlink_to(root / "a.md")  # inside the root: same file, once
    (root / "dangling.md").symlink_to(tmp_path / "missing.md")
    files, skipped, ignored = scan([root, tmp_path / "nope"])
    assert sorted(f.name for f, _ in files) == ["a.md", "b.rst"]
    reasons = {Path(p).name: r for p, r in skipped}
    assert "outside" in reasons["leak.txt"] and "outside" in reasons["leakdir"]
    assert "does not exist" in reasons["nope"]
    assert "dangling.md" in reasons
    assert ignored == 1
    assert all(root.resolve() == r for _, r in files)
