"""CPU an event loop spends per wake-up from another thread, doing nothing else: the floor under
the worker's per-step hand-off (engines/llamacpp/scheduler.py: one ``call_soon_threadsafe`` per
decode step), which one stream pays once per token.

    python benchmarks/loop_wakeup.py [--wakeups 500] [--interval-ms 8]

A thread calls ``loop.call_soon_threadsafe`` with a trivial callback every ``--interval-ms`` (a
decode step's length at one stream) while holding the GIL for a little Python work first, as the
decode thread does; the loop thread's CPU time (``/proc/self/task/<tid>/schedstat``) is divided by
the wake-ups. Both loops: asyncio's and uvloop's (what uvicorn runs).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import threading
from collections.abc import Sequence

import uvloop


def thread_cpu_ns(tid: int) -> int:
    with open(f"/proc/{os.getpid()}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


async def measure(wakeups: int, interval_ms: float) -> float:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    count = 0

    def callback() -> None:
        nonlocal count
        count += 1
        if count == wakeups:
            done.set()

    libc = ctypes.CDLL(None)

    def handoffs() -> None:
        for _ in range(wakeups):
            loop.call_soon_threadsafe(callback)
            sum(range(2000))  # Python with the GIL held, then a native call without it
            libc.usleep(int(interval_ms * 1000))

    tid = threading.get_native_id()
    before = thread_cpu_ns(tid)
    thread = threading.Thread(target=handoffs)
    thread.start()
    await done.wait()
    after = thread_cpu_ns(tid)
    thread.join()
    return (after - before) / 1000 / wakeups


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wakeups", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=8.0)
    args = parser.parse_args(argv)
    asyncio_us = asyncio.run(measure(args.wakeups, args.interval_ms))
    uvloop_us = uvloop.run(measure(args.wakeups, args.interval_ms))
    print(f"event loop CPU per wake-up: asyncio {asyncio_us:.1f} us, uvloop {uvloop_us:.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
