"""MCP vs /v1/query: the small query's latency, and tokens per row of the results (see mcp.sh).

Latency, side by side in one run, alternating rounds, one keep-alive connection each:
- `/v1/query` with `Accept: application/json`;
- `tools/call query` over /mcp as a 2026-07-28 client sends it (one POST, no session);
- the same tool call through the official Python SDK (`mcp` Client, auto mode), which adds its
  own validation and framing: what an agent built on it sees.

Tokens per row: the query tool's compact result (columns once, rows as arrays, the same JSON in
`structuredContent` and text, counted once) against the plain JSON-rows encoding many database
MCP servers return (`[{"column": value, ...}, ...]`), counted with a real LLM tokenizer (Mistral's
Tekken, 131k-entry BPE, bundled in the `mistral-common` wheel: nothing is downloaded).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import sys
from pathlib import Path

# This file is named like the SDK's package: drop its folder from the import path so
# `import mcp` finds the SDK, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ROOT = Path(__file__).resolve().parent.parent
SMALL_SQL = "SELECT n_name, n_regionkey FROM local.public.nation WHERE n_nationkey = 7"
TOKEN_QUERIES = {
    "nation (4 columns)": "SELECT * FROM local.public.nation ORDER BY n_nationkey",
    "orders (9 columns)": "SELECT * FROM local.public.orders ORDER BY o_orderkey LIMIT 100",
    "lineitem (16 columns)": "SELECT * FROM local.public.lineitem ORDER BY l_orderkey, l_linenumber LIMIT 100",
}
MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
}


class Server:
    def __init__(self, binary: str):
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(self._config())],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
            env={**os.environ, "SLUICE_LOG": "warn"},
        )
        line = self.proc.stdout.readline()
        self.url = line.split("url=")[1].split()[0]
        self.key = line.split("api_key=")[1].strip()
        host, port = self.url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)

    @staticmethod
    def _config() -> Path:
        # The embedded default with the result cache off: every request runs its statement,
        # on both paths alike (a fresh key store, so the ready line carries a new admin key).
        work = Path(tempfile.mkdtemp(prefix="sluice-mcp-bench-"))
        config = work / "sluice.toml"
        config.write_text(
            "[server]\nlisten = \"127.0.0.1:0\"\ndefault_catalog = \"local\"\ndefault_schema = \"public\"\n"
            f"[metadata]\ndata_dir = \"{work}\"\n"
            "[cache]\ncapacity_bytes = 0\n"
            f"[[sources]]\nname = \"local\"\nkind = \"parquet\"\nlocation = \"{ROOT / 'testdata' / 'tpch'}\"\n"
        )
        return config

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def v1(server: Server, conn: http.client.HTTPConnection, sql: str) -> dict:
    conn.request("POST", "/v1/query", body=json.dumps({"sql": sql}), headers={
        "Authorization": f"Bearer {server.key}", "Content-Type": "application/json",
        "Accept": "application/json"})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, body
    return json.loads(body)


def tool_call(server: Server, conn: http.client.HTTPConnection, sql: str, max_rows: int = 500) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "query", "arguments": {"sql": sql, "max_rows": max_rows}, "_meta": META}}
    conn.request("POST", "/mcp", body=json.dumps(body), headers={
        "Authorization": f"Bearer {server.key}", "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call", "Mcp-Name": "query"})
    r = conn.getresponse()
    text = r.read().decode()
    assert r.status == 200, text
    if r.getheader("content-type", "").startswith("text/event-stream"):
        data = [l[5:].strip() for l in text.splitlines() if l.startswith("data:") and l[5:].strip()]
        text = data[-1]
    message = json.loads(text)
    assert message["result"]["isError"] is False, message
    return message["result"]


def timed(f, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


async def sdk_latencies(server: Server, n: int) -> list[float]:
    import httpx2 as httpx
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    http_client = httpx.AsyncClient(headers={"Authorization": f"Bearer {server.key}"})
    async with Client(streamable_http_client(server.url + "/mcp", http_client=http_client)) as c:
        await c.call_tool("query", {"sql": SMALL_SQL})
        out = []
        for _ in range(n):
            t = time.perf_counter()
            r = await c.call_tool("query", {"sql": SMALL_SQL})
            out.append((time.perf_counter() - t) * 1000.0)
            assert not r.is_error
        return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def tokenizer():
    import mistral_common
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    tok = Tekkenizer.from_file(str(path))
    return lambda text: len(tok.encode(text, bos=False, eos=False))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", default=str(ROOT / "target/release/sluice"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--sdk-requests", type=int, default=500)
    ap.add_argument("--out", default=str(ROOT / "target/bench/mcp.json"))
    args = ap.parse_args()

    server = Server(args.sluice)
    try:
        lat = {"/v1/query": [], "MCP tools/call (raw POST)": [], "MCP tools/call (Python SDK)": []}
        c1, c2 = server.connection(), server.connection()
        for _ in range(50):
            v1(server, c1, SMALL_SQL)
            tool_call(server, c2, SMALL_SQL)
        for r in range(args.rounds):
            # Fresh connections each round: the SDK's turn outlasts the server's keep-alive.
            c1, c2 = server.connection(), server.connection()
            lat["/v1/query"] += timed(lambda: v1(server, c1, SMALL_SQL), args.requests)
            lat["MCP tools/call (raw POST)"] += timed(lambda: tool_call(server, c2, SMALL_SQL), args.requests)
            lat["MCP tools/call (Python SDK)"] += asyncio.run(sdk_latencies(server, args.sdk_requests))
            print(f"round {r + 1}/{args.rounds} done", flush=True)

        count = tokenizer()
        tokens = {}
        c1, c2 = server.connection(), server.connection()
        for label, sql in TOKEN_QUERIES.items():
            result = tool_call(server, c2, sql, max_rows=100)
            compact = result["content"][0]["text"]
            assert json.loads(compact) == result["structuredContent"]
            rows = v1(server, c1, sql)
            names = [c["name"] for c in rows["columns"]]
            plain = json.dumps([dict(zip(names, row)) for row in rows["rows"]])
            n = len(rows["rows"])
            assert result["structuredContent"]["row_count"] == n, (label, result["structuredContent"]["row_count"], n)
            tokens[label] = {
                "rows": n,
                "compact_tokens_per_row": count(compact) / n,
                "plain_tokens_per_row": count(plain) / n,
                "compact_bytes_per_row": len(compact.encode()) / n,
                "plain_bytes_per_row": len(plain.encode()) / n,
            }
    finally:
        server.stop()

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "latency_ms": {k: {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "mean": statistics.fmean(v)} for k, v in lat.items()},
        "tokens": tokens,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\n{report['date']} {report['commit']} {report['machine']}")
    print(f"\n| path | requests | p50 ms | p99 ms | mean ms |\n| --- | --- | --- | --- | --- |")
    for k, v in report["latency_ms"].items():
        print(f"| {k} | {v['n']} | {v['p50']:.2f} | {v['p99']:.2f} | {v['mean']:.2f} |")
    print(f"\n| result | rows | compact tokens/row | plain JSON rows tokens/row | ratio | compact bytes/row | plain bytes/row |\n| --- | --- | --- | --- | --- | --- | --- |")
    for k, v in tokens.items():
        ratio = v["compact_tokens_per_row"] / v["plain_tokens_per_row"]
        print(f"| {k} | {v['rows']} | {v['compact_tokens_per_row']:.1f} | {v['plain_tokens_per_row']:.1f} | {ratio:.2f} | {v['compact_bytes_per_row']:.0f} | {v['plain_bytes_per_row']:.0f} |")


if __name__ == "__main__":
    main()
