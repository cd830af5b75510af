"""The sentence engine's ONNX Runtime backend: an export of the model made once, then served.

The export is the whole sentence-transformers pipeline (transformer, pooling, and normalisation
when the model has it) traced by ``torch.onnx.export`` with the batch and sequence axes dynamic:
its output is what ``SentenceTransformer.encode`` returns, from the same weights. It runs in a
subprocess (``python -m nanoserve.engines.sentence_onnx``), so the serving worker never imports
torch (~350 MiB less), and is written to a temporary file renamed into place: a crash or two
replicas starting at once never leave half a file under the final name. ``onnx-int8`` is the
fp32 export with the weights of its matrix products in blockwise int8 (``quantize_int8``).

Serving tokenizes with the model's ``tokenizer.json`` (the `tokenizers` library: the same fast
tokenizer sentence-transformers uses) and pads each forward pass to its longest text.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from nanoserve.errors import EngineError
from nanoserve.profiles.sentence import TOKENIZER_FILE, onnx_path

log = logging.getLogger(__name__)

OUTPUT = "sentence_embedding"
# A forward pass computes every text at its longest text's length: a pass takes the next text
# only while it is at least this share of that length. 32 chunks of an ingestion (37-253 tokens)
# in one pass were 1.45x their tokens; passes cut at 0.9 are 1.04x, for ~4 passes of 8 chunks
# (ORT's cost per pass is far below a pass of ~1000 tokens).
PASS_FILL = 0.9
EXPORT_TIMEOUT = 900.0


def ensure_onnx(
    directory: Path,
    backend: str,
    data_dir: Path,
    *,
    threads: int,
    converting: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> Path:
    """The ONNX file to serve for the model in ``directory``: cached, or exported now (inside
    ``converting()``: the engine's load phase; for ``onnx-int8`` the fp32 export and its
    quantization are one phase)."""
    target = onnx_path(directory, backend, data_dir)
    if target.exists():
        return target
    with converting():
        source = directory
        if backend == "onnx-int8":
            source = onnx_path(directory, "onnx", data_dir)
            if not source.exists():
                _export(directory, directory, source, "onnx", threads)
        _export(directory, source, target, backend, threads)
    return target


def _export(directory: Path, source: Path, target: Path, backend: str, threads: int) -> None:
    """Run this module's ``main`` in a subprocess: ``source`` to ``target`` as ``backend``."""
    log.info("exporting %s to ONNX (%s, one time) -> %s", directory.name, backend, target)
    started = time.perf_counter()
    command = [sys.executable, "-m", __name__, str(source), str(target), "--threads", str(threads)]
    if backend == "onnx-int8":
        command.append("--int8")
    try:
        done = subprocess.run(  # our own module, by our interpreter
            command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise EngineError(f"exporting {directory.name} to ONNX took over {EXPORT_TIMEOUT:.0f}s") from None
    if done.returncode != 0 or not target.exists():
        raise EngineError(f"exporting {directory.name} to ONNX failed: {done.stderr.strip()[-1500:]}")
    log.info("exported %s to ONNX in %.1f s", directory.name, time.perf_counter() - started)


def export(directory: Path, target: Path, *, threads: int) -> None:
    """Trace the sentence-transformers model in ``directory`` to ``target`` (fp32, atomically)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    # eager attention: the graph ONNX Runtime's BERT optimizer recognises and fuses (below)
    model = SentenceTransformer(
        str(directory), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
    ).eval()
    names = list(model.tokenizer.model_input_names)

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(dict(zip(names, inputs, strict=True)))[OUTPUT]

    sample = model.tokenizer(["a sample text to trace", "another"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with atomic_target(target) as tmp, torch.inference_mode():
        torch.onnx.export(
            Pipeline(),
            tuple(sample[n] for n in names),
            str(tmp),
            input_names=names,
            output_names=[OUTPUT],
            dynamic_axes={**axes, OUTPUT: {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed
        )
        fuse_bert(tmp, directory)


def fuse_bert(path: Path, directory: Path) -> None:
    """For a BERT model, ONNX Runtime's transformer optimizer in place: one fused Attention op per
    layer (the unfused graph keeps every layer's score tensors alive: 1.8x the activation memory
    at 32 x 256 tokens), fused embeddings, layer norms and GELU; the same vectors (1e-7)."""
    try:
        arch = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return
    if arch.get("model_type") != "bert":
        return
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(path),
        model_type="bert",
        num_heads=int(arch["num_attention_heads"]),
        hidden_size=int(arch["hidden_size"]),
    )
    fused.save_model_to_file(str(path))


INT8_BLOCK = 32  # input channels per weight scale


def quantize_int8(source: Path, target: Path) -> None:
    """``source`` with the weights of its matrix products in int8, in blocks of INT8_BLOCK input
    channels with a scale each (ONNX Runtime's ``MatMulNBits``, 8 bits, symmetric), computed
    with int8 activations quantized per block too (``accuracy_level`` 4: VNNI kernels).

    Per-block activation scales are the point: ONNX Runtime's dynamic quantization scales each
    activation tensor as a whole, and the outliers after GELU cost it a cosine of 0.98 to fp32
    (0.9997 here). The fused attention's QKV projection stays fp32, as do the embeddings."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.capi._pybind_state import quantize_matmul_8bits

    model = onnx.load(str(source))
    weights = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        matrix = np.ascontiguousarray(numpy_helper.to_array(weight), dtype=np.float32)
        k, n = matrix.shape
        blocks = -(-k // INT8_BLOCK)
        packed = np.zeros((n, blocks, INT8_BLOCK), dtype=np.uint8)
        scales = np.zeros((n, blocks), dtype=np.float32)
        unused_zero_points = np.zeros((n, blocks), dtype=np.uint8)  # symmetric: 128 implied
        quantize_matmul_8bits(packed, matrix, scales, unused_zero_points, INT8_BLOCK, n, k, True)
        model.graph.initializer.remove(weight)
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(packed, f"{weight.name}_q8"),
                numpy_helper.from_array(scales, f"{weight.name}_scales"),
            ]
        )
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], f"{weight.name}_q8", f"{weight.name}_scales"],
                list(node.output),
                name=f"{node.name}_q8",
                domain="com.microsoft",
                K=k,
                N=n,
                bits=8,
                block_size=INT8_BLOCK,
                accuracy_level=4,
            )
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with atomic_target(target) as tmp:
        onnx.save(model, str(tmp))


@contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed to it on success and removed either way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class OnnxEncoder:
    """Tokenize with ``tokenizer.json``, embed with an ONNX Runtime session."""

    def __init__(self, directory: Path, model_file: Path, *, threads: int, max_seq_length: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tokenizer_file = directory / TOKENIZER_FILE
        if not tokenizer_file.is_file():
            raise EngineError(f"backend onnx needs {TOKENIZER_FILE} in {directory}; use backend: torch")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_seq_length)
        self.tokenizer.no_padding()
        padding = self.tokenizer.padding or {}
        self.pad_id = int(padding.get("pad_id", 0))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.dimensions = int(self.session.get_outputs()[0].shape[-1])

    def tokenize(self, texts: Sequence[str]) -> list[Any]:
        """One ``tokenizers.Encoding`` per text (special tokens added, truncated)."""
        return self.tokenizer.encode_batch(list(texts))

    def encode(
        self, encodings: Sequence[Any], max_batch_tokens: int, *, normalize: bool, fill: float = PASS_FILL
    ) -> np.ndarray:
        """Embeddings in input order; texts sorted by length, each pass at most
        ``max_batch_tokens`` padded tokens and only texts at least ``fill`` times its longest."""
        lengths = [max(1, len(e.ids)) for e in encodings]
        order = sorted(range(len(encodings)), key=lambda i: lengths[i], reverse=True)
        out = np.empty((len(encodings), self.dimensions), dtype=np.float32)
        start = 0
        while start < len(order):
            longest = lengths[order[start]]
            end = min(len(order), start + max(1, max_batch_tokens // longest))
            end = next((i for i in range(start + 1, end) if lengths[order[i]] < fill * longest), end)
            chosen = order[start:end]
            out[chosen] = self._run([encodings[i] for i in chosen], longest)
            start = end
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _run(self, encodings: Sequence[Any], width: int) -> np.ndarray:
        arrays = {
            "input_ids": np.full((len(encodings), width), self.pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            arrays["input_ids"][row, :n] = encoding.ids
            arrays["attention_mask"][row, :n] = 1
            arrays["token_type_ids"][row, :n] = encoding.type_ids
        return self.session.run([OUTPUT], {name: arrays[name] for name in self.inputs})[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a sentence-transformers model to ONNX (once).")
    parser.add_argument("source", type=Path, help="the model directory (or, with --int8, the fp32 .onnx)")
    parser.add_argument("target", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--int8", action="store_true", help="quantize the fp32 export SOURCE to int8")
    args = parser.parse_args(argv)
    if args.int8:
        quantize_int8(args.source, args.target)
    else:
        export(args.source, args.target, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
