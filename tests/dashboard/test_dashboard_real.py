"""The dashboard with the real default models: a playground message streams an answer, an
uploaded document gets a cited answer."""

from __future__ import annotations

from typing import Any

import pytest
from browser import watched_page
from gateway import Gateway

DOC = (
    "# The Moonfield lighthouse\n\n"
    "The Moonfield lighthouse was built in 1887 on the northern cape. Its keeper, Ada Brennan, "
    "lit the lamp every night for forty-one years. The light can be seen from twenty-two miles "
    "away and flashes green every nine seconds.\n"
)


def test_playground_streams_an_answer(real_gateway: Gateway, context: Any) -> None:
    w = watched_page(context)
    w.page.goto(real_gateway.url + "/ui#/playground")
    w.page.wait_for_selector("#pg-model option[value='smollm2:135m']", state="attached")
    w.page.fill("#pg-max-tokens", "24")
    w.page.fill("#pg-input", "Say hello in one short sentence.")
    w.page.click("#pg-send")
    w.page.wait_for_selector("#pg-send >> text=Stop")  # streaming: the button stops it
    w.page.wait_for_selector(".msg.assistant[data-done='1']", timeout=120_000)
    answer = w.page.inner_text(".msg.assistant .answer")
    meta = w.page.inner_text(".msg.assistant .meta")
    assert answer.strip(), meta
    assert "first token" in meta and "tok/s" in meta and "error" not in meta
    # the embeddings check: a sentence is closer to its paraphrase than to nonsense
    w.page.click("#pg-compare")
    w.page.wait_for_selector("#pg-cosine", timeout=120_000)
    close = float(w.page.inner_text("#pg-cosine"))
    w.page.fill("#pg-b", "Quarterly tax filings are due in April.")
    w.page.click("#pg-compare")
    w.page.wait_for_function(f"document.querySelector('#pg-cosine').textContent !== '{close:.3f}'")
    assert float(w.page.inner_text("#pg-cosine")) < close
    assert w.errors == [] and w.external == []


@pytest.mark.slow  # ~1-2 min: embedding, then generation with citations, on 2 shared cores
def test_upload_a_document_and_get_a_cited_answer(real_gateway: Gateway, context: Any, tmp_path: Any) -> None:
    path = tmp_path / "moonfield.md"
    path.write_text(DOC)
    w = watched_page(context)
    w.page.goto(real_gateway.url + "/ui#/documents")
    w.page.fill("#doc-collection", "dashboard-test")
    w.page.set_input_files("#doc-file", str(path))
    w.page.click("#doc-upload")
    w.page.wait_for_selector("#doc-upload-log >> text=moonfield.md: created", timeout=120_000)
    assert w.page.evaluate("document.querySelector('.progress span').style.width") == "100%"
    w.page.wait_for_selector("#collections >> text=dashboard-test")
    w.page.fill("#doc-question", "Who was the keeper of the Moonfield lighthouse?")
    w.page.click("#doc-ask")
    w.page.wait_for_selector("#doc-answer .cite, #doc-answer .err", timeout=240_000)
    assert w.page.locator("#doc-answer .err").count() == 0, w.page.inner_text("#doc-answer")
    assert "moonfield.md" in w.page.inner_text("#doc-answer .cite")
    assert "Brennan" in w.page.inner_text("#doc-answer")
    w.page.click("#doc-answer button:has-text('Trace')")
    w.page.wait_for_selector("#doc-trace-body")
    assert "moonfield.md" in w.page.inner_text("#doc-trace-body")
    w.page.click("#doc-good")
    w.page.wait_for_selector("#doc-values >> text=moonfield.md")
    assert w.errors == [] and w.external == []
