#!/usr/bin/env python3
"""Snowflake source: a large result through Sluice and through the Python connector.

Run it through `benches/snowflake.sh`, which starts fakesnow (the test services), prepares the
virtualenv and the release binary. On a table of `--rows` rows (NUMBER(18,0), NUMBER(9,0),
VARCHAR, NUMBER(12,2), TIMESTAMP_NTZ) it measures, `--runs` times each, interleaved:

1. **Sluice**: `SELECT *` over HTTP as Arrow into a pyarrow client that drops each batch:
   time, rows/s, Sluice's peak RSS (VmHWM, reset before each run), and what Sluice fetched
   from Snowflake (its `sluice_source_bytes_read_total` and `sluice_snowflake_chunks_total`).
2. **The Python connector** (`snowflake-connector-python[pandas]` 4.8.1, from
   `benches/requirements.txt`): `cursor.execute(...)` then `fetch_arrow_all()` in a fresh process:
   time and that process's peak RSS.
3. **The emulator alone**: the query request answered to a bare HTTP client that reads the
   body and drops it, the floor both clients stand on.

fakesnow answers every result inline (`rowsetBase64`, no chunks): one JSON body with the whole
result as base64 Arrow. Real Snowflake sends a small first part and the rest as chunks, which
Sluice fetches `prefetch_chunks` at a time; those paths are proven by the test suite's scripted
exchanges, not measured here.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from e2e import ROOT, Sluice, commit, log, machine, median, ms, write_results

CONNECTOR = r"""
import resource, sys, time
import snowflake.connector
url, db, sql = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = url.split("//")[1].split(":")
start = time.perf_counter()
con = snowflake.connector.connect(user="bench", password="bench", account="bench", host=host,
    port=int(port), protocol="http", database=db, schema="PUBLIC", session_parameters={})
cur = con.cursor()
cur.execute(sql)
table = cur.fetch_arrow_all()
elapsed = time.perf_counter() - start
print(table.num_rows, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def post(url: str, path: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/snowflake"}
    if token:
        headers["Authorization"] = f'Snowflake Token="{token}"'
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def login(url: str, db: str | None) -> str:
    q = f"?databaseName={db}&schemaName=PUBLIC" if db else ""
    r = post(url, "/session/v1/login-request" + q, {"data": {"ACCOUNT_NAME": "bench", "LOGIN_NAME": "bench", "PASSWORD": "bench", "SESSION_PARAMETERS": {}}})
    return r["data"]["token"]


def run_sql(url: str, token: str, sql: str) -> dict:
    r = post(url, "/queries/v1/query-request?requestId=bench", {"sqlText": sql}, token)
    if not r["success"]:
        raise RuntimeError(f"{sql}: {r.get('message')}")
    return r


def prepare(url: str, db: str, rows: int) -> None:
    token = login(url, None)
    run_sql(url, token, f"CREATE DATABASE IF NOT EXISTS {db}")
    run_sql(url, token, f"CREATE SCHEMA IF NOT EXISTS {db}.PUBLIC")
    token = login(url, db)
    run_sql(url, token, "CREATE OR REPLACE TABLE big (id NUMBER(18,0), k NUMBER(9,0), name VARCHAR, amount NUMBER(12,2), ts TIMESTAMP_NTZ)")
    run_sql(
        url,
        token,
        "INSERT INTO big SELECT seq8(), seq8() % 1000, 'name ' || seq8(), (seq8() % 100000) / 100, "
        f"dateadd(second, seq8(), '2020-01-01'::timestamp_ntz) FROM table(generator(rowcount => {rows}))",
    )


def metric(sluice: Sluice, name: str, source: str) -> float:
    text = urllib.request.urlopen(f"http://{sluice.host}:{sluice.port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and f'source="{source}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sluice", type=Path, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--connector-python", required=True)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    db = "SLUICE_BENCH"
    log(f"loading {args.rows:,} rows into fakesnow")
    prepare(args.url, db, args.rows)
    workdir = Path(tempfile.mkdtemp(prefix="sluice-sf-bench-"))
    source = "\n".join(
        [
            "[[sources]]",
            'name = "sf"',
            'kind = "snowflake"',
            'account = "bench"',
            f'url = "{args.url}"',
            'user = "bench"',
            'auth = { type = "password", password_env = "SLUICE_BENCH_SF_PASSWORD" }',
            f'database = "{db}"',
            'schemas = ["PUBLIC"]',
            "max_concurrency = 4",
            "health_check_interval_ms = 3600000",
            "refresh_interval_ms = 0",
        ]
    )
    import os

    os.environ["SLUICE_BENCH_SF_PASSWORD"] = "bench"
    sluice = Sluice(args.sluice, ROOT / "testdata" / "tpch", workdir, source)
    failures: list[str] = []
    sql_sf = "SELECT * FROM big"
    s_t, s_rss, c_t, c_rss, e_t = [], [], [], [], []
    fetched_bytes, chunks = [], []
    try:
        sluice.query("SELECT count(*) FROM sf.public.big", keep=False)  # session, catalog
        token = login(args.url, db)
        for run in range(args.runs):
            sluice.reset_peak_rss()
            before_b = metric(sluice, "sluice_source_bytes_read_total", "sf")
            before_c = metric(sluice, "sluice_snowflake_chunks_total", "sf")
            f = sluice.query("SELECT * FROM sf.public.big", keep=False)
            if f.rows != args.rows:
                failures.append(f"Sluice returned {f.rows} rows")
            s_t.append(f.total_s)
            s_rss.append(sluice.peak_rss_bytes())
            fetched_bytes.append(metric(sluice, "sluice_source_bytes_read_total", "sf") - before_b)
            chunks.append(metric(sluice, "sluice_snowflake_chunks_total", "sf") - before_c)

            out = subprocess.run(
                [args.connector_python, "-c", CONNECTOR, args.url, db, sql_sf],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"the connector failed: {out.stderr[-2000:]}")
            n, t, rss = out.stdout.split()
            if int(n) != args.rows:
                failures.append(f"the connector returned {n} rows")
            c_t.append(float(t))
            c_rss.append(int(rss))

            start = time.perf_counter()
            req = urllib.request.Request(
                args.url + "/queries/v1/query-request?requestId=floor",
                data=json.dumps({"sqlText": sql_sf}).encode(),
                headers={"Content-Type": "application/json", "Authorization": f'Snowflake Token="{token}"'},
            )
            with urllib.request.urlopen(req, timeout=3600) as r:
                body_len = len(r.read())
            e_t.append(time.perf_counter() - start)
            log(f"run {run}: sluice {s_t[-1]:.2f} s, connector {c_t[-1]:.2f} s, emulator {e_t[-1]:.2f} s ({body_len:,} B)")
    finally:
        sluice.stop()

    mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = args.rows
    lines = [
        f"## Snowflake source: {now} · commit {commit()} · `benches/snowflake.sh --rows {rows} --runs {args.runs}`",
        "",
        f"{machine()}; fakesnow 0.12.1 on loopback, release build. Table `BIG`: {rows:,} rows of "
        "NUMBER(18,0), NUMBER(9,0), VARCHAR, NUMBER(12,2), TIMESTAMP_NTZ. Medians of "
        f"{args.runs} runs, interleaved.",
        "",
        "| client | time | rows/s | peak RSS |",
        "| --- | ---: | ---: | ---: |",
        f"| Sluice: `SELECT *` over HTTP as Arrow into pyarrow | {ms(median(s_t))} ms | {rows / median(s_t):,.0f} | {mib(median(s_rss))} (server) |",
        f"| Python connector 4.x: `execute` + `fetch_arrow_all()` (incl. login) | {ms(median(c_t))} ms | {rows / median(c_t):,.0f} | {mib(median(c_rss))} (process) |",
        f"| fakesnow alone: the query request, body read and dropped | {ms(median(e_t))} ms | {rows / median(e_t):,.0f} | |",
        "",
        f"Fetched by Sluice per run: {mib(median(fetched_bytes))} of Arrow (decoded from base64), "
        f"{median(chunks):.0f} chunks (fakesnow sends every result inline).",
    ]
    if failures:
        lines += ["", "Failures: " + "; ".join(failures)]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_results(ROOT / "benches" / "RESULTS.md", text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
