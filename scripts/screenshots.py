"""`make screenshots`: a PNG of each dashboard page in docs/screenshots/, for the README.

Starts a gateway with the default models on a free loopback port, sends it a little traffic (so
the charts and tables have something to show), then photographs each page in headless Chromium
(Debian's chromium, as the tests drive it). Not part of the test run: it rewrites tracked files.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "dashboard")]

from browser import chromium, watched_page
from gateway import Gateway

OUT = ROOT / "docs" / "screenshots"
DOC = (
    "# The Moonfield lighthouse\n\nThe Moonfield lighthouse was built in 1887 on the northern cape. "
    "Its keeper, Ada Brennan, lit the lamp every night for forty-one years.\n"
)


def traffic(gw: Gateway) -> None:
    with gw.client(timeout=300) as http:
        http.post("/models/load", json={"model": "smollm2:135m"}).raise_for_status()
        for i in range(6):
            http.post(
                "/v1/chat/completions",
                json={
                    "model": "smollm2:135m",
                    "messages": [{"role": "user", "content": f"Name a colour ({i})."}],
                    "max_tokens": 24,
                    "stream": i % 2 == 0,
                },
            )
        http.post("/v1/embeddings", json={"model": "all-minilm:l6-v2", "input": ["hello", "world"]})
        http.post("/v1/chat/completions", json={"model": "no-such-model", "messages": []})
        http.post("/v1/rag/collections/handbook/documents", json={"name": "moonfield.md", "text": DOC})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        gw = Gateway(Path(data), None)
        try:
            traffic(gw)
            time.sleep(2)  # the last second's figures reach the charts
            with chromium() as browser:
                context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
                w = watched_page(context)
                page = w.page
                shots = {
                    "overview": "#devices .dev .bar",
                    "models": "tr[data-model]",
                    "requests": "#requests tr.click",
                    "playground": "#pg-model option",
                    "documents": "#collections table",
                    "logs": "#log-text",
                }
                for name, ready in shots.items():
                    page.goto(f"{gw.url}/ui#/{name}")
                    page.wait_for_selector(ready, state="attached", timeout=60_000)
                    if name == "playground":
                        page.fill("#pg-input", "Write a haiku about lighthouses.")
                        page.click("#pg-send")
                        page.wait_for_selector(".msg.assistant[data-done='1']", timeout=120_000)
                        page.click("#pg-compare")
                        page.wait_for_selector("#pg-cosine", timeout=120_000)
                    if name == "documents":
                        page.fill("#doc-collection", "handbook")
                        page.fill("#doc-question", "Who kept the Moonfield lighthouse?")
                        page.click("#doc-ask")
                        page.wait_for_selector("#doc-answer .cite, #doc-answer .err", timeout=300_000)
                        page.click("#doc-answer button:has-text('Trace')")
                        page.wait_for_selector("#doc-trace-body")
                    if name == "requests":
                        page.locator("#requests tr.click").first.click()
                        page.wait_for_selector("#detail .kv")
                    page.wait_for_timeout(1500)  # a live tick or two
                    page.screenshot(path=str(OUT / f"{name}.png"))
                    print(f"wrote {OUT / f'{name}.png'}")
                if w.errors:
                    raise SystemExit(f"console errors: {w.errors}")
        finally:
            gw.stop()


if __name__ == "__main__":
    main()
