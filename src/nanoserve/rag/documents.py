"""Turn files and raw text into a ``ParsedDocument``: a title and a list of structural blocks.

Formats: plain text, Markdown, HTML and PDF. Each parser keeps the structure the chunker needs
(headings with their level, paragraphs, code blocks) and drops the rest (navigation, scripts,
style). Parsing is synchronous and CPU-bound: callers run it in a thread.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nanoserve.errors import BadRequest, UnsupportedFeature

Format = Literal["text", "markdown", "html", "pdf"]
BlockKind = Literal["heading", "paragraph", "code"]

FORMATS: tuple[Format, ...] = ("text", "markdown", "html", "pdf")
_SUFFIX_FORMAT: dict[str, Format] = {
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
}
_CONTENT_TYPE_FORMAT: dict[str, Format] = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}


@dataclass(slots=True)
class Block:
    kind: BlockKind
    text: str
    level: int = 0  # heading level (1 = top); 0 for other blocks


@dataclass(slots=True)
class ParsedDocument:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


def supported_suffixes() -> frozenset[str]:
    return frozenset(_SUFFIX_FORMAT)


def detect_format(name: str, content_type: str | None = None) -> Format:
    """The format of a document from its file name, else its content type, else plain text."""
    suffix = Path(name).suffix.lower()
    if suffix in _SUFFIX_FORMAT:
        return _SUFFIX_FORMAT[suffix]
    if content_type:
        base = content_type.split(";", 1)[0].strip().lower()
        if base in _CONTENT_TYPE_FORMAT:
            return _CONTENT_TYPE_FORMAT[base]
    return "text"


def parse_document(data: bytes | str, fmt: Format, *, name: str) -> ParsedDocument:
    """Parse ``data`` in format ``fmt``; ``name`` supplies the title when the document has none."""
    fallback_title = Path(name).stem or name
    if fmt == "pdf":
        if isinstance(data, str):
            raise BadRequest("a PDF must be uploaded as a file, not sent as text", param="format")
        return parse_pdf(data, fallback_title)
    text = data if isinstance(data, str) else _decode(data, name)
    if fmt == "markdown":
        return parse_markdown(text, fallback_title)
    if fmt == "html":
        return parse_html(text, fallback_title)
    if fmt == "text":
        return parse_text(text, fallback_title)
    raise UnsupportedFeature(f"unknown document format {fmt!r} (one of {', '.join(FORMATS)})", param="format")


def _decode(data: bytes, name: str) -> str:
    if b"\x00" in data[:4096]:
        raise BadRequest(f"{name}: looks like a binary file, not text", param="file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _clean(text: str) -> str:
    return re.sub(r"[ \t\r\f\v\u00a0]+", " ", text).strip()


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, lines inside a paragraph joined by spaces."""
    parts = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [p for p in (_clean(part.replace("\n", " ")) for part in parts) if p]


# --- plain text ---------------------------------------------------------------------------------


def parse_text(text: str, fallback_title: str) -> ParsedDocument:
    return ParsedDocument(fallback_title, [Block("paragraph", p) for p in _paragraphs(text)])


# --- Markdown -----------------------------------------------------------------------------------

_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^(```|~~~)")
_SETEXT = re.compile(r"^(=+|-+)\s*$")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def parse_markdown(text: str, fallback_title: str) -> ParsedDocument:
    """ATX and setext headings, fenced code kept whole, blank-line separated paragraphs."""
    lines = _FRONT_MATTER.sub("", text.replace("\r\n", "\n")).split("\n")
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            joined = _clean(" ".join(line.strip() for line in para))
            if joined:
                blocks.append(Block("paragraph", joined))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if fence := _FENCE.match(line.strip()):
            flush()
            marker, body = fence.group(1), []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            code = "\n".join(body).strip("\n")
            if code.strip():
                blocks.append(Block("code", code))
        elif heading := _ATX.match(line):
            flush()
            blocks.append(Block("heading", _clean(heading.group(2)), len(heading.group(1))))
        elif para and len(para) == 1 and _SETEXT.match(line) and para[0].strip():
            title = _clean(para[0])
            para.clear()
            blocks.append(Block("heading", title, 1 if line.strip().startswith("=") else 2))
        elif not line.strip():
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    title = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), fallback_title)
    return ParsedDocument(title, blocks)


# --- HTML ---------------------------------------------------------------------------------------

_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_SKIP = {
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
    "button", "select", "svg", "iframe", "head", "title", "meta", "link",
}  # fmt: skip
_INLINE = {
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark", "q",
    "s", "samp", "small", "span", "strong", "sub", "sup", "time", "tt", "u", "var", "wbr", "img",
    "del", "ins", "label",
}  # fmt: skip
# Navigation and chrome that documentation generators (Sphinx, MkDocs) put outside <nav>.
_CHROME_SELECTORS = (
    "a.headerlink", "div.sphinxsidebar", "div.related", "div.footer", "div.clearer",
    "div#searchbox", "div.mobile-nav", "[role=navigation]", "[role=search]",
)  # fmt: skip
_MAIN_SELECTORS = ("main", "[role=main]", "article", "div.body", "body")


def parse_html(text: str, fallback_title: str) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser

    check_html_nesting(text)
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    page_title = _clean(title_node.text()) if title_node is not None else ""
    for selector in _CHROME_SELECTORS:
        for node in tree.css(selector):
            node.decompose()
    root = next((n for s in _MAIN_SELECTORS if (n := tree.css_first(s)) is not None), tree.root)
    blocks: list[Block] = []
    if root is not None:
        _walk_html(root, blocks)
    h1 = next((b.text for b in blocks if b.kind == "heading" and b.level == 1), "")
    return ParsedDocument(h1 or page_title or fallback_title, blocks)


MAX_HTML_DEPTH = 256  # block elements inside each other; real pages stay far below
# Tags counted by the scan before parsing: the parser's tree building slows down with depth
# (50,000 nested <div>s took 3 s), so an absurd nesting is refused before the parser sees it.
# Elements whose end tag may be left out, and void ones, are not counted.
MAX_HTML_TAG_NESTING = 4 * MAX_HTML_DEPTH
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*?(/?)>")
_UNCOUNTED = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option", "optgroup",
    "rp", "rt", "colgroup", "caption", "html", "head", "body",
})  # fmt: skip


def check_html_nesting(text: str) -> None:
    """A 400 for HTML whose open tags nest deeper than ``MAX_HTML_TAG_NESTING`` (before parsing)."""
    depth = 0
    for match in _TAG.finditer(text):
        closing, tag, self_closing = match.groups()
        if self_closing or tag.lower() in _UNCOUNTED:
            continue
        if closing:
            depth = max(0, depth - 1)
            continue
        depth += 1
        if depth > MAX_HTML_TAG_NESTING:
            raise BadRequest(
                f"the HTML document nests elements more than {MAX_HTML_TAG_NESTING} deep", param="file"
            )


def _walk_html(root: object, blocks: list[Block]) -> None:
    """Blocks of the tree in document order. Iterative, with an explicit stack bounded by
    ``MAX_HTML_DEPTH``: a page nested 50,000 deep is a 400, not a ``RecursionError``."""
    # one frame per open block element: its children and the inline text gathered so far
    stack: list[tuple[Iterator[Any], list[str]]] = [(root.iter(include_text=True), [])]  # type: ignore[attr-defined]

    def flush(inline: list[str]) -> None:
        text = _clean("".join(inline).replace("\n", " "))  # text nodes carry their own spaces
        inline.clear()
        if text:
            blocks.append(Block("paragraph", text))

    while stack:
        children, inline = stack[-1]
        child = next(children, None)
        if child is None:
            flush(inline)
            stack.pop()
            continue
        tag = child.tag
        if tag == "-text":
            inline.append(child.text_content or "")
        elif tag in _SKIP or tag == "_comment" or tag == "-comment":
            continue
        elif tag in _INLINE:
            inline.append(child.text(deep=True, separator=""))
        elif tag == "br":
            inline.append("\n")
        elif tag in _HEADINGS:
            flush(inline)
            heading = _clean(child.text(deep=True, separator=" ").replace("\n", " "))
            if heading:
                blocks.append(Block("heading", heading, _HEADINGS[tag]))
        elif tag == "pre":
            flush(inline)
            code = child.text(deep=True, separator="").strip("\n")
            if code.strip():
                blocks.append(Block("code", code))
        else:
            flush(inline)
            if len(stack) >= MAX_HTML_DEPTH:
                raise BadRequest(
                    f"the HTML document nests elements more than {MAX_HTML_DEPTH} deep", param="file"
                )
            stack.append((child.iter(include_text=True), []))


# --- PDF ----------------------------------------------------------------------------------------


def parse_pdf(data: bytes, fallback_title: str) -> ParsedDocument:
    """Text of each page; a page is a section ("Page 3") so citations can name the page."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise BadRequest(f"cannot read PDF: {exc}", param="file") from exc
    blocks: list[Block] = []
    for number, page_text in enumerate(pages, start=1):
        paragraphs = _paragraphs(page_text)
        if paragraphs:
            blocks.append(Block("heading", f"Page {number}", 1))
            blocks.extend(Block("paragraph", p) for p in paragraphs)
    return ParsedDocument(_clean(str(meta_title)) or fallback_title, blocks)
