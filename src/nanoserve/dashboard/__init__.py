"""The operator's dashboard at ``/ui``: what the gateway remembers of its recent past (requests,
lifecycle events, its log, per-second figures) and the pages that show it (docs/dashboard.md)."""
