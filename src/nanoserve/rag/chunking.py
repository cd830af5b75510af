"""Structure-aware chunking (pure).

A chunk never spans two sections: headings start a new chunk, paragraphs of one section are packed
together up to ``max_chars``, and a paragraph longer than that is split at sentence boundaries
(then at word boundaries). Every chunk carries its section path ("Installing > On Linux") and its
character offsets in the document text (``ParsedDocument.text``), and ``embedding_text`` prefixes
the document title and section, so a short chunk ("Use ``--force``.") is still found by a query
about its topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nanoserve.rag.documents import Block, ParsedDocument

DEFAULT_MAX_CHARS = 800
DEFAULT_MIN_CHARS = 200
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z0-9\"'(\[`])")
SECTION_SEPARATOR = " > "


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    position: int  # 0-based order within the document
    text: str
    section: str  # heading path, "" before the first heading
    start: int  # character offsets in ParsedDocument.text
    end: int


def embedding_text(title: str, section: str, text: str) -> str:
    """What is embedded and keyword-indexed for a chunk: title and section give it context."""
    header = title if not section or section == title else f"{title}{SECTION_SEPARATOR}{section}"
    return f"{header}\n{text}" if header else text


def split_long(text: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars``: sentence boundaries first, then words, then characters."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        for part in _split_words(sentence, max_chars):
            if current and len(current) + 1 + len(part) > max_chars:
                pieces.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _split_words(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    out: list[str] = []
    current = ""
    for word in text.split(" "):
        while len(word) > max_chars:  # a "word" longer than a chunk (a URL, base64): cut it
            if current:
                out.append(current)
                current = ""
            out.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) > max_chars:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


def chunk_document(
    doc: ParsedDocument, *, max_chars: int = DEFAULT_MAX_CHARS, min_chars: int = DEFAULT_MIN_CHARS
) -> list[ChunkSpec]:
    """Chunks of ``doc`` in order. ``min_chars``: a chunk shorter than this takes the next
    paragraph of its section even past ``max_chars`` (up to 1.5x), so sections don't end in
    crumbs; sections are never merged."""
    if max_chars < 50:
        raise ValueError("max_chars must be at least 50")
    chunks: list[ChunkSpec] = []
    headings: list[tuple[int, str]] = []  # (level, text) stack
    section = ""
    pending: list[tuple[str, int, int]] = []  # (text, start, end) of the chunk being built
    offset = 0

    def emit() -> None:
        if pending:
            text = "\n\n".join(p[0] for p in pending)
            chunks.append(ChunkSpec(len(chunks), text, section, pending[0][1], pending[-1][2]))
            pending.clear()

    for i, block in enumerate(doc.blocks):
        start = offset
        offset += len(block.text) + (2 if i < len(doc.blocks) - 1 else 0)  # "\n\n" joins blocks
        if block.kind == "heading":
            emit()
            while headings and headings[-1][0] >= block.level:
                headings.pop()
            headings.append((block.level, block.text))
            section = _section_path(headings, doc.title)
            continue
        for piece, piece_start in _pieces(block, start, max_chars):
            size = sum(len(p[0]) + 2 for p in pending)
            fits = size + len(piece) <= max_chars or (
                size < min_chars and size + len(piece) <= max_chars * 1.5
            )
            if pending and not fits:
                emit()
            pending.append((piece, piece_start, piece_start + len(piece)))
    emit()
    return chunks


def _pieces(block: Block, start: int, max_chars: int) -> list[tuple[str, int]]:
    """A block's text split to fit a chunk, with each piece's offset (best effort for splits)."""
    parts = split_long(block.text, max_chars)
    if len(parts) == 1:
        return [(block.text, start)]
    out: list[tuple[str, int]] = []
    cursor = 0
    for part in parts:
        found = block.text.find(part[:40], cursor)
        pos = found if found >= 0 else cursor
        out.append((part, start + pos))
        cursor = pos + len(part)
    return out


def _section_path(headings: list[tuple[int, str]], title: str) -> str:
    names = [text for _, text in headings]
    if names and names[0] == title:  # the document's own H1 is its title, not a section
        names = names[1:]
    return SECTION_SEPARATOR.join(names)
