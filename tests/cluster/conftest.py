"""Ray's settings for the cluster tests, set before any module here imports Ray (it reads them
once, at import); the gateways these tests start inherit them. Token authentication is on, with a
token made for this run; usage stats are off."""

from __future__ import annotations

import os
import secrets

os.environ.update(
    RAY_USAGE_STATS_ENABLED="0",
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
    RAY_AUTH_MODE="token",
    RAY_AUTH_TOKEN=secrets.token_hex(32),
)
