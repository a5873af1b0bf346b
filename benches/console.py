"""The console with a large result, side by side in one run against the same release server:
the console in Debian's chromium (the Arrow stream decoded into the virtualized grid), a bare
fetch of the same bytes in the same page (the browser's transfer floor), and a pyarrow client
(`pyarrow.ipc.open_stream` over HTTP). Runs rotate the order of the sides.

Reports medians: time to the first drawn row (console) or first batch (pyarrow) or first byte
(fetch), time to the last row, the longest main-thread task while the console streamed, and
the JS heap after. Targets: the first rows drawn within 250 ms; no main-thread task over 100 ms
(the page answers input within RAIL's 100 ms while a million rows arrive); the console's whole
result within 2x pyarrow's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.ipc

import report as report_file
from server import Server

ROOT = Path(__file__).resolve().parent.parent
ARROW = "application/vnd.apache.arrow.stream"
STATEMENTS = [
    "SELECT * FROM lineitem LIMIT 1000000",
    "SELECT l_orderkey, l_partkey, l_quantity FROM lineitem LIMIT 1000000",
]


def pyarrow_side(url: str, key: str, sql: str) -> dict:
    req = urllib.request.Request(
        url + "/v1/query", data=json.dumps({"sql": sql}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": ARROW},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        reader = pyarrow.ipc.open_stream(r)
        first, rows = None, 0
        for batch in reader:
            if first is None:
                first = time.perf_counter() - start
            rows += batch.num_rows
    return {"first_ms": first * 1000, "total_ms": (time.perf_counter() - start) * 1000, "rows": rows}


def browser_side(url: str, key: str) -> dict:
    out = subprocess.run(
        ["node", str(ROOT / "benches" / "console.mjs"), url, key, *STATEMENTS],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--scale", default="1")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.sluice, Path(tmp), Path(args.data).resolve())
        for sql in STATEMENTS:  # warm: footers, plans
            pyarrow_side(server.url, server.key, sql)
        seen: dict[str, dict[str, list]] = {sql: {} for sql in STATEMENTS}
        for i in range(args.runs):
            sides = [("browser", lambda: browser_side(server.url, server.key)),
                     ("pyarrow", lambda: {sql: {"pyarrow": pyarrow_side(server.url, server.key, sql)} for sql in STATEMENTS})]
            for _, run in (sides if i % 2 == 0 else sides[::-1]):
                for sql, by_side in run().items():
                    for side, figures in by_side.items():
                        seen[sql].setdefault(side, []).append(figures)
            print(f"run {i + 1}/{args.runs} done", flush=True)
        server.stop()

    med = lambda xs: statistics.median(xs)
    lines = [
        f"## Console, a million rows in the browser: {report_file.now()} · commit {report_file.revision()} · `benches/console.sh --scale {args.scale} --runs {args.runs}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; Debian's chromium, headless, on the same machine. TPC-H SF {args.scale} Parquet, "
        "one release server, result cache off. Medians of "
        f"{args.runs} runs, the browser and pyarrow alternating first. ms unless said.\n",
        "| statement | console: first row | console: all rows | longest task | JS heap after | fetch only: first byte | fetch only: all | pyarrow: first batch | pyarrow: all | console / fetch only | console / pyarrow |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for sql in STATEMENTS:
        c, f, p = seen[sql]["console"], seen[sql]["fetch"], seen[sql]["pyarrow"]
        assert all(x["rows"] == 1_000_000 for x in c + p), (sql, c, p)
        first, total = med([x["first_row_ms"] for x in c]), med([x["total_ms"] for x in c])
        longest = max(x["longest_task_ms"] for x in c)
        heap = med([x["heap_bytes"] or 0 for x in c]) / 2**20
        ptotal = med([x["total_ms"] for x in p])
        ftotal = med([x["total_ms"] for x in f])
        spread = f"{min(x['total_ms'] for x in c):.0f}–{max(x['total_ms'] for x in c):.0f}"
        lines.append(
            f"| `{sql}` | {first:.0f} | {total:.0f} ({spread}) | {longest:.0f} (max) | {heap:.0f} MiB "
            f"| {med([x['first_byte_ms'] for x in f]):.0f} | {ftotal:.0f} "
            f"| {med([x['first_ms'] for x in p]):.0f} | {ptotal:.0f} | {total / ftotal:.2f} | {total / ptotal:.2f} |"
        )
        verdicts.append((sql, first <= 250, longest <= 100, total <= 2 * ptotal))
    lines.append("")
    for sql, a, b, c in verdicts:
        lines.append(
            f"`{sql}`: first rows within 250 ms {'met' if a else 'missed'}; no task over 100 ms "
            f"{'met' if b else 'missed'}; within 2x pyarrow {'met' if c else 'missed'}."
        )
    report = "\n".join(lines) + "\n\n"
    report_file.publish(report, not args.no_write)


if __name__ == "__main__":
    main()
