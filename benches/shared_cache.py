"""Two release Sluice servers sharing one Redis (`[cache] redis_url`), side by side.

For each statement: server A runs it (a miss: it runs and is written to Redis); then server B's
first request for it (the issue's row: it must be a hit, from Redis), B's second (a hit from its
own memory), and the same statement on a third server with the result cache off (what the
statement costs run). Median of `--rounds` rounds; each round uses statements no earlier round
asked (a tag in the select list), so every A request is a real miss.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import Sluice, commit, free_port, log, machine  # noqa: E402

STATEMENTS = {
    "point lookup (1 row)": "SELECT n_name, n_regionkey, '{tag}' AS t FROM nation WHERE n_nationkey = 7",
    "TPC-H Q6 (1 row, scans lineitem)": None,
    "TPC-H Q1 (4 rows, aggregates lineitem)": None,
    "orders, 50,000 rows": "SELECT *, '{tag}' AS t FROM orders ORDER BY o_orderkey LIMIT 50000",
}


def ask(server: Sluice, sql: str) -> tuple[float, str, int]:
    """(seconds, X-Sluice-Cache, body bytes) of one Arrow request on a fresh connection."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=600)
    body = json.dumps({"sql": sql}).encode()
    start = time.perf_counter()
    conn.request("POST", "/v1/query", body=body, headers={
        "Authorization": f"Bearer {server.key}",
        "Accept": "application/vnd.apache.arrow.stream",
        "Content-Type": "application/json",
    })
    resp = conn.getresponse()
    data = resp.read()
    took = time.perf_counter() - start
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
    return took, resp.getheader("x-sluice-cache") or "", len(data)


def redis_keys(port: int) -> int:
    out = subprocess.run(["redis-cli", "-p", str(port), "--raw", "DBSIZE"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip() or 0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--sluice", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--results", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    args = ap.parse_args()
    queries = Path(__file__).resolve().parent / "tpch"
    statements = dict(STATEMENTS)
    for name, q in (("TPC-H Q6 (1 row, scans lineitem)", "q06"), ("TPC-H Q1 (4 rows, aggregates lineitem)", "q01")):
        text = (queries / f"{q}.sql").read_text().strip().rstrip(";")
        # The tag goes into the select list of the outermost query.
        statements[name] = text.replace("SELECT", "SELECT '{tag}' AS t,", 1)

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="sluice-shared-"))
    servers = []
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        extra = f'[cache]\nredis_url = "redis://127.0.0.1:{port}"\n'
        a = Sluice(args.sluice, args.data, work / "a", cache=True, cache_config=extra)
        b = Sluice(args.sluice, args.data, work / "b", cache=True, cache_config=extra)
        plain = Sluice(args.sluice, args.data, work / "plain")
        servers = [a, b, plain]
        rows = {name: {"a": [], "b1": [], "b2": [], "run": [], "bytes": 0, "b1_cache": set()} for name in statements}
        for r in range(args.rounds):
            for name, template in statements.items():
                sql = template.replace("{tag}", uuid.uuid4().hex)
                before = redis_keys(port)
                t_a, c_a, n = ask(a, sql)
                assert c_a == "miss", (name, c_a)
                for _ in range(400):
                    if redis_keys(port) > before:
                        break
                    time.sleep(0.005)
                else:
                    raise RuntimeError(f"{name}: A's result never reached Redis")
                t_b1, c_b1, n_b1 = ask(b, sql)
                t_b2, c_b2, _ = ask(b, sql)
                t_run, _, n_run = ask(plain, sql)
                assert n_b1 == n == n_run, (name, n, n_b1, n_run)
                assert c_b2 == "hit", (name, c_b2)
                row = rows[name]
                row["a"].append(t_a); row["b1"].append(t_b1); row["b2"].append(t_b2); row["run"].append(t_run)
                row["bytes"] = n
                row["b1_cache"].add(c_b1)
            log(f"round {r + 1}/{args.rounds} done")
    finally:
        for s in servers:
            s.stop()
        redis.terminate()
        redis.wait(10)

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"## Shared result cache (two servers, one Redis): {when} · commit {commit()} · `benches/shared_cache.sh --rounds {args.rounds}`",
        "",
        f"Machine: {machine()}. Release build, TPC-H SF 1 from local Parquet, Redis {subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2].removeprefix('v=')} on loopback.",
        "Each statement is new to both servers (a fresh tag per round); one request per fresh connection, Arrow IPC, median ms of the rounds.",
        "",
        "| statement | result bytes | A: first run (miss) | B: first request | B's first answer | B: again (own memory) | run, cache off |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for name, row in rows.items():
        med = lambda k: f"{statistics.median(row[k]) * 1000:.2f}"
        out.append(f"| {name} | {row['bytes']:,} | {med('a')} | {med('b1')} | {'/'.join(sorted(row['b1_cache']))} | {med('b2')} | {med('run')} |")
    text = "\n".join(out) + "\n"
    print(text)
    old = args.results.read_text() if args.results.exists() else ""
    head, sep, rest = old.partition("\n## ")
    args.results.write_text(head.rstrip() + "\n\n" + text + ("\n## " + rest if sep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
