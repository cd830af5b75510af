"""The sentence engine's ONNX Runtime backend (issue 18) with the real default model: its vectors
against torch's, the forward-pass bound, the export made once per data dir, bad backend values,
and the backend served through a real gateway to the official openai client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from click.testing import CliRunner

pytest.importorskip("sentence_transformers")
pytest.importorskip("onnxruntime")

from gateway import Gateway, wait_until

from nanoserve.cli.main import cli
from nanoserve.config import default_models
from nanoserve.engines import sentence_onnx
from nanoserve.engines.base import EngineSpec
from nanoserve.engines.sentence import SentenceTransformersEngine
from nanoserve.errors import ConfigError
from nanoserve.profiles.sentence import onnx_path, resolve_backend
from nanoserve.sources import resolve_source

MINILM = default_models()[1]
MODEL_DIR = resolve_source(MINILM.source or "")
BUDGET = 512
TEXTS = [
    " ".join(["rivers"] * 300),  # truncated to 256 tokens
    "",
    "héllo wörld, 你好, ça va?",
    *(f"sentence {i} about light, stone and the {'green ' * i}garden" for i in range(12)),
]


def spec(data_dir: Path, **options: Any) -> EngineSpec:
    return EngineSpec(
        name="minilm",
        path=MODEL_DIR,
        kind="embedding",
        context_length=256,
        threads=2,
        options=options,
        data_dir=data_dir,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-data")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engines(data_dir: Path) -> AsyncIterator[dict[str, SentenceTransformersEngine]]:
    started = {}
    for backend in ("torch", "onnx"):
        engine = SentenceTransformersEngine(spec(data_dir, backend=backend, max_batch_tokens=BUDGET))
        await engine.start()
        started[backend] = engine
    yield started
    for engine in started.values():
        await engine.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_onnx_vectors_and_token_counts_match_torch(
    engines: dict[str, SentenceTransformersEngine],
) -> None:
    assert engines["onnx"].info()["backend"] == "onnx" and engines["onnx"]._model is None
    torch_out = await engines["torch"].embed(TEXTS)
    onnx_out = await engines["onnx"].embed(TEXTS)
    assert onnx_out.prompt_tokens == torch_out.prompt_tokens
    a, b = np.array(torch_out.vectors), np.array(onnx_out.vectors)
    assert a.shape == b.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)  # normalised as torch's
    np.testing.assert_allclose(b, a, atol=1e-4)
    # one text alone (no padding) is the same vector as within the batch
    alone = await engines["onnx"].embed([TEXTS[3]])
    np.testing.assert_allclose(alone.vectors[0], b[3], atol=1e-5)


@contextmanager
def forward_passes(engine: SentenceTransformersEngine) -> Iterator[list[tuple[int, int]]]:
    """The (texts, padded length) of each ONNX forward pass the engine runs meanwhile."""
    session = engine._onnx.session
    shapes: list[tuple[int, int]] = []
    run = session.run

    def recording(outputs: Any, feeds: dict[str, np.ndarray], *args: Any) -> Any:
        shapes.append(feeds["input_ids"].shape)
        return run(outputs, feeds, *args)

    session.run = recording
    try:
        yield shapes
    finally:
        session.run = run


@pytest.mark.asyncio(loop_scope="module")
async def test_each_onnx_forward_pass_holds_at_most_max_batch_tokens_with_padding(
    engines: dict[str, SentenceTransformersEngine],
) -> None:
    with forward_passes(engines["onnx"]) as shapes:
        texts = [" ".join(["tokens"] * 300)] + [f"short {i}" for i in range(40)]
        result = await engines["onnx"].embed(texts)
    assert len(result.vectors) == 41 and result.prompt_tokens <= BUDGET
    assert shapes and all(rows * length <= BUDGET for rows, length in shapes), shapes
    assert sum(rows for rows, _ in shapes) == 41


@pytest.mark.asyncio(loop_scope="module")
async def test_a_forward_pass_pads_no_text_beyond_one_ninth_of_its_tokens(
    engines: dict[str, SentenceTransformersEngine],
) -> None:
    # one long text and short ones: the token budget (512) would put 8 of them in one pass
    texts = [" ".join(["word"] * 58), *(f"chunk number {i}" for i in range(20))]
    with forward_passes(engines["onnx"]) as shapes:
        alone = await engines["onnx"].embed(texts)
    padded = sum(rows * length for rows, length in shapes)
    assert sum(rows for rows, _ in shapes) == len(texts)
    # in passes cut by the budget alone they were padded to 3.4x their tokens
    assert padded <= alone.prompt_tokens / sentence_onnx.PASS_FILL, (shapes, alone.prompt_tokens)
    # the passes change no vector
    vectors = np.array(alone.vectors)
    for i in (0, 1, 20):
        np.testing.assert_allclose(
            vectors[i], (await engines["onnx"].embed([texts[i]])).vectors[0], atol=1e-5
        )


@pytest.mark.asyncio(loop_scope="module")
async def test_the_export_is_made_once_per_data_dir(
    engines: dict[str, SentenceTransformersEngine], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported = onnx_path(MODEL_DIR, "onnx", data_dir)
    assert exported.is_file() and list(exported.parent.iterdir()) == [exported]  # no temporary left
    before = exported.stat().st_mtime_ns

    def no_export(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(sentence_onnx.subprocess, "run", no_export)
    again = SentenceTransformersEngine(spec(data_dir, backend="onnx"))
    await again.start()
    try:
        assert len((await again.embed(["cached"])).vectors[0]) == 384
    finally:
        await again.close()
    assert exported.stat().st_mtime_ns == before


@pytest.mark.asyncio(loop_scope="module")
async def test_int8_is_blockwise_and_keeps_the_vectors_of_fp32(
    engines: dict[str, SentenceTransformersEngine], data_dir: Path
) -> None:
    import onnx

    int8 = SentenceTransformersEngine(spec(data_dir, backend="onnx-int8", max_batch_tokens=BUDGET))
    await int8.start()
    try:
        assert int8.info()["backend"] == "onnx-int8"
        quantized = await int8.embed(TEXTS)
    finally:
        await int8.close()
    reference = await engines["onnx"].embed(TEXTS)
    assert quantized.prompt_tokens == reference.prompt_tokens
    cosines = np.sum(np.array(quantized.vectors) * np.array(reference.vectors), axis=1)
    # ONNX Runtime's dynamic quantization (per-tensor activations) was at 0.980 on such texts
    assert cosines.min() >= 0.998, cosines
    graph = onnx.load(str(onnx_path(MODEL_DIR, "onnx-int8", data_dir))).graph
    ops = {node.op_type for node in graph.node}
    assert "MatMulNBits" in ops and "MatMul" not in ops and "DynamicQuantizeMatMul" not in ops


def test_the_default_embedding_model_serves_int8() -> None:
    assert MINILM.options["backend"] == "onnx-int8"


def test_auto_is_onnx_when_onnxruntime_is_installed(tmp_path: Path) -> None:
    assert resolve_backend("auto", MODEL_DIR) == "onnx"
    assert resolve_backend("auto", tmp_path) == "torch"  # no tokenizer.json to tokenize with
    assert resolve_backend("torch", MODEL_DIR) == "torch"


def test_a_bad_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="options.backend: Input should be 'auto', 'torch', 'onnx'"):
        SentenceTransformersEngine(spec(tmp_path, backend="tensorrt"))
    config = tmp_path / "config.yaml"
    config.write_text(
        "models:\n  - id: e\n    kind: embedding\n    engine: sentence-transformers\n"
        f"    source: {MINILM.source}\n    options: {{backend: tensorrt}}\n"
    )
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "model 'e' (engine sentence-transformers): options.backend: " in result.output


@pytest.fixture(scope="module")
def onnx_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {
        "models": [{**MINILM.model_dump(mode="json", exclude_unset=True), "options": {"backend": "onnx"}}]
    }
    gw = Gateway(tmp_path_factory.mktemp("onnx-gateway"), config, start_timeout=120)
    yield gw
    gw.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_onnx_served_through_the_gateway_to_the_openai_client(
    onnx_gateway: Gateway, engines: dict[str, SentenceTransformersEngine]
) -> None:
    import openai

    client = openai.OpenAI(base_url=onnx_gateway.url + "/v1", api_key="unused", timeout=300)
    texts = TEXTS[2:6]
    served = client.embeddings.create(model=MINILM.id, input=texts)
    reference = await engines["torch"].embed(texts)
    assert served.usage.prompt_tokens == reference.prompt_tokens > 0
    b = np.array([d.embedding for d in served.data])
    np.testing.assert_allclose(b, np.array(reference.vectors), atol=1e-4)

    def measured() -> bool:  # the footprint is measured after the load's warm-up, off the request path
        with onnx_gateway.client(timeout=60) as http:
            status = {m["id"]: m for m in http.get("/models/status").json()["models"]}[MINILM.id]
        return status["measured_mib"] is not None

    assert wait_until(measured, timeout=60)
    assert len(list((onnx_gateway.data_dir / "onnx").glob("*.onnx"))) == 1  # exported into its data dir
