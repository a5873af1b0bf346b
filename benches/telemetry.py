"""Tracing and log-format overhead at 16 connections (see telemetry.sh)."""

from __future__ import annotations

import argparse
import http.server
import os
import platform
import statistics
import tempfile
import threading
from pathlib import Path

import report
import wrk
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
                script = wrk.post_script(work / "small.lua", SMALL_SQL, s.key)
                rounds[name].append(wrk.run(f"{s.url}/v1/query", script, args.seconds, 2, args.connections))
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
