from __future__ import annotations

import pytest

from nanoserve.rag.chunking import chunk_document, embedding_text, split_long
from nanoserve.rag.documents import Block, ParsedDocument, parse_markdown


def doc(*blocks: Block, title: str = "Guide") -> ParsedDocument:
    return ParsedDocument(title, list(blocks))


def H(text: str, level: int = 2) -> Block:
    return Block("heading", text, level)


def P(text: str) -> Block:
    return Block("paragraph", text)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # (section, text) per chunk
        (doc(P("intro")), [("", "intro")]),
        (doc(H("A"), P("one"), P("two")), [("A", "one\n\ntwo")]),
        # a heading always starts a new chunk, even after a tiny section
        (doc(H("A"), P("a"), H("B"), P("b")), [("A", "a"), ("B", "b")]),
        # nested headings make a path; a sibling heading replaces the deeper one
        (
            doc(H("Install", 2), H("Linux", 3), P("apt"), H("Mac", 3), P("brew"), H("Use", 2), P("run")),
            [("Install > Linux", "apt"), ("Install > Mac", "brew"), ("Use", "run")],
        ),
        # the document's own H1 is its title, not part of the section path
        (doc(H("Guide", 1), P("x"), H("Part", 2), P("y")), [("", "x"), ("Part", "y")]),
        # a heading with no body produces no chunk
        (doc(H("Empty"), H("Full"), P("z")), [("Full", "z")]),
    ],
)
def test_chunk_sections(document: ParsedDocument, expected: list[tuple[str, str]]) -> None:
    chunks = chunk_document(document, max_chars=200, min_chars=0)
    assert [(c.section, c.text) for c in chunks] == expected
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_offsets_point_into_document_text() -> None:
    long = " ".join(f"Sentence number {i} is here." for i in range(60))
    d = doc(H("A"), P("short one"), P(long), H("B"), P("tail"))
    text = d.text
    chunks = chunk_document(d, max_chars=300, min_chars=0)
    assert len(chunks) > 4
    for c in chunks:
        assert len(c.text) <= 300 or "\n\n" in c.text
        first = c.text.split("\n\n")[0]
        assert text[c.start : c.start + len(first)] == first


def test_paragraphs_pack_up_to_max_chars() -> None:
    paras = [P("x" * 90) for _ in range(5)]
    chunks = chunk_document(doc(H("A"), *paras), max_chars=200, min_chars=0)
    assert [c.text.count("x") for c in chunks] == [180, 180, 90]


def test_min_chars_absorbs_a_following_paragraph() -> None:
    chunks = chunk_document(doc(H("A"), P("tiny"), P("y" * 190)), max_chars=200, min_chars=50)
    assert len(chunks) == 1


@pytest.mark.parametrize(
    ("text", "max_chars", "pieces"),
    [
        ("short", 50, ["short"]),
        ("One two. Three four. Five six.", 20, ["One two. Three four.", "Five six."]),
        ("One two. Three four. Five six.", 12, ["One two.", "Three four.", "Five six."]),
        ("aaaa bbbb cccc dddd", 9, ["aaaa bbbb", "cccc dddd"]),
        ("x" * 25, 10, ["x" * 10, "x" * 10, "x" * 5]),
    ],
)
def test_split_long(text: str, max_chars: int, pieces: list[str]) -> None:
    assert split_long(text, max_chars) == pieces


@pytest.mark.parametrize(
    ("title", "section", "text", "expected"),
    [
        ("Tea", "Water", "Use 80C.", "Tea > Water\nUse 80C."),
        ("Tea", "", "Intro.", "Tea\nIntro."),
        ("", "", "Bare.", "Bare."),
    ],
)
def test_embedding_text_carries_title_and_section(title: str, section: str, text: str, expected: str) -> None:
    assert embedding_text(title, section, text) == expected


def test_markdown_structure() -> None:
    md = "---\nlayout: x\n---\n# Title\n\nIntro line\ncontinued.\n\nSetext\n------\n\n```\ncode\n\nmore\n```\n\n### Deep ###\ntext"
    parsed = parse_markdown(md, "fallback")
    assert parsed.title == "Title"
    assert [(b.kind, b.text, b.level) for b in parsed.blocks] == [
        ("heading", "Title", 1),
        ("paragraph", "Intro line continued.", 0),
        ("heading", "Setext", 2),
        ("code", "code\n\nmore", 0),
        ("heading", "Deep", 3),
        ("paragraph", "text", 0),
    ]


def test_max_chars_must_be_sensible() -> None:
    with pytest.raises(ValueError):
        chunk_document(doc(P("x")), max_chars=10)
