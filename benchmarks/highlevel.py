"""One stream through llama-cpp-python's high-level API: the single-stream baseline.

``Llama(n_threads=2).create_completion(stream=True)`` on a chat-formatted prompt, greedy, EOS
banned, a fixed number of tokens; the rate is decode only (first streamed token to last), the
figure a one-stream server is to be read against. Best and median of ``--runs`` prompts.

    python benchmarks/highlevel.py --model weights.q8_0.gguf --tokens 128 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "peers"))  # the peers' shared parts
from llamacpp_baseline import ban_tokens, disable_extra_bufts, eog_token_ids

PROMPTS = (
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "List some facts about the planet Mars.",
    "Describe a walk through a forest in autumn.",
    "What makes bread rise? Explain in detail.",
)


def chatml(text: str) -> str:
    """SmolLM2's chat format (ChatML), rendered by hand so the loop does no templating."""
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def stream_rate(llm, prompt: str, tokens: int, bias: dict[str, float]) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """(chunks streamed, decode tokens/s from the first chunk to the last)."""
    stamps = [
        time.perf_counter()
        for _ in llm.create_completion(
            chatml(prompt), max_tokens=tokens, temperature=0.0, stream=True, logit_bias=bias
        )
    ]
    return len(stamps), (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="GGUF file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3, help="prompts streamed, one after the other")
    parser.add_argument("--extra-bufts", action="store_true", help="leave llama.cpp's extra buffers on")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)

    import llama_cpp

    if not args.extra_bufts:
        disable_extra_bufts(llama_cpp)
    bias = ban_tokens(eog_token_ids(llama_cpp, args.model))
    llm = llama_cpp.Llama(
        model_path=str(args.model),
        n_ctx=2048,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    stream_rate(llm, PROMPTS[0], 8, bias)  # warm-up: first-call allocations
    runs = [stream_rate(llm, PROMPTS[i % len(PROMPTS)], args.tokens, bias) for i in range(args.runs)]
    rates = [rate for _, rate in runs]
    result = {
        "tool": "benchmarks/highlevel.py",
        "model": args.model.name,
        "threads": args.threads,
        "tokens": args.tokens,
        "chunks": [n for n, _ in runs],
        "tokens_per_second": rates,
        "best_tokens_per_second": max(rates),
        "median_tokens_per_second": statistics.median(rates),
        "extra_bufts": args.extra_bufts,
        "llama_cpp_python": llama_cpp.__version__,
    }
    print(
        f"high-level create_completion(stream=True), {args.model.name}, {args.threads} threads, "
        f"{args.tokens} tokens: best {max(rates):.1f} tok/s, median {statistics.median(rates):.1f}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
