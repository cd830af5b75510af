"""Answer metrics of an eval run from the gateway's traces, for a run that could not finish.

``nanoserve rag eval`` writes its JSON when every question is answered; on a machine too loaded
to answer them all in the time there is, the answers given so far are still in the gateway's
trace store (DATA_DIR/rag/traces.db). This scores the latest trace of each question of QUESTIONS
asked of COLLECTION since SINCE (an ISO time: the run's start) with the eval's own scoring
(``nanoserve.rag.eval.score_answers``: cites relevant, false refusals, out-of-scope declined,
refusal precision, answer modes, per-phase latency), and says how many questions it covers.

    python benchmarks/rag/corpora/from_traces.py TRACES_DB COLLECTION QUESTIONS SINCE [-o OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from datetime import datetime
from pathlib import Path

from nanoserve.rag.eval import Answered, load_questions, score_answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("traces_db", type=Path)
    parser.add_argument("collection")
    parser.add_argument("questions", type=Path)
    parser.add_argument("since", help="ISO time, e.g. 2026-12-07T05:05:29Z")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    since = datetime.fromisoformat(args.since).timestamp()
    questions = {q.query: q for q in load_questions(args.questions)}
    db = sqlite3.connect(args.traces_db)
    rows = db.execute(
        "SELECT query, body FROM traces WHERE collection = ? AND created_at >= ? ORDER BY created_at",
        (args.collection, since),
    )
    latest = {query: json.loads(body) for query, body in rows if query in questions}
    answered, per_question = [], []
    for query, t in latest.items():
        q = questions[query]
        mode = t["answer_mode"] if t["status"] != "error" else "error"
        cited = frozenset(c["document"] for c in t["retrieved"] if c["citation"] is not None)
        timings = {p["name"]: p["ms"] for p in t["phases"]} | {"total": t["total_ms"]}
        answered.append(Answered(q, mode == "refused", cited, mode, timings))
        per_question.append({
            "query": query, "relevant": sorted(q.relevant), "mode": mode, "cited": sorted(cited),
            "answer": t["answer"], "generated": t["generated"], "error": t["error"], "trace_id": t["id"],
        })  # fmt: skip
    result = {
        "collection": args.collection,
        "questions_file": str(args.questions),
        "answered": len(answered),
        "questions": len(questions),
        "answers": score_answers(answered) if answered else None,
        "per_question": per_question,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "per_question"}, indent=1))
    if args.output:
        args.output.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
