"""Ask your documents: collections, ingestion, retrieval, grounded answers, traces and feedback.

The pipeline never imports an engine: it calls the models through the gateway's own OpenAI API
(``client.InferenceClient``). ``service.RagService`` is the one object the API layer talks to.

    documents.py   files and raw text -> ParsedDocument (title + blocks: headings, paragraphs, code)
    chunking.py    ParsedDocument -> chunks carrying title, section and character offsets (pure)
    ingest.py      parse, chunk, embed, then replace the document in the store atomically
    store/         one store interface: SQLite (sqlite-vec + FTS5, the default) and PostgreSQL+pgvector
    intent.py      intent classification with the embedding model, routing to a strategy (pure)
    ranking.py     reciprocal-rank fusion and the bounded value boost (pure)
    citations.py   matching answer sentences to the chunks that support them (pure)
    extractive.py  the fallback answer: the context sentences that best answer the question (pure)
    quality.py     the quality dimensions of an answer (pure)
    learning.py    credit assignment from feedback to chunk and document values (pure)
    pipeline.py    the query phases, each timed
    traces.py      traces, feedback and per-collection metrics in SQLite
    metrics.py     Prometheus counters since start
    eval.py        recall@k, MRR and nDCG of a ranked list (pure)
    client.py      InferenceClient: embed and chat through an OpenAI-compatible URL
    config.py, protocol.py, text.py, service.py (RagService)
"""
