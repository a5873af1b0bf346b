"""Tracing and log-format overhead at 16 connections (see telemetry.sh)."""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import threading
from pathlib import Path

import report
from server import ROOT, Server

SMALL_SQL = "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = 7"
ARROW = "application/vnd.apache.arrow.stream"


class Collector(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP sink on loopback: reads each export and answers 200 (as a collector that
    keeps up does), counting requests and bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                with collector.lock:
                    collector.requests += 1
                    collector.bytes += n
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def wrk(url: str, key: str, seconds: int, script_dir: Path, connections: int) -> dict:
    script = script_dir / "small.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps({'sql': SMALL_SQL}))}\n"
        f'wrk.headers["Accept"] = "{ARROW}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", "-d", f"{seconds}s", "--latency", "-s", str(script), f"{url}/v1/query"],
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    collector = Collector()
    data = ROOT / "testdata" / "tpch"
    tracing = lambda ratio: f'[telemetry]\notlp_endpoint = "{collector.url}"\nsample_ratio = {ratio}\n'  # noqa: E731
    configs = [
        ("text logs, tracing off", "", "info"),
        ("text logs, tracing on (100%)", tracing(1.0), "info"),
        ("text logs, tracing on (1%)", tracing(0.01), "info"),
        ("JSON logs, tracing off", '[log]\nformat = "json"\n', "info"),
        ("text logs at warn, tracing off", "", "warn"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        servers = []
        for i, (name, extra, level) in enumerate(configs):
            s = Server(args.sluice, work, data, extra, log=level, name=f"s{i}")
            for _ in range(200):
                status, _ = s.request("POST", "/v1/query", {"sql": SMALL_SQL}, s.key, ARROW)
                assert status == 200
            servers.append((name, s))
        rounds: dict[str, list[dict]] = {name: [] for name, _ in servers}
        for _ in range(args.rounds):
            for name, s in servers:
                rounds[name].append(wrk(s.url, s.key, args.seconds, work, args.connections))
        log_bytes = {name: (work / f"s{i}.log").stat().st_size for i, (name, _) in enumerate(servers)}
        for _, s in servers:
            s.stop()
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("p50", "p99", "rps")} for k, v in rounds.items()}
    base = med[configs[0][0]]
    lines = [
        f"## Tracing and log format: {report.now()} · commit {report.revision()} · `benches/telemetry.sh --rounds {args.rounds} --seconds {args.seconds}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. `{SMALL_SQL}` on the embedded testdata as Arrow IPC, "
        f"{args.connections} keep-alive connections (wrk -t2 -c{args.connections}, {args.seconds} s per round), result cache off, "
        f"admin key, release build; five servers side by side, rounds alternating, median of {args.rounds}. Spans go over OTLP/HTTP "
        f"to a loopback Python sink that answers 200 ({collector.requests} exports, {collector.bytes / 1e6:.1f} MB received). "
        "Logs go to a file (stderr redirected), at `info` an access line and an audit line per query.\n",
        "| server | p50 ms | p99 ms | requests/s | vs first row (p50, requests/s) | log written |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, _, _ in configs:
        m = med[name]
        lines.append(
            f"| {name} | {m['p50']:.3f} | {m['p99']:.3f} | {m['rps']:.0f} | "
            f"{(m['p50'] - base['p50']) * 1000:+.0f} µs, {m['rps'] / base['rps']:.2f}x | {log_bytes[name] / 1e6:.1f} MB |"
        )
    out = "\n".join(lines) + "\n"
    print(out)
    report.publish(out, not args.no_write)


if __name__ == "__main__":
    main()
