"""Cancel a request whose client has left (pure ASGI middleware, in the gateway and the worker).

Starlette notices a disconnect only while it sends a streamed body; a plain request keeps
running after its client gave up (the gateway waiting on a worker, the worker on its engine).
Once the app has read the whole request body, this middleware watches the ASGI receive channel:
an ``http.disconnect`` before the response has started cancels the app, so the cancellation
runs down through the gateway's relay (its upstream connection closed), into the worker (which
sees its own client, the gateway, leave) and into the engine (its slot or queue entry freed).

After the response has started the disconnect is passed on to the app as usual (streams end
through Starlette's own listener).
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        started = False
        cancelled = False
        watcher: asyncio.Task[Message] | None = None

        async def watch() -> Message:
            nonlocal cancelled
            message = await receive()
            if message["type"] == "http.disconnect" and not started:
                cancelled = True
                task.cancel("the client disconnected")
            return message

        async def receive_wrapper() -> Message:
            nonlocal watcher
            if watcher is not None:  # the body was read: what follows is what the watcher saw
                return await asyncio.shield(watcher)
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                watcher = asyncio.create_task(watch(), name="disconnect-watch")
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except asyncio.CancelledError:
            if not cancelled:
                raise
            task.uncancel()  # ours: the client is gone, there is no one to answer
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
