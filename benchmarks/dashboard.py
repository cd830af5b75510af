"""The dashboard's two budgets (issue 20): first paint over loopback < 300 ms, and the live feed
costs the gateway < 1 % CPU at one update per second.

    PYTHONPATH=src python benchmarks/dashboard.py [--seconds 60] [--loads 15]

1. First paint: Chromium (headless, Debian's) opens /ui in a fresh context each time (no cache)
   --loads times; we read the browser's own first-contentful-paint, and the time until the
   Overview's figures (fetched JSON) are on screen. Median and max. Beside it, alternated, the
   floor: the first paint of a plain text file from the same gateway (no CSS, no script).
2. Feed cost: the gateway's own CPU time (its process only, not the workers), idle, over
   --seconds each, side by side in one run: (a) `dashboard: false`, (b) dashboard on and no one
   watching (the 1/s sampler), (c) one live feed open, (d) five live feeds open. Mock engines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "dashboard")]

from browser import chromium, watched_page
from gateway import MOCK_CONFIG, Gateway

RESULTS = ROOT / "benchmarks" / "results" / "dashboard.json"


FCP = "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
FLOOR = "/ui/vendor/redoc/redoc.standalone.js.LICENSE.txt"  # a plain text file from the same server: the browser's floor


def first_paint(loads: int) -> dict[str, Any]:
    """Alternating /ui and the floor page, each in a fresh context (no cache)."""
    with tempfile.TemporaryDirectory() as data:
        gw = Gateway(Path(data), MOCK_CONFIG)
        try:
            fcp: list[float] = []
            floor: list[float] = []
            ready: list[float] = []
            with chromium() as browser:
                for i in range(loads + 1):  # the first round warms the gateway, not counted
                    context = browser.new_context()
                    w = watched_page(context)
                    began = time.perf_counter()
                    w.page.goto(gw.url + "/ui")
                    w.page.wait_for_selector("#stats .stat")
                    figures = (time.perf_counter() - began) * 1000
                    w.page.wait_for_function(f"({FCP}) !== null", timeout=10_000)
                    paint = w.page.evaluate(FCP)
                    context.close()
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(gw.url + FLOOR)
                    page.wait_for_function(f"({FCP}) !== null", timeout=10_000)
                    plain = page.evaluate(FCP)
                    context.close()
                    if i:
                        fcp.append(paint)
                        floor.append(plain)
                        ready.append(figures)
            return {
                "loads": len(fcp),
                "first_contentful_paint_ms": {"median": statistics.median(fcp), "max": max(fcp)},
                "floor_plain_text_fcp_ms": {"median": statistics.median(floor), "max": max(floor)},
                "ui_over_floor": round(statistics.median(fcp) / statistics.median(floor), 2),
                "overview_figures_ms": {"median": statistics.median(ready), "max": max(ready)},
            }
        finally:
            gw.stop()


def hold_feeds(url: str, n: int, stop: threading.Event, received: list[int]) -> list[threading.Thread]:
    def one() -> None:
        with httpx.Client(timeout=30) as http, http.stream("GET", url + "/dashboard/live") as feed:
            for line in feed.iter_lines():
                if line.startswith("data:"):
                    received.append(1)
                if stop.is_set():
                    return

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def cpu_share(config: dict[str, Any], feeds: int, seconds: float, *, page: bool = False) -> dict[str, Any]:
    """The gateway process's CPU over ``seconds`` with ``feeds`` live feeds open (and with the
    Overview page open in Chromium: its feed, and the JSON it polls every 5 s)."""
    with tempfile.TemporaryDirectory() as data, contextlib.ExitStack() as stack:
        gw = Gateway(Path(data), config)
        stack.callback(gw.stop)
        stop = threading.Event()
        received: list[int] = []
        threads = hold_feeds(gw.url, feeds, stop, received)
        if page:
            browser = stack.enter_context(chromium())
            tab = browser.new_context().new_page()
            tab.goto(gw.url + "/ui")
            tab.wait_for_selector("#live-dot.on")
        time.sleep(3)  # settle: imports done, feeds connected
        process = psutil.Process(gw.proc.pid)
        before, began = process.cpu_times(), time.perf_counter()
        got = len(received)
        time.sleep(seconds)
        after, wall = process.cpu_times(), time.perf_counter() - began
        updates = len(received) - got
        stop.set()
        cpu = (after.user - before.user) + (after.system - before.system)
        for t in threads:
            t.join(timeout=5)
        return {
            "feeds": feeds,
            "overview_page_open": page,
            "cpu_seconds": round(cpu, 4),
            "wall_seconds": round(wall, 2),
            "cpu_percent": round(100 * cpu / wall, 3),
            "updates_received": updates,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args()
    load = os.getloadavg()
    paint = first_paint(args.loads)
    print("first paint:", json.dumps(paint))
    runs = {
        "a_dashboard_off": cpu_share({**MOCK_CONFIG, "dashboard": False}, 0, args.seconds),
        "b_on_no_feed": cpu_share(MOCK_CONFIG, 0, args.seconds),
        "c_one_feed": cpu_share(MOCK_CONFIG, 1, args.seconds),
        "d_five_feeds": cpu_share(MOCK_CONFIG, 5, args.seconds),
        "e_overview_page_open": cpu_share(MOCK_CONFIG, 0, args.seconds, page=True),
    }
    for name, run in runs.items():
        print(name, json.dumps(run))
    cost = runs["c_one_feed"]["cpu_percent"] - runs["a_dashboard_off"]["cpu_percent"]
    print(f"one live feed costs {cost:.3f} % of a core over the dashboard being off")
    RESULTS.write_text(
        json.dumps(
            {
                "command": "PYTHONPATH=src python benchmarks/dashboard.py "
                + f"--seconds {args.seconds:g} --loads {args.loads}",
                "load_average_at_start": [round(x, 2) for x in load],
                "first_paint": paint,
                "cpu": runs,
                "feed_cost_percent": round(cost, 3),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
