"""``nanoserve ingest`` and ``nanoserve rag {query,trace,eval}``: clients of a running gateway.

They speak HTTP to ``--url`` (default http://127.0.0.1:8000) so they work against any nanoserve,
local or not, and import nothing heavy.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import httpx

from nanoserve.cli.options import api_key_option, auth_headers

DEFAULT_URL = "http://127.0.0.1:8000"
STRATEGY_CHOICES = ["semantic", "keyword", "hybrid"]


def _url_option(f: Any) -> Any:
    f = api_key_option(f)
    return click.option(
        "--url",
        default=DEFAULT_URL,
        show_default=True,
        envvar="NANOSERVE_URL",
        help="The gateway's base URL.",
    )(f)


def _client(url: str, timeout: float = 600.0) -> httpx.Client:
    return httpx.Client(
        base_url=url.rstrip("/"), timeout=httpx.Timeout(timeout, connect=10.0), headers=auth_headers()
    )


def _error_message(response: httpx.Response) -> str:
    try:
        err = response.json()["error"]
        return err["message"] if isinstance(err, dict) else str(err)
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


# A 429 or 503 that says when to come back (a model loading, a queue full) is waited out this many
# times, at most MAX_RETRY_WAIT seconds each, before it is reported: one busy moment must not end
# an ingest or an evaluation of hundreds of requests.
RETRIES = 5
MAX_RETRY_WAIT = 30.0


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    for attempt in range(RETRIES + 1):
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise click.ClickException(
                f"cannot reach {client.base_url}: {exc} (is `nanoserve serve` running?)"
            ) from exc
        wait = _retry_after(response)
        if wait is None or attempt == RETRIES:
            break
        time.sleep(wait)
    if response.status_code >= 400:
        raise click.ClickException(f"{response.status_code}: {_error_message(response)}")
    return response.json()


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before asking again, for a 429 or 503 with ``Retry-After`` (else None)."""
    if response.status_code not in (429, 503):
        return None
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_WAIT)


def _supported_suffixes() -> frozenset[str]:
    from nanoserve.rag.documents import supported_suffixes

    return supported_suffixes()


def iter_files(paths: tuple[Path, ...]) -> Iterator[tuple[Path, str]]:
    """(file, document name): files as given, folders walked for supported suffixes; a document
    is named by its path relative to the folder given, so re-ingesting a folder replaces."""
    suffixes = _supported_suffixes()
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
                yield file, file.relative_to(path).as_posix()
        else:
            yield path, path.name


FILES_PER_REQUEST = 32  # files in one POST .../ingest
BYTES_PER_REQUEST = 8 * 1024 * 1024  # and at most this much of them (a bigger file goes alone)


def upload_groups(files: list[tuple[Path, str]]) -> Iterator[list[tuple[Path, str]]]:
    """The files in upload order, cut into requests of at most FILES_PER_REQUEST files and
    BYTES_PER_REQUEST bytes."""
    group: list[tuple[Path, str]] = []
    size = 0
    for file, name in files:
        length = file.stat().st_size
        if group and (len(group) >= FILES_PER_REQUEST or size + length > BYTES_PER_REQUEST):
            yield group
            group, size = [], 0
        group.append((file, name))
        size += length
    if group:
        yield group


def _upload(
    client: httpx.Client,
    collection: str,
    group: list[tuple[Path, str]],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """POST one group to ``.../ingest`` and report each document's event as it streams back; a
    request that fails reports its files not yet reported as failed with its error."""
    pending = [name for _, name in group]
    try:
        with client.stream(
            "POST",
            f"/v1/rag/collections/{collection}/ingest",
            files=[("file", (file.name, file.read_bytes())) for file, _ in group],
            data={"name": [name for _, name in group], "source": [str(file) for file, _ in group]},
            headers={"Accept": "application/x-ndjson"},
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise click.ClickException(f"{response.status_code}: {_error_message(response)}")
            for line in response.iter_lines():
                event = json.loads(line) if line.strip() else {}
                if event.get("object") == "ingest.document" and event.get("document") in pending:
                    pending.remove(event["document"])
                    report(event)
    except httpx.TransportError as exc:
        message = f"cannot reach {client.base_url}: {exc} (is `nanoserve serve` running?)"
    except click.ClickException as exc:
        message = exc.message
    except (OSError, ValueError) as exc:  # a file that cannot be read; a garbled answer
        message = str(exc)
    else:
        message = "the gateway's answer ended before this file's"
    for name in pending:
        report({"document": name, "status": "failed", "error": {"message": message}})


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--collection", "-c", default="default", show_default=True, help="Collection to add to.")
@click.option("--jobs", "-j", type=click.IntRange(1, 16), default=2, show_default=True,
              help=f"Uploads in flight at once, each of up to {FILES_PER_REQUEST} files: the gateway "
                   "packs the chunks of all of them into full embedding batches.")  # fmt: skip
@_url_option
def ingest(paths: tuple[Path, ...], collection: str, jobs: int, url: str) -> None:
    """Add files and folders (text, Markdown, HTML, PDF) to a collection.

    A file already ingested under the same name is replaced if it changed, skipped otherwise.
    Each file is stored whole or not at all: an interrupted run is completed by running it again.
    """
    from concurrent.futures import ThreadPoolExecutor
    from queue import Queue

    files = list(iter_files(paths))
    if not files:
        raise click.ClickException("no supported files (.txt .md .html .pdf ...) found")
    totals = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    chunks = 0
    started = time.perf_counter()
    events: Queue[dict[str, Any]] = Queue()

    def rate(done: object) -> str | None:
        elapsed = time.perf_counter() - started
        if not done or elapsed <= 0:
            return None
        return f"{bar.pos / elapsed:.1f} files/s, {chunks / elapsed:.0f} chunks/s"

    with (
        _client(url) as client,
        ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="ingest") as pool,
        click.progressbar(
            length=len(files), label=f"Ingesting into {collection!r}", item_show_func=rate, file=sys.stderr
        ) as bar,
    ):
        futures = [pool.submit(_upload, client, collection, g, events.put) for g in upload_groups(files)]
        try:
            for _ in range(len(files)):
                event = events.get()
                status = event["status"]
                totals[status] += 1
                if status == "failed":
                    click.echo(f"\n{event['document']}: {event['error']['message']}", err=True)
                elif status != "unchanged":
                    chunks += event["chunks"]
                bar.update(1, current_item=True)
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            raise
    elapsed = time.perf_counter() - started
    rate_text = f", {chunks / elapsed:.1f} chunks/s" if chunks else ""
    summary = ", ".join(f"{n} {k}" for k, n in totals.items() if n)
    click.echo(
        f"{len(files)} files: {summary}; {chunks} chunks in {elapsed:.1f}s "
        f"({len(files) / elapsed:.1f} files/s{rate_text})"
    )
    if totals["failed"]:
        sys.exit(1)


@click.group()
def rag() -> None:
    """Ask a collection, read traces, evaluate retrieval."""


@rag.command()
@click.argument("question")
@click.option("--collection", "-c", default="default", show_default=True)
@click.option("--top-k", type=click.IntRange(1, 50), default=None, help="Chunks given to the model.")
@click.option("--strategy", type=click.Choice(STRATEGY_CHOICES), default=None, help="Override the routing.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON response.")
@_url_option
def query(
    question: str, collection: str, top_k: int | None, strategy: str | None, as_json: bool, url: str
) -> None:
    """Ask QUESTION; prints the answer, its citations, quality and trace id."""
    body: dict[str, Any] = {"collection": collection, "query": question}
    if top_k:
        body["top_k"] = top_k
    if strategy:
        body["strategy"] = strategy
    with _client(url) as client:
        result = _call(client, "POST", "/v1/rag/query", json=body)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(result["answer"])
    for c in result["citations"]:
        where = f"{c['document']}" + (f" > {c['section']}" if c.get("section") else "")
        click.echo(f"  [{c['n']}] {where} (chunk {c['chunk_id']})")
    quality = ", ".join(f"{k} {v:.2f}" for k, v in result["quality"].items())
    click.echo(
        f"intent {result['intent']}, strategy {result['strategy']}, {result['answer_mode']}; quality: {quality}"
    )
    click.echo(f"trace {result['trace_id']} ({result['timings_ms'].get('total', 0):.0f} ms)")


@rag.command()
@click.argument("trace_id")
@_url_option
def trace(trace_id: str, url: str) -> None:
    """Print a query's trace as JSON."""
    with _client(url) as client:
        click.echo(json.dumps(_call(client, "GET", f"/v1/rag/traces/{trace_id}"), indent=2))


EVAL_STRATEGIES = ["auto", *STRATEGY_CHOICES]


@rag.command(name="eval")
@click.option("--collection", "-c", default="default", show_default=True)
@click.option("--questions", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSONL: {"query": ..., "relevant": [document names]} per line; [] = out of scope.')  # fmt: skip
@click.option("--strategies", default="auto,semantic,keyword,hybrid", show_default=True,
              help="Comma-separated; auto = the pipeline's own routing.")  # fmt: skip
@click.option("--answers/--no-answers", default=True, show_default=True,
              help="Also ask every question (generation): citations, refusals, latency.")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Questions asked at once (the generation model batches them).")  # fmt: skip
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write results as JSON."
)
@_url_option
def evaluate(
    collection: str,
    questions: Path,
    strategies: str,
    answers: bool,
    concurrency: int,
    output: Path | None,
    url: str,
) -> None:
    """Retrieval quality (recall@k, MRR, nDCG@10 per strategy) and answer quality (answers citing
    a relevant document, false refusals, refusal precision, per-phase latency)."""
    from concurrent.futures import ThreadPoolExecutor

    from nanoserve.errors import NanoserveError
    from nanoserve.rag.eval import RECALL_KS, Answered, distinct, load_questions, score_answers, score_run

    chosen = [s.strip() for s in strategies.split(",") if s.strip()]
    if bad := [s for s in chosen if s not in EVAL_STRATEGIES]:
        raise click.BadParameter(f"unknown strategy {bad[0]!r}", param_hint="--strategies")
    try:
        qs = load_questions(questions)
    except NanoserveError as exc:
        raise click.ClickException(exc.message) from exc
    in_scope = [q for q in qs if q.in_scope]
    results: dict[str, Any] = {
        "collection": collection,
        "questions_file": str(questions),
        "strategies": {},
    }
    per_question: list[dict[str, Any]] = [{"query": q.query, "relevant": sorted(q.relevant)} for q in qs]
    index = {id(q): i for i, q in enumerate(qs)}
    with _client(url) as client:
        for strategy in chosen if in_scope else []:
            rankings = []
            started = time.perf_counter()
            with click.progressbar(in_scope, label=f"{strategy:>8}", file=sys.stderr) as bar:
                for q in bar:
                    body: dict[str, Any] = {"collection": collection, "query": q.query, "top_k": 50}
                    if strategy != "auto":
                        body["strategy"] = strategy
                    found = _call(client, "POST", "/v1/rag/search", json=body)
                    ranking = distinct(r["document"] for r in found["results"])
                    rankings.append(ranking)
                    per_question[index[id(q)]][strategy] = ranking[:5]
            results["strategies"][strategy] = {
                **score_run(rankings, in_scope).as_dict(),
                "ms_per_query": round((time.perf_counter() - started) * 1e3 / len(in_scope), 1),
            }
        if answers:
            answered = []

            def ask(q: Any) -> dict[str, Any]:
                """The answer, or the error (a question that failed counts as a miss, not declined)."""
                try:
                    return _call(
                        client, "POST", "/v1/rag/query", json={"collection": collection, "query": q.query}
                    )
                except click.ClickException as exc:
                    return {"answer": "", "answer_mode": "error", "citations": [], "error": exc.message,
                            "quality": {}, "trace_id": None, "timings_ms": {}}  # fmt: skip

            with (
                ThreadPoolExecutor(concurrency) as pool,
                click.progressbar(
                    pool.map(ask, qs), length=len(qs), label="  answers", file=sys.stderr
                ) as bar,
            ):
                for i, r in enumerate(bar):
                    q = qs[i]
                    declined = r["answer_mode"] == "refused"
                    cited = frozenset(c["document"] for c in r["citations"])
                    answered.append(Answered(q, declined, cited, r["answer_mode"], r["timings_ms"]))
                    per_question[i]["answer"] = {
                        "text": r["answer"], "mode": r["answer_mode"], "cited": sorted(cited),
                        "quality": r["quality"].get("overall"), "dimensions": r["quality"],
                        "trace_id": r["trace_id"], **({"error": r["error"]} if "error" in r else {}),
                    }  # fmt: skip
            results["answers"] = score_answers(answered)
    results["per_question"] = per_question
    if results["strategies"]:
        headers = [f"recall@{k}" for k in RECALL_KS] + ["mrr", "ndcg@10", "ms_per_query"]
        click.echo(f"{'strategy':<10}" + "".join(f"{h:>13}" for h in headers))
        for strategy, row in results["strategies"].items():
            click.echo(f"{strategy:<10}" + "".join(f"{row[h]:>13}" for h in headers))
    if "answers" in results:
        a = results["answers"]
        for key in ("cites_relevant", "false_refusal_rate", "out_of_scope_declined", "refusal_precision"):
            click.echo(f"{key:<24}{'n/a' if a[key] is None else a[key]:>8}")
        click.echo("answer modes: " + ", ".join(f"{k} {v}" for k, v in sorted(a["answer_modes"].items())))
        click.echo(
            "latency ms (mean/p50): "
            + ", ".join(f"{k} {v['mean']:.0f}/{v['p50']:.0f}" for k, v in a["latency_ms"].items())
        )
    click.echo(f"{len(in_scope)} in-scope and {len(qs) - len(in_scope)} out-of-scope questions, "
               f"collection {collection!r}")  # fmt: skip
    if output:
        output.write_text(json.dumps(results, indent=2) + "\n")
