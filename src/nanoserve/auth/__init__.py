"""API keys, scopes, limits and usage, and the Host/Origin/CORS checks on every route.

``store`` keeps the keys (SQLite in the data dir, secrets hashed), ``policy`` decides (pure:
the scope a route needs, whether a principal may pass, whether a browser request is foreign),
``limits`` counts requests and tokens per key, ``usage`` reports them, ``hosts`` knows which
Host names mean this server, and ``middleware`` applies all of it to every request.
"""
