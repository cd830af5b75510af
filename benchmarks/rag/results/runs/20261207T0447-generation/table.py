"""This run's table: retrieval from retrieval-<corpus>.json; answers from <corpus>.json when the
eval finished, else from answers-<corpus>.json (corpora/from_traces.py: the questions answered in
time) with the out-of-scope questions from out-of-scope-<corpus>.json.

    python benchmarks/rag/results/runs/20261207T0447-generation/table.py benchmarks/rag/results/runs/20261207T0447-generation
"""

import json
import sys
from pathlib import Path


def M(q):
    return q["mode"] if "mode" in q else q["answer"]["mode"]


def C(q):
    return q["cited"] if "cited" in q else q["answer"]["cited"]


RUN = Path(sys.argv[1])
rows = []
for c, role in (("postgres", "**held out**"), ("git", "tuning"), ("debian", "tuning")):
    r = json.loads((RUN / f"retrieval-{c}.json").read_text())["strategies"]["auto"]
    main = RUN / f"{c}.json"
    if main.exists():
        d = json.loads(main.read_text())
        a = d["answers"]
        n_in = a["in_scope"]
        total_in = n_in
        per = [q for q in d["per_question"] if q["relevant"]]
        src = "eval"
    else:
        d = json.loads((RUN / f"answers-{c}.json").read_text())
        a = d["answers"]
        per = [q for q in d["per_question"] if q["relevant"]]
        n_in = len(per)
        total_in = r["questions"]
        src = "traces"
    cites = sum(1 for q in per if M(q) != "refused" and set(C(q)) & set(q["relevant"]))
    modes = {}
    for q in per:
        m = M(q)
        modes[m] = modes.get(m, 0) + 1
    fr = sum(1 for q in per if M(q) == "refused")
    if src == "eval":
        o = {"out_of_scope": a["out_of_scope"], "out_of_scope_declined": a["out_of_scope_declined"]}
    else:
        o = json.loads((RUN / f"out-of-scope-{c}.json").read_text())["answers"]
    oos_declined = round(o["out_of_scope_declined"] * o["out_of_scope"])
    declines = fr + oos_declined
    prec = oos_declined / declines if declines else None
    lat = a["latency_ms"]
    rows.append(
        [
            c,
            role,
            f"{n_in}+{o['out_of_scope']}"
            if n_in == total_in
            else f"{n_in} of {total_in} + {o['out_of_scope']}",
            f"{r['recall@5']:.3f}",
            f"{r['mrr']:.3f}",
            f"{r['ndcg@10']:.3f}",
            f"{cites / n_in:.3f} ({cites}/{n_in})",
            f"{fr / n_in:.3f}",
            f"{o['out_of_scope_declined']:.3f}",
            f"{prec:.3f}" if prec is not None else "n/a",
            f"{modes.get('generated', 0)}/{modes.get('extractive', 0)}/{modes.get('refused', 0)}"
            + (f" (+{modes['error']} errors)" if modes.get("error") else ""),
            " / ".join(f"{lat[k]['p50'] / 1000:.1f}" for k in ("generate", "total") if k in lat),
        ]
    )
head = [
    "corpus",
    "role",
    "questions (in-scope+out-of-scope)",
    "recall@5",
    "MRR",
    "nDCG@10",
    "cites relevant",
    "false refusals",
    "out-of-scope declined",
    "refusal precision",
    "in-scope: generated kept / extractive fallback / declined",
    "p50 s: generate / total",
]
print("| " + " | ".join(head) + " |")
print("|" + " --- |" * len(head))
for row in rows:
    print("| " + " | ".join(row) + " |")
