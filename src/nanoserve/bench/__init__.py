"""``nanoserve bench``: a load generator for OpenAI-compatible servers with vLLM's figures.

workload (prompts, arrivals) -> client (one timed request) -> runner (a sweep of runs)
-> metrics (pure math) -> report (JSON, text) and plot (PNG).
"""
