"""A stand-in for ``vllm serve`` (vLLM needs a GPU): the same command line and routes, no model.

    standin_vllm.py serve MODEL --host H --port P [--served-model-name NAME] [--max-model-len N]
                   [--max-num-seqs N] [--record FILE]

Like vLLM it forks an engine process that runs beside the API server (here it only sleeps), so
tests can check that stopping the model, or killing the gateway, takes both down. Serves
``/health``, ``/v1/models``, ``/v1/chat/completions`` (streaming or not, with usage when
``stream_options.include_usage`` asks for it) and ``/metrics`` in vLLM's ``vllm:`` families.
With ``--record`` every request body is appended to FILE as a JSON line, with the request's
``Authorization`` header, so tests can see what the gateway really sent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

WORDS = ["The", " stand", "-in", " answers", " in", " eight", " tokens", "."]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--max-num-seqs", type=int, default=8)
    parser.add_argument("--record", default=None)
    return parser.parse_args(argv)


def create_app(args: argparse.Namespace) -> Starlette:
    name = args.served_model_name or args.model
    requests = {"total": 0}

    def record(request: Request, body: dict[str, object]) -> None:
        if args.record:
            headers = request.headers
            line = {
                "path": request.url.path,
                "authorization": headers.get("authorization"),
                "request_id": headers.get("x-request-id"),
                **body,
            }
            with open(args.record, "a") as f:
                f.write(json.dumps(line) + "\n")

    async def health(request: Request) -> Response:
        return Response(status_code=200)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "vllm"}]})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            "# HELP vllm:request_success_total Finished requests\n"
            "# TYPE vllm:request_success_total counter\n"
            f'vllm:request_success_total{{model_name="{name}"}} {requests["total"]}\n'
        )

    async def chat(request: Request) -> Response:
        body = await request.json()
        record(request, body)
        if body.get("model") != name:
            error = {"message": f"The model `{body.get('model')}` does not exist.", "type": "NotFoundError"}
            return JSONResponse({"object": "error", **error, "param": None, "code": 404}, status_code=404)
        requests["total"] += 1
        words = WORDS[: body.get("max_tokens") or len(WORDS)]
        usage = {"prompt_tokens": 5, "completion_tokens": len(words), "total_tokens": 5 + len(words)}
        base = {"id": "chatcmpl-standin", "created": int(time.time()), "model": name}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(words)}
            choice = {"index": 0, "message": message, "finish_reason": "length"}
            return JSONResponse({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

        async def events():  # type: ignore[no-untyped-def]
            chunk = {**base, "object": "chat.completion.chunk"}
            for i, word in enumerate(words):
                delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
                done = "length" if i == len(words) - 1 else None
                yield f"data: {json.dumps({**chunk, 'choices': [{'index': 0, 'delta': delta, 'finish_reason': done}]})}\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/metrics", metrics),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


def main() -> None:
    args = parse(sys.argv[1:])
    if os.fork() == 0:  # the "engine process": stays in the server's process group
        while True:
            time.sleep(3600)
    uvicorn.run(create_app(args), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
