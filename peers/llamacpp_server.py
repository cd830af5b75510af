"""``python -m llama_cpp.server`` with two adjustments, so it can be benchmarked next to nanoserve.

    python peers/llamacpp_server.py --model weights.q8_0.gguf --n_threads 2 --port 8001

Takes exactly the arguments of ``python -m llama_cpp.server`` and runs its ``main()``, except:

1. Models load with ``use_extra_bufts = false`` (see ``llamacpp_baseline.py``): the unpatched
   server segfaults on the first multi-token prompt on this project's machines (AMX kernels).
   ``--extra-bufts`` (first argument) skips this patch.
2. A request body with ``"ignore_eos": true`` (``nanoserve bench --ignore-eos`` sends it; the
   server has no such field and drops it) gets a ``logit_bias`` that bans the model's
   end-of-generation tokens instead, llama-cpp-python's way of asking for all ``max_tokens``.

Nothing else changes: its request handling, locking and ``interrupt_requests`` stay as shipped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llamacpp_baseline import ban_tokens, disable_extra_bufts, eog_token_ids

Scope = dict[str, Any]
Message = dict[str, Any]


class IgnoreEos:
    """ASGI middleware: ``ignore_eos: true`` in a JSON body becomes a logit bias on EOG tokens."""

    def __init__(self, app: Any, eog_ids: list[int]):
        self.app = app
        self.bias = ban_tokens(eog_ids)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending its body
                await self.app(scope, _replay(message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = self.rewrite(b"".join(chunks))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = {"type": "http.request", "body": body, "more_body": False}
        await self.app(dict(scope, headers=headers), _replay(replayed, receive), send)

    def rewrite(self, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return body
        if not isinstance(data, dict) or not data.pop("ignore_eos", False):
            return body
        data["logit_bias"] = {**(data.get("logit_bias") or {}), **self.bias}
        data.pop("logit_bias_type", None)  # the ids are token ids ("input_ids", the default)
        return json.dumps(data).encode()


def _replay(first: Message, receive: Any) -> Any:
    """A ``receive`` that returns ``first`` once, then defers to the real one (disconnects)."""
    pending = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _model_path(argv: list[str]) -> Path:
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--model="):
            return Path(arg.split("=", 1)[1])
    raise SystemExit("error: --model PATH is required")


def main() -> None:
    import llama_cpp
    import uvicorn
    from llama_cpp.server import __main__ as server_main

    argv = sys.argv[1:]
    if argv[:1] == ["--extra-bufts"]:
        argv = argv[1:]
    else:
        disable_extra_bufts(llama_cpp)
    eog_ids = eog_token_ids(llama_cpp, _model_path(argv))
    run = uvicorn.run

    def run_wrapped(app: Any, **kwargs: Any) -> None:
        run(IgnoreEos(app, eog_ids), **kwargs)

    uvicorn.run = run_wrapped  # type: ignore[assignment]  # server_main calls uvicorn.run(app, ...)
    sys.argv = [sys.argv[0], *argv]
    server_main.main()


if __name__ == "__main__":
    main()
