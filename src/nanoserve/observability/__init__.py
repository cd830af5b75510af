"""Metrics, logs, traces and worker heartbeats of the gateway (docs/observability.md)."""
