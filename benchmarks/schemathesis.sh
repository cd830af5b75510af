#!/usr/bin/env bash
# A longer schemathesis run than the default suite's: every operation of /openapi.json on a
# dedicated gateway with mock engines and a throwaway data dir.
#   benchmarks/schemathesis.sh [--max-examples N] [more schemathesis options]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m tests.api.fuzz --max-examples 300 "$@"
