"""wrk, the HTTP load generator, run on a Lua request script: its latency percentiles and
requests/s (shared by the hand-run benchmarks)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ARROW = "application/vnd.apache.arrow.stream"


def post_script(path: Path, sql: str, key: str | None) -> Path:
    """A script that POSTs `sql` to /v1/query for Arrow IPC, with `key` when given."""
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps({'sql': sql}))}\n"
        f'wrk.headers["Accept"] = "{ARROW}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n' + auth
    )
    return path


def run(url: str, script: Path, seconds: int, threads: int = 1, connections: int = 1) -> dict:
    """p50 and p99 in ms, and requests/s; fails on any non-2xx answer."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", "-d", f"{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1000.0}

    def lat(p: str) -> float:
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * unit[m.group(2)] if m else float("nan")

    if re.search(r"Non-2xx or 3xx responses:\s+\d+", out):
        raise RuntimeError(f"non-2xx answers:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"p50": lat("50"), "p99": lat("99"), "rps": float(rps.group(1)) if rps else float("nan")}
