from __future__ import annotations

import pytest
from pdfmaker import make_pdf

from nanoserve.errors import BadRequest
from nanoserve.rag.documents import detect_format, parse_document, parse_html, parse_text


@pytest.mark.parametrize(
    ("name", "content_type", "fmt"),
    [
        ("a.md", None, "markdown"),
        ("A.MARKDOWN", None, "markdown"),
        ("page.htm", None, "html"),
        ("doc.pdf", "text/plain", "pdf"),  # the name wins
        ("upload", "application/pdf", "pdf"),
        ("upload", "text/html; charset=utf-8", "html"),
        ("notes.rst", None, "text"),
        ("unknown.bin", None, "text"),
    ],
)
def test_detect_format(name: str, content_type: str | None, fmt: str) -> None:
    assert detect_format(name, content_type) == fmt


def test_html_keeps_structure_and_drops_chrome() -> None:
    html = """<html><head><title>Page - Site</title><script>var x = 1;</script></head><body>
    <nav>Home | About</nav><div class="sphinxsidebar">Table of contents</div>
    <div role="main"><h1>Guide<a class="headerlink" href="#g">¶</a></h1>
    <p>The module is called <code>venv</code>. Run <b>it</b>.</p>
    <h2>Install</h2><ul><li>Step <em>one</em></li><li>Step two</li></ul>
    <pre>python -m venv env
source env/bin/activate</pre><table><tr><td>cell a</td><td>cell b</td></tr></table></div>
    <footer>Copyright</footer></body></html>"""
    doc = parse_html(html, "fallback")
    assert doc.title == "Guide"
    assert [(b.kind, b.text, b.level) for b in doc.blocks] == [
        ("heading", "Guide", 1),
        ("paragraph", "The module is called venv. Run it.", 0),
        ("heading", "Install", 2),
        ("paragraph", "Step one", 0),
        ("paragraph", "Step two", 0),
        ("code", "python -m venv env\nsource env/bin/activate", 0),
        ("paragraph", "cell a", 0),
        ("paragraph", "cell b", 0),
    ]
    assert "Copyright" not in doc.text and "var x" not in doc.text and "Home" not in doc.text


def test_html_title_falls_back_to_title_tag_then_name() -> None:
    assert parse_html("<title>T</title><p>x</p>", "f").title == "T"
    assert parse_html("<p>x</p>", "f").title == "f"


def test_pdf_pages_become_sections() -> None:
    pdf = make_pdf(
        [["First page line one", "line two", "", "Second paragraph"], ["Other page"]], title="Manual"
    )
    doc = parse_document(pdf, "pdf", name="m.pdf")
    assert doc.title == "Manual"
    assert doc.blocks[0].text == "Page 1" and doc.blocks[1].text.startswith("First page line one line two")
    assert ("heading", "Page 2") in [(b.kind, b.text) for b in doc.blocks]


def test_text_paragraphs_and_binary_rejection() -> None:
    assert [b.text for b in parse_text("a\nb\n\n\nc", "t").blocks] == ["a b", "c"]
    with pytest.raises(BadRequest):
        parse_document(b"\x00\x01binary", "text", name="x.txt")
    with pytest.raises(BadRequest):
        parse_document("text", "pdf", name="x.pdf")
    with pytest.raises(BadRequest):
        parse_document(b"%PDF-1.4 not really", "pdf", name="x.pdf")
    assert parse_document("caf\xe9".encode("latin-1"), "text", name="x.txt").text == "café"
