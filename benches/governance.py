"""Governance on vs off: the small query's latency at one connection (see governance.sh)."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import report as report_file
import wrk as wrk_tool

ROOT = Path(__file__).resolve().parent.parent
SMALL_SQL = "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = 7"
ARROW = "application/vnd.apache.arrow.stream"
LOG_LEVEL = "info"


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True)


class Server:
    def __init__(self, binary: str, workdir: Path, name: str, config: str):
        path = workdir / f"{name}.toml"
        path.write_text(config)
        self.log = open(workdir / f"{name}.log", "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--config", str(path)],
            stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT,
            env={**os.environ, "SLUICE_LOG": LOG_LEVEL},
        )
        line = self.proc.stdout.readline()
        self.url = line.split("url=")[1].split()[0]
        self.key = line.split("api_key=")[1].strip() if "api_key=" in line else None
        host, port = self.url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port))

    def request(self, method: str, path: str, body: dict | None, key: str | None, accept: str = "application/json") -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def latencies(server: Server, key: str | None, n: int) -> list[float]:
    body = {"sql": SMALL_SQL}
    # A fresh connection per round: the other server's round outlasts the 5 s keep-alive.
    server.conn.close()
    server.request("POST", "/v1/query", body, key, ARROW)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = server.request("POST", "/v1/query", body, key, ARROW)
        out.append((time.perf_counter() - t) * 1000.0)
        if status != 200:
            raise RuntimeError(f"status {status}")
    return out


def wrk(server: Server, key: str | None, seconds: int, workdir: Path) -> dict:
    """One connection, one thread: wrk's latency percentiles and requests/s."""
    script = wrk_tool.post_script(workdir / f"small-{'on' if key else 'off'}.lua", SMALL_SQL, key)
    return wrk_tool.run(f"{server.url}/v1/query", script, seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--pg-url", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10, help="wrk seconds per round")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--log", default="info", help="SLUICE_LOG of both servers (info: a request line and audit lines per query)")
    args = ap.parse_args()
    global LOG_LEVEL
    LOG_LEVEL = args.log

    db = f"bench_meta_{uuid.uuid4().hex[:8]}"
    psql(args.pg_url, f"CREATE DATABASE {db}")
    meta = args.pg_url.rsplit("/", 1)[0] + "/" + db
    data = ROOT / "testdata" / "tpch"
    common = f'[server]\ndefault_catalog = "local"\ndefault_schema = "public"\n'
    source = f'[[sources]]\nname = "local"\nkind = "parquet"\nlocation = "{data}"\n'
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        off = Server(args.sluice, work, "off", common + '[auth]\nmode = "none"\n' + source)
        on = Server(args.sluice, work, "on", common + f'[metadata]\npostgres_url = "{meta}"\n' + source)
        status, body = on.request("POST", "/v1/keys", {
            "name": "bench", "grants": [{"source": "local", "schema": "public", "table": "*"}],
            "rate_limit": {"per_second": 1000000000},
        }, on.key)
        assert status == 201, body
        reader = json.loads(body)["key"]
        # Warm both (first plans, file footers, the reader's granted view).
        latencies(off, None, 200)
        latencies(on, reader, 200)
        rounds = {"off": [], "on": []}
        for _ in range(args.rounds):
            for name, server, key in (("off", off, None), ("on", on, reader)):
                rounds[name].append(wrk(server, key, args.seconds, work))
        audited = subprocess.run(
            ["psql", meta, "-qAtc", "SELECT count(*) FROM sluice_audit WHERE kind = 'query'"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        on.stop()
        off.stop()
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("p50", "p99", "rps")} for k, v in rounds.items()}
    added_us = (med["on"]["p50"] - med["off"]["p50"]) * 1000.0
    now = report_file.now()
    lines = [
        f"## Governance on vs off: {now} · commit {report_file.revision()} · `benches/governance.sh --rounds {args.rounds} --seconds {args.seconds} --log {args.log}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. `{SMALL_SQL}` as Arrow IPC, one keep-alive connection "
        f"(wrk -t1 -c1, {args.seconds} s per round), `SLUICE_LOG={args.log}`, rounds alternating off/on, median of {args.rounds} rounds. "
        "Off: `auth.mode = \"none\"` (no key, no grants, no limits; audit records stay in memory and the log). "
        "On: a reader key with a grant on `local.public.*` and a rate limit, keys, audit and usage in PostgreSQL (the spare test cluster).\n",
        "| | p50 ms | p99 ms | requests/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for k in ("off", "on"):
        lines.append(f"| governance {k} | {med[k]['p50']:.3f} | {med[k]['p99']:.3f} | {med[k]['rps']:.0f} |")
    target = "met" if added_us <= 50 else "missed"
    lines.append("")
    lines.append(f"Added at p50: **{added_us:.0f} µs** (target ≤ 50 µs: {target}). Audit rows written for the on server's queries: {audited}.\n")
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_write:
        report_file.prepend(report)


if __name__ == "__main__":
    main()
