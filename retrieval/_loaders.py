"""Turn files into documents made of heading-delimited sections. One loader per format; each
raises `LoaderError` for input it cannot read so the ingest run reports it and moves on."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import LoaderError


@dataclass(slots=True)
class Section:
    headings: list[str]
    text: str
    page: int | None = None


@dataclass(slots=True)
class Document:
    title: str
    doc_type: str
    sections: list[Section] = field(default_factory=list)


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise LoaderError("binary file (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoaderError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _split_by_headings(lines: list[str], heads: list[tuple[int, int, int, str]]) -> list[Section]:
    """heads: (first line, line after the heading markup, level, title), in order."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    first = heads[0][0] if heads else len(lines)
    pre = "\n".join(lines[:first]).strip()
    if pre:
        sections.append(Section([], pre))
    for i, (_start, body, level, title) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(lines)
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        text = "\n".join(lines[body:end]).strip()
        if text:
            sections.append(Section([t for _, t in stack], text))
    return sections


def _title(sections: list[Section], path: Path) -> str:
    for s in sections:
        if s.headings:
            return s.headings[0]
    return path.stem


def load_markdown(data: bytes, path: Path) -> Document:
    from markdown_it import MarkdownIt

    text = _decode(data)
    lines = text.splitlines()
    tokens = MarkdownIt("commonmark").parse(text)
    heads: list[tuple[int, int, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map:
            title = tokens[i + 1].content.strip() if i + 1 < len(tokens) else ""
            heads.append((tok.map[0], tok.map[1], int(tok.tag[1]), title))
    sections = _split_by_headings(lines, heads)
    return Document(_title(sections, path), "markdown", sections)


_RST_LABEL = re.compile(r"^\.\. _[^:]+:\s*$")  # link targets: markup, not content
_RST_ADORN = re.compile(r"^([!-/:-@\[-`{-~])\1{2,}\s*$")


def load_rst(data: bytes, path: Path) -> Document:
    """Section titles are a text line underlined (optionally also overlined) by a run of one
    punctuation character; levels follow the order in which adornment styles first appear,
    as in docutils. Directives and roles stay as written: they read fine as text."""
    text = _decode(data)
    lines = [ln for ln in text.splitlines() if not _RST_LABEL.match(ln)]
    styles: list[tuple[str, bool]] = []
    heads: list[tuple[int, int, int, str]] = []
    i = 0
    while i < len(lines) - 1:
        line, nxt = lines[i], lines[i + 1]
        over = bool(_RST_ADORN.match(line))
        if over and i + 2 < len(lines) and _RST_ADORN.match(lines[i + 2]) and nxt.strip():
            if lines[i + 2].strip()[0] == line.strip()[0] and not _RST_ADORN.match(nxt):
                style, title, start, body = (line.strip()[0], True), nxt.strip(), i, i + 3
            else:
                i += 1
                continue
        elif (
            line.strip()
            and not line[0].isspace()
            and not over
            and _RST_ADORN.match(nxt)
            and len(nxt.rstrip()) >= len(line.rstrip())
            and (i == 0 or not lines[i - 1].strip())
        ):
            style, title, start, body = (nxt.strip()[0], False), line.strip(), i, i + 2
        else:
            i += 1
            continue
        if style not in styles:
            styles.append(style)
        heads.append((start, body, styles.index(style) + 1, title))
        i = body
    sections = _split_by_headings(lines, heads)
    return Document(_title(sections, path), "rst", sections)


def load_text(data: bytes, path: Path) -> Document:
    text = _decode(data).strip()
    return Document(path.stem, "text", [Section([], text)] if text else [])


_BLOCK_TAGS = "p div li pre br tr td th dd dt blockquote section article table ul ol dl".split()


def load_html(data: bytes, path: Path) -> Document:
    from bs4 import BeautifulSoup, NavigableString

    soup = BeautifulSoup(_decode(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav"]):
        tag.decompose()
    title_tag = soup.find("title")
    page_title = title_tag.get_text(" ", strip=True) if title_tag else ""
    if title_tag:
        title_tag.decompose()
    marker = "\u2e3bHEADING\u2e3b"
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        heading = " ".join(tag.get_text(" ", strip=True).split())
        tag.replace_with(NavigableString(f"\n{marker}{tag.name[1]}{heading}\n"))
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.append(NavigableString("\n"))
    body = soup.body or soup
    lines = [ln.rstrip() for ln in body.get_text().splitlines()]
    heads: list[tuple[int, int, int, str]] = []
    for i, ln in enumerate(lines):
        if ln.startswith(marker):
            rest = ln[len(marker) :]
            heads.append((i, i + 1, int(rest[0]), rest[1:].strip()))
    collapsed = [ln if ln.strip() else "" for ln in lines]
    sections = _split_by_headings(collapsed, heads)
    for s in sections:
        s.text = re.sub(r"\n{3,}", "\n\n", s.text)
    return Document(page_title or _title(sections, path), "html", sections)


def load_pdf(data: bytes, path: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
        sections = []
        for n, page in enumerate(reader.pages, start=1):
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section([], text, page=n))
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoaderError(f"malformed PDF: {exc}") from exc
    return Document(str(meta_title).strip() or path.stem, "pdf", sections)


LOADERS: dict[str, Callable[[bytes, Path], Document]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".rst": load_rst,
    ".txt": load_text,
    ".text": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
}
SUPPORTED_SUFFIXES = frozenset(LOADERS)


def load_document(path: Path, data: bytes) -> Document:
    """Pick a loader by suffix; unknown suffixes are read as plain text (when they decode)."""
    name = path.name.lower()
    loader = load_rst if name.endswith(".rst.txt") else LOADERS.get(path.suffix.lower(), load_text)
    if loader is not load_pdf and data.startswith(b"%PDF-"):
        loader = load_pdf
    return loader(data, path)
