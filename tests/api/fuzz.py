"""Run schemathesis against a dedicated gateway with mock engines and a throwaway data dir (it
mutates state: collections, loads, unloads). Used by the default suite (bounded) and by
``benchmarks/schemathesis.sh`` (a longer run)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.gateway import MOCK_CONFIG, Gateway

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
CONFIG: dict[str, Any] = {
    **MOCK_CONFIG,
    "rag": {"generation_model": "mock-chat", "embedding_model": "mock-embed"},
}
# /mcp is described in the document but not fuzzed: its SDK transport answers protocol errors as
# bare text without a Content-Type (JSON-RPC over streamable HTTP has its own tests, tests/mcp).
EXCLUDED_PATHS = ("/mcp",)


@dataclass
class FuzzResult:
    returncode: int
    output: str
    operations: int
    cases: int
    failures: int


def st_command() -> list[str]:
    st = Path(sys.executable).with_name("st")
    return [str(st)] if st.exists() else [sys.executable, "-m", "schemathesis.cli"]


def fuzz(max_examples: int, *, timeout: float = 900, extra: list[str] | None = None) -> FuzzResult:
    data_dir = Path(tempfile.mkdtemp(prefix="nanoserve-fuzz-"))
    gateway = Gateway(data_dir, CONFIG)
    try:
        cmd = [*st_command(), "run", gateway.url + "/openapi.json", "--checks", CHECKS]
        for path in EXCLUDED_PATHS:
            cmd += ["--exclude-path", path]
        cmd += [
            "-n",
            str(max_examples),
            "--request-timeout",
            "30",
            "--generation-deterministic",
            *(extra or []),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=data_dir)
        output = proc.stdout + proc.stderr
        log = gateway.log()
    finally:
        gateway.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    tested = re.search(r"Tested: (\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    failed = re.search(r"(\d+) (?:unique )?failures?", output.split("Test cases:")[-1])
    result = FuzzResult(
        proc.returncode,
        output + ("\n--- gateway log ---\n" + log if proc.returncode else ""),
        int(tested.group(1)) if tested else 0,
        int(cases.group(1)) if cases else 0,
        int(failed.group(1)) if failed else 0,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=200)
    args, extra = parser.parse_known_args()
    result = fuzz(args.max_examples, timeout=3 * 3600, extra=extra)
    print(result.output)
    print(f"operations: {result.operations}  cases: {result.cases}  failures: {result.failures}")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
