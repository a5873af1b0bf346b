"""What a hostile client costs a release Sluice (see floods.sh).

1. Memory per idle MCP session: one server with the session caps raised out of the way; the
   admin key opens sessions in steps (handshakes only, then left idle), and VmRSS is read after
   each step. Reported: RSS at each count and the slope (bytes per idle session), which is what
   `[mcp] max_sessions` bounds.
2. Handshakes refused at the caps: a server with the default caps; one reader key sends
   handshakes until refused; reported: sessions opened, refusal codes and refusal latency
   (p50/p99), and RSS before and after.
3. Made-up keys: requests with well-formed keys that do not exist, from many concurrent
   clients; reported: requests/s refused, refusal latency (p50/p99), and how many store lookups
   they cost (`sluice_key_lookup_statements_total`), with a real key's latency meanwhile.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, binary: str, extra: str = ""):
        work = Path(tempfile.mkdtemp(prefix="sluice-floods-"))
        config = work / "sluice.toml"
        config.write_text(
            "[server]\nlisten = \"127.0.0.1:0\"\ndefault_catalog = \"local\"\ndefault_schema = \"public\"\n"
            f"[metadata]\ndata_dir = \"{work}\"\n"
            f"{extra}\n"
            f"[[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{ROOT / 'testdata' / 'tpch'}\"\n"
        )
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
            env={**os.environ, "SLUICE_LOG": "error"},
        )
        line = self.proc.stdout.readline()
        self.url = line.split("url=")[1].split()[0]
        self.key = line.split("api_key=")[1].strip()
        host, port = self.url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, conn, method, path, key, body=None, headers=None):
        h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), data

    def reader(self, name: str) -> str:
        c = self.conn()
        status, _, body = self.request(c, "POST", "/v1/keys", self.key,
                                       {"name": name, "grants": [{"source": "local"}]})
        assert status == 201, body
        return json.loads(body)["key"]

    def metric(self, name: str) -> float:
        c = self.conn()
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        return sum(float(l.split()[-1]) for l in text.splitlines()
                   if l.startswith(name) and not l.startswith("#"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "bench", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}


def handshake(server: Server, conn, key: str) -> tuple[int, str | None, float]:
    t = time.perf_counter()
    status, headers, body = server.request(conn, "POST", "/mcp", key, INITIALIZE, MCP_HEADERS)
    ms = (time.perf_counter() - t) * 1000.0
    code = None
    if status != 200:
        code = json.loads(body)["error"]["data"]["code"]
    return status, code, ms


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def idle_sessions(binary: str, steps: list[int]) -> list[str]:
    server = Server(binary, "[mcp]\nmax_sessions = 1000000\nmax_sessions_per_key = 1000000\n"
                            "[limits.admin]\nper_second = 1000000\n")
    conn = server.conn()
    for _ in range(20):  # warm-up: first sessions allocate what every later one shares
        handshake(server, conn, server.key)
    time.sleep(1)
    base_count, base = 20, rss(server.proc.pid)
    rows = [(base_count, base)]
    opened = base_count
    for target in steps:
        while opened < target:
            status, _, _ = handshake(server, conn, server.key)
            assert status == 200
            opened += 1
        time.sleep(1)
        rows.append((opened, rss(server.proc.pid)))
    server.stop()
    (n0, r0), (n1, r1) = rows[0], rows[-1]
    per = (r1 - r0) / (n1 - n0)
    lines = ["### Memory per idle MCP session\n",
             "| sessions open | RSS, MiB |", "| ---: | ---: |"]
    lines += [f"| {n:,} | {r / 2**20:.1f} |" for n, r in rows]
    lines.append(f"\nSlope: **{per / 1024:.1f} KiB per idle session** "
                 f"({n1 - n0:,} sessions, {(r1 - r0) / 2**20:.1f} MiB). At the default "
                 f"`max_sessions = 1024`, idle sessions hold at most about {per * 1024 / 2**20:.0f} MiB.\n")
    return lines


def capped_handshakes(binary: str, n: int) -> list[str]:
    server = Server(binary)
    key = server.reader("flood")
    conn = server.conn()
    before = rss(server.proc.pid)
    statuses, codes, refused_ms, opened = [], {}, [], 0
    for _ in range(n):
        status, code, ms = handshake(server, conn, key)
        statuses.append(status)
        if status == 200:
            opened += 1
        else:
            codes[code] = codes.get(code, 0) + 1
            refused_ms.append(ms)
    after = rss(server.proc.pid)
    server.stop()
    return ["### One reader key's handshakes against the default caps\n",
            f"{n:,} sequential handshakes on one connection: {opened} sessions opened, refused "
            f"{json.dumps(codes)}; refusal p50 {pct(refused_ms, .5):.2f} ms, p99 {pct(refused_ms, .99):.2f} ms; "
            f"RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB.\n"]


def made_up_keys(binary: str, n: int, clients: int) -> list[str]:
    server = Server(binary)
    real = server.reader("real")
    lookups_before = server.metric("sluice_key_lookup_statements_total")

    def flood(i: int) -> tuple[int, float]:
        c = server.conn()
        out = []
        for j in range(i, n, clients):
            key = f"sluice_key_{j:012x}_{'ab' * 32}"
            t = time.perf_counter()
            status, _, _ = server.request(c, "POST", "/v1/query", key, {"sql": "SELECT 1"})
            out.append((status, (time.perf_counter() - t) * 1000.0))
        return out

    real_ms, real_bad = [], {}
    stop = False

    def steady():
        # A dashboard's pace (50 queries a second), under the reader role's default rate.
        c = server.conn()
        while not stop:
            t = time.perf_counter()
            status, _, _ = server.request(c, "POST", "/v1/query", real, {"sql": "SELECT count(*) FROM nation"})
            if status == 200:
                real_ms.append((time.perf_counter() - t) * 1000.0)
            else:
                real_bad[status] = real_bad.get(status, 0) + 1
            time.sleep(0.02)

    with concurrent.futures.ThreadPoolExecutor(clients + 1) as pool:
        steady_f = pool.submit(steady)
        t0 = time.perf_counter()
        results = [r for f in [pool.submit(flood, i) for i in range(clients)] for r in f.result()]
        took = time.perf_counter() - t0
        stop = True
        steady_f.result()
    lookups = server.metric("sluice_key_lookup_statements_total") - lookups_before
    server.stop()
    assert all(s == 401 for s, _ in results)
    ms = [m for _, m in results]
    return ["### Made-up keys\n",
            f"{n:,} requests with well-formed keys that do not exist, {clients} clients: all 401, "
            f"{n / took:,.0f} refused per second, refusal p50 {pct(ms, .5):.1f} ms, p99 {pct(ms, .99):.1f} ms; "
            f"**{lookups:.0f} store lookups** (one per 100 ms at most, the ids of each batch in one statement). "
            f"A real key meanwhile, 50 queries a second: {len(real_ms)} answered, p50 {pct(real_ms, .5):.2f} ms, "
            f"p99 {pct(real_ms, .99):.2f} ms, refused {json.dumps(real_bad)}.\n"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--sessions", type=int, default=4000)
    ap.add_argument("--handshakes", type=int, default=5000)
    ap.add_argument("--keys", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    steps = [args.sessions // 4, args.sessions // 2, args.sessions]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Floods: idle MCP sessions, capped handshakes, made-up keys: {now} · on {commit} · benches/floods.sh\n",
             f"Machine: {cpu}, {os.cpu_count()} cores. One release server per section, the embedded data, "
             "keys in a local folder.\n"]
    lines += idle_sessions(args.sluice, steps)
    lines += capped_handshakes(args.sluice, args.handshakes)
    lines += made_up_keys(args.sluice, args.keys, args.clients)
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_write:
        results = ROOT / "benches" / "RESULTS.md"
        text = results.read_text()
        head, sep, rest = text.partition("\n## ")
        results.write_text(head + "\n" + report + sep.lstrip("\n") + rest if sep else text + "\n" + report)


if __name__ == "__main__":
    main()
