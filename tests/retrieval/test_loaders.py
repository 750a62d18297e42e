"""Loaders and chunking on real documents (Python docs reST) and the bad files."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from retrieval import LoaderError
from retrieval._chunking import chunk_document
from retrieval._loaders import load_document

from .conftest import FIXTURES


def _load(rel: str):
    p = FIXTURES / rel
    return load_document(p, p.read_bytes())


def test_rst_sections_follow_heading_levels() -> None:
    doc = _load("pydocs/howto/sorting.rst")
    assert doc.title == "Sorting HOW TO"
    paths = [s.headings for s in doc.sections]
    assert ["Sorting HOW TO", "Sorting Basics"] in paths
    assert ["Sorting HOW TO", "Key Functions"] in paths
    assert all(p[0] == "Sorting HOW TO" for p in paths)
    assert not any(".. _sortinghowto:" in s.text for s in doc.sections)


def test_rst_txt_suffix_is_rst(tmp_path: Path) -> None:
    p = tmp_path / "copy.rst.txt"
    p.write_bytes((FIXTURES / "pydocs/library/copy.rst").read_bytes())
    doc = load_document(p, p.read_bytes())
    assert doc.doc_type == "rst"
    assert doc.title.startswith(":mod:`copy`")


def test_markdown_headings_ignore_code_blocks() -> None:
    doc = _load("mixed/guide.md")
    assert doc.title == "Deployment guide"
    paths = [s.headings for s in doc.sections]
    assert ["Deployment guide", "Configuration", "Gateway keys"] in paths
    assert not any("not a heading" in h for p in paths for h in p)
    req = next(s for s in doc.sections if s.headings[-1] == "Requirements")
    assert "pip install llmops" in req.text


def test_html_sections_without_script_or_nav() -> None:
    doc = _load("mixed/faq.html")
    assert doc.title == "Frequently asked questions"
    assert [s.headings for s in doc.sections] == [["FAQ"], ["FAQ", "Billing"], ["FAQ", "Security"]]
    text = " ".join(s.text for s in doc.sections)
    assert "ignore me" not in text and "Home | Docs" not in text and "color:red" not in text
    assert "bank transfer or card" in text


def test_pdf_pages_and_title() -> None:
    doc = _load("mixed/manual.pdf")
    assert doc.title == "Espresso machine manual"
    assert [s.page for s in doc.sections] == [1, 2]
    assert "Backflush" in doc.sections[1].text


@pytest.mark.parametrize(
    ("name", "reason"),
    [("binary.txt", "binary"), ("latin1.txt", "UTF-8"), ("broken.pdf", "malformed PDF")],
)
def test_bad_files_raise_loader_error(name: str, reason: str) -> None:
    with pytest.raises(LoaderError, match=reason):
        _load(f"mixed/{name}")


def test_chunks_fit_the_model_and_overlap(embedder) -> None:
    doc = _load("pydocs/howto/sorting.rst")
    limit = 120
    chunks = chunk_document(doc, embedder.count_tokens, limit, 24)
    counts = embedder.count_tokens([c.embed_text for c in chunks])
    assert max(counts) <= limit
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.embed_text.startswith("Sorting HOW TO") for c in chunks)
    # consecutive chunks of one section share text (overlap)
    shared = 0
    for a, b in itertools.pairwise(chunks):
        if a.headings == b.headings and b.text[:40] in a.text:
            shared += 1
    assert shared >= 1
    whole = " ".join(s.text for s in doc.sections)
    assert "Decorate-Sort-Undecorate" in whole
    assert any("Decorate-Sort-Undecorate" in " > ".join(c.headings) for c in chunks)


def test_one_endless_sentence_is_split_to_fit(embedder) -> None:
    from retrieval._loaders import Document, Section

    words = " ".join(f"token{i}" for i in range(1500))
    doc = Document("t", "text", [Section([], words + " tail")])
    chunks = chunk_document(doc, embedder.count_tokens, 64, 8)
    assert len(chunks) > 10
    assert max(embedder.count_tokens([c.embed_text for c in chunks])) <= 64
    assert chunks[-1].text.endswith("tail")
