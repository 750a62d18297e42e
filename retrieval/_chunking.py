"""Cut a document into chunks that fit the embedding model: sections (headings) first, then
sentences packed up to the token budget, with a tail of the previous chunk as overlap.
Tokens are counted with the model's own tokenizer so nothing is silently truncated."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._loaders import Document

TokenCounter = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+|\n(?=\s*[-*+•]|\s*\d+[.)]\s)|\n{2,}")


@dataclass(slots=True)
class Chunk:
    text: str
    """The chunk as shown to readers and to prompts."""
    embed_text: str
    """What the models see: title and heading path prepended, for context."""
    headings: list[str]
    position: int
    page: int | None


@dataclass(slots=True)
class _Piece:
    text: str
    sep: str
    tokens: int


def _split_long(text: str, budget: int, count: TokenCounter) -> list[str]:
    """Split one over-long sentence by words into parts that each fit the budget."""
    words = text.split(" ")
    counts = count(words)
    parts: list[str] = []
    cur: list[str] = []
    used = 0
    for word, n in zip(words, counts, strict=True):
        if cur and used + n > budget:
            parts.append(" ".join(cur))
            cur, used = [], 0
        if n > budget:  # one giant "word" (base64, minified code): cut by characters
            step = max(1, len(word) * budget // (n + 1))
            parts.extend(word[i : i + step] for i in range(0, len(word), step))
            continue
        cur.append(word)
        used += n
    if cur:
        parts.append(" ".join(cur))
    return parts


def _pieces(text: str, budget: int, count: TokenCounter) -> list[_Piece]:
    raw: list[tuple[str, str]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        piece = text[pos : m.start()]
        if piece.strip():
            raw.append((piece.strip(), "\n\n" if "\n\n" in m.group(0) else " "))
        pos = m.end()
    if text[pos:].strip():
        raw.append((text[pos:].strip(), " "))
    # separators belong in front of the next piece
    seps = [" "] + [s for _, s in raw[:-1]]
    counts = count([r for r, _ in raw])
    out: list[_Piece] = []
    for (piece, _), sep, n in zip(raw, seps, counts, strict=True):
        if n <= budget:
            out.append(_Piece(piece, sep, n))
        else:
            parts = _split_long(piece, budget, count)
            for j, (part, pn) in enumerate(zip(parts, count(parts), strict=True)):
                out.append(_Piece(part, sep if j == 0 else " ", pn))
    return out


def chunk_document(
    doc: Document, count: TokenCounter, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """Chunks never cross a section (heading) or page boundary; each fits `max_tokens`
    including its heading prefix; consecutive chunks of a section share up to
    `overlap_tokens` of text."""
    chunks: list[Chunk] = []
    for section in doc.sections:
        path = [doc.title, *[h for h in section.headings if h != doc.title]]
        if section.page is not None:
            path.append(f"page {section.page}")
        prefix = " > ".join(p for p in path if p)
        prefix_tokens = count([prefix])[0] + 1 if prefix else 0
        budget = max(8, max_tokens - prefix_tokens)
        overlap = min(overlap_tokens, budget // 2)
        pieces = _pieces(section.text, budget, count)
        cur: list[_Piece] = []
        used = 0

        def emit(group: list[_Piece], headings: list[str], page: int | None, pfx: str) -> None:
            text = "".join((p.sep if k else "") + p.text for k, p in enumerate(group)).strip()
            if text:
                chunks.append(
                    Chunk(text, f"{pfx}\n{text}" if pfx else text, headings, len(chunks), page)
                )

        for piece in pieces:
            if cur and used + piece.tokens > budget:
                emit(cur, section.headings, section.page, prefix)
                tail: list[_Piece] = []
                tail_used = 0
                for prev in reversed(cur[1:]):  # never carry the whole chunk over
                    if tail_used + prev.tokens > overlap:
                        break
                    tail.insert(0, prev)
                    tail_used += prev.tokens
                if tail_used + piece.tokens > budget:
                    tail, tail_used = [], 0
                cur, used = tail, tail_used
            cur.append(piece)
            used += piece.tokens
        if cur:
            emit(cur, section.headings, section.page, prefix)
    return chunks
