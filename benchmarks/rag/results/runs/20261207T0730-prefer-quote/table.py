"""This run's table, from the eval JSON files here: eval-<corpus>-<variant>.json.

python benchmarks/rag/results/runs/20261207T0730-prefer-quote/table.py
"""

import json
from pathlib import Path

RUN = Path(__file__).parent
VARIANTS = [
    ("before", "before: prefer_quote_score off (cb2393c)"),
    ("quote-other-chunk-1.0", "quote from a chunk the answer does not cite, score >= 1.0 (e1d2714)"),
    ("after", "after: quote when a sentence scores >= 0.8 (the default)"),
    ("distinct-documents", "one chunk per document in the context (not kept)"),
]
print(
    "| corpus | role | variant | recall@5 | MRR | cites relevant | out-of-scope declined | in-scope: generated / extractive / declined | p50 s total |"
)
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for c, role in (("postgres", "**held out**"), ("git", "tuning"), ("debian", "tuning")):
    for key, label in VARIANTS:
        path = RUN / f"eval-{c}-{key}.json"
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        r, a = d["strategies"]["auto"], d["answers"]
        per = [q for q in d["per_question"] if q["relevant"]]
        hits = sum(
            1
            for q in per
            if q["answer"]["mode"] != "refused" and set(q["answer"]["cited"]) & set(q["relevant"])
        )
        modes = [sum(q["answer"]["mode"] == m for q in per) for m in ("generated", "extractive", "refused")]
        oos = round(a["out_of_scope_declined"] * a["out_of_scope"])
        print(
            f"| {c} | {role} | {label} | {r['recall@5']:.3f} | {r['mrr']:.3f} | {hits / len(per):.3f} ({hits}/{len(per)}) "
            f"| {oos}/{a['out_of_scope']} | {'/'.join(map(str, modes))} | {a['latency_ms']['total']['p50'] / 1000:.1f} |"
        )
