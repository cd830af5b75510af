"""The query pipeline with fake models: answer modes, the gate, traces of failures, metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeModels
from prometheus_client import CollectorRegistry, generate_latest

from nanoserve.errors import NotFound, Unavailable
from nanoserve.rag.config import RagConfig
from nanoserve.rag.pipeline import NOT_IN_DOCUMENTS, answerable, build_messages, without_announcement
from nanoserve.rag.service import RagService
from nanoserve.rag.store.base import StoredChunk

DOC = "# Tea\n\n## Water\n\nUse water at 80 degrees for green tea.\n\n## Time\n\nSteep green tea for two minutes."
# the generation's own path (a quote answering the question well replaces it by default: see
# test_a_generated_answer_is_replaced_by_a_context_sentence_that_answers_better)
CONFIG = RagConfig(min_similarity=0.1, out_of_scope_similarity=0.1, prefer_quote_score=None)


async def service_with(tmp_path: Path, models: FakeModels, config: RagConfig = CONFIG) -> RagService:
    service = RagService(tmp_path, models.client(), config)
    await service.ingest("tea", "tea.md", DOC, "markdown")
    return service


async def test_grounded_generated_answer_is_kept(tmp_path: Path) -> None:
    models = FakeModels(reply="Use water at 80 degrees for green tea.")
    service = await service_with(tmp_path, models)
    outcome = await service.query("tea", "water degrees green tea", strategy="keyword")
    trace = outcome.trace
    assert trace.answer_mode == "generated" and trace.status == "ok"
    assert trace.answer == "Use water at 80 degrees for green tea [1]."
    assert [c["document"] for c in outcome.citations] == ["tea.md"]
    prompt = models.chat_calls[0][-1]["content"]
    assert (
        "[1] (Tea > Water) Use water at 80 degrees" in prompt
        and "Question: water degrees green tea" in prompt
    )
    await service.aclose()


async def test_the_generation_stops_at_the_end_of_the_answer(tmp_path: Path) -> None:
    """The 135M model goes on past its one- or two-sentence answer until max_tokens (invented
    steps, the same sentence again): the generation stops at a blank line, so those tokens are
    not generated, and the ungrounded rest does not outweigh the answer (which it did: quoted)."""
    models = FakeModels(
        reply="Use water at 80 degrees for green tea.\n\nTea was invented on the moon in 3000 BC."
        "\n\nThe moon grows tea since 2000 BC."
    )
    service = await service_with(tmp_path, models)
    outcome = await service.query("tea", "water degrees green tea", strategy="keyword")
    assert models.chat_requests[0]["stop"] == ["\n\n"] and models.chat_requests[0]["max_tokens"] == 96
    assert outcome.trace.answer_mode == "generated"
    assert outcome.trace.answer == "Use water at 80 degrees for green tea [1]."
    await service.aclose()


async def test_an_answer_that_only_announces_what_follows_is_not_kept(tmp_path: Path) -> None:
    """Stopped at the blank line, "... as follows:" is all that is left of an answer whose list
    came after it: supported by a chunk, but not an answer, so the pipeline quotes the documents."""
    models = FakeModels(reply="Steep green tea as follows:\n\n1. Boil it for an hour.")
    service = await service_with(tmp_path, models)
    outcome = await service.query("tea", "how long for green tea", strategy="keyword")
    assert outcome.trace.generated == "Steep green tea as follows:"
    assert outcome.trace.answer_mode == "extractive"
    assert "Steep green tea for two minutes [" in (outcome.trace.answer or "")
    assert without_announcement("Use a kettle [1]. Here is how:") == "Use a kettle [1]."
    await service.aclose()


async def test_ungrounded_answer_falls_back_to_quoting(tmp_path: Path) -> None:
    service = await service_with(tmp_path, FakeModels(reply="Tea was invented on the moon in 3000 BC."))
    outcome = await service.query("tea", "how long to steep green tea", strategy="keyword")
    trace = outcome.trace
    assert trace.answer_mode == "extractive" and trace.generated == "Tea was invented on the moon in 3000 BC."
    assert "Steep green tea for two minutes [" in (trace.answer or "")
    assert outcome.citations and all(c["document"] == "tea.md" for c in outcome.citations)
    await service.aclose()


async def test_gate_refuses_without_calling_the_generation_model(tmp_path: Path) -> None:
    models = FakeModels()
    service = await service_with(tmp_path, models, RagConfig(min_similarity=0.99))
    outcome = await service.query("tea", "completely unrelated words here")
    assert outcome.trace.answer == NOT_IN_DOCUMENTS and outcome.trace.status == "refused"
    assert models.chat_calls == [] and outcome.citations == []
    assert "generate" not in outcome.timings_ms
    await service.aclose()


async def test_a_failed_query_is_traced_and_counted(tmp_path: Path) -> None:
    models = FakeModels()
    service = await service_with(tmp_path, models)
    models.fail_embed_call = models.embed_calls + 1
    with pytest.raises(Unavailable):
        await service.query("tea", "water")
    (metrics,) = await service.metrics("tea")
    assert (metrics["queries"], metrics["errors"], metrics["success_rate"]) == (1, 1, 0.0)
    with pytest.raises(NotFound):  # an unknown collection is not a query: no trace
        await service.query("nope", "water")
    assert [m["collection"] for m in await service.metrics()] == ["tea"]
    text = generate_latest(registry_with(service)).decode()
    assert 'nanoserve_rag_queries_total{collection="tea",status="error"} 1.0' in text
    await service.aclose()


async def test_prometheus_metrics_after_queries(tmp_path: Path) -> None:
    service = await service_with(tmp_path, FakeModels(reply="Use water at 80 degrees for green tea."))
    await service.query("tea", "water degrees", strategy="keyword")
    text = generate_latest(registry_with(service)).decode()
    assert 'nanoserve_rag_queries_total{collection="tea",status="ok"} 1.0' in text
    assert 'nanoserve_rag_query_latency_seconds_count{collection="tea"} 1.0' in text
    assert 'nanoserve_rag_quality{collection="tea",dimension="overall"}' in text
    assert 'nanoserve_rag_chunks_ingested_total{collection="tea"} 2.0' in text
    await service.aclose()


def registry_with(service: RagService) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(service.prometheus_collector())
    return registry


@pytest.mark.parametrize(
    ("intent", "best", "expected"),
    [
        ("lookup", 0.5, True),
        ("lookup", 0.29, False),
        ("out-of-scope", 0.5, True),
        ("out-of-scope", 0.4, False),
    ],
)
def test_answerable_gate(intent: str, best: float, expected: bool) -> None:
    assert answerable(intent, best, RagConfig(min_similarity=0.3, out_of_scope_similarity=0.45)) is expected


def test_prompt_fits_the_budget() -> None:
    chunk = StoredChunk(1, 1, "d.md", "d.md", "Doc", "Part", 0, "word " * 500, 0, 2500, 0.0, 0.0)
    messages = build_messages("q?", [chunk, chunk], budget_chars=1000)
    assert len(messages[-1]["content"]) < 1200 and messages[-1]["content"].count("[") == 2


async def test_generation_reranker_moves_the_judged_passage_first(tmp_path: Path) -> None:
    """With ``reranker: generation`` every candidate is judged by the generation model (a "yes"
    for the passage on steeping here) and the judged one leads the retrieval."""

    class Judge(FakeModels):
        def handler(self):  # type: ignore[no-untyped-def]
            inner = super().handler()

            def handle(request):  # type: ignore[no-untyped-def]
                content = request.content.decode()
                if "Reply with one word: yes or no" in content:
                    self.reply = "yes" if "Steep green tea" in content else "no"
                return inner(request)

            return handle

    config = CONFIG.model_copy(update={"reranker": "generation", "rerank_weight": 3.0})
    models = Judge()
    service = await service_with(tmp_path, models, config)
    retrieval, _ = await service.search("tea", "water degrees green tea", top_k=2, strategy="keyword")
    assert retrieval.chunks[0].chunk.section == "Time"
    assert len([c for c in models.chat_calls if "yes or no" in c[-1]["content"]]) == 2
    plain = await service_with(tmp_path / "plain", FakeModels(), CONFIG)
    retrieval, _ = await plain.search("tea", "water degrees green tea", top_k=2, strategy="keyword")
    assert retrieval.chunks[0].chunk.section == "Water"
    await service.aclose()
    await plain.aclose()


async def test_unsupported_sentences_are_removed_and_their_chunks_not_cited(tmp_path: Path) -> None:
    reply = (
        "Use water at 80 degrees for green tea [1]. Use water at 80 degrees for green tea [1]. "
        "Steep green tea for two minutes [2]. The ceremony was invented in 1192 by monks [2]."
    )
    service = await service_with(tmp_path, FakeModels(reply=reply))
    outcome = await service.query("tea", "water degrees green tea steep", strategy="keyword")
    trace = outcome.trace
    assert trace.answer_mode == "generated"
    assert "1192" not in (trace.answer or "") and (trace.answer or "").count("80 degrees") == 1
    cited = {c["n"]: c["text"] for c in outcome.citations}
    assert all(any(w in text for w in ("80 degrees", "two minutes")) for text in cited.values())
    await service.aclose()


async def test_a_question_about_a_name_the_documents_never_use_is_declined(tmp_path: Path) -> None:
    models = FakeModels(reply="Use water at 80 degrees for green tea.")
    service = await service_with(tmp_path, models)
    outcome = await service.query("tea", "What water temperature does a Samovar need for green tea?")
    assert outcome.trace.answer == NOT_IN_DOCUMENTS and outcome.trace.status == "refused"
    assert models.chat_calls == [] and outcome.citations == []
    asked = await service.query("tea", "What water temperature for green tea in the Tea guide?")
    assert asked.trace.answer_mode == "generated"
    await service.aclose()


async def test_a_generated_answer_is_replaced_by_a_context_sentence_that_answers_better() -> None:
    """``prefer_quote_score``: when a context sentence answers the question (its extractive score)
    at least that well, the answer is the quote, not the generation."""
    from nanoserve.rag.pipeline import settle_answer

    vecs = {
        "How do I delete untracked files?": [1.0, 0.0, 0.0],
        "git-clean removes untracked files from the working tree.": [0.95, 0.05, 0.0],
        "Use the git-status command to show untracked files.": [0.3, 0.0, 0.95],
        "Use the git-status command to delete untracked files.": [0.3, 0.0, 0.95],
    }

    async def embed(texts):  # type: ignore[no-untyped-def]
        return [vecs[t] for t in texts]

    query = "How do I delete untracked files?"
    contexts = [
        "git-clean removes untracked files from the working tree.",
        "Use the git-status command to show untracked files.",
    ]
    generated = "Use the git-status command to delete untracked files."
    off = RagConfig(prefer_quote_score=None)
    mode, cited = await settle_answer(query, vecs[query], generated, contexts, embed, off)
    assert mode == "generated" and cited is not None
    assert [c.context_index for c in cited.citations] == [1]
    config = RagConfig()  # the default, prefer_quote_score 0.8
    mode, cited = await settle_answer(query, vecs[query], generated, contexts, embed, config)
    assert mode == "extractive" and cited is not None and 0 in {c.context_index for c in cited.citations}
    high = RagConfig(prefer_quote_score=2.0)  # no sentence answers that well: the generation stays
    assert (await settle_answer(query, vecs[query], generated, contexts, embed, high))[0] == "generated"
