"""Flight SQL benchmark: Sluice's Flight SQL door against its own HTTP Arrow stream and nginx
serving the same bytes, small-query latency on both doors, and TPC-H over Flight against
embedded DataFusion, side by side in one run (benches/flight.sh)."""

import argparse
import http.client
import shutil
import statistics
import sys
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
import e2e  # noqa: E402

SMALL_SQL = "SELECT n_name FROM nation WHERE n_nationkey = 7"


def flight_conn(sluice: e2e.Sluice):
    return flight_sql.connect(sluice.flight, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {sluice.key}"})


def flight_scan(conn, sql: str) -> tuple[int, float]:
    """Rows and seconds: ADBC's reader into pyarrow batches."""
    start = time.perf_counter()
    cur = conn.cursor()
    cur.execute(sql)
    rows = sum(b.num_rows for b in cur.fetch_record_batch())
    total = time.perf_counter() - start
    cur.close()
    return rows, total


def flight_table(conn, sql: str) -> pa.Table:
    cur = conn.cursor()
    cur.execute(sql)
    t = cur.fetch_arrow_table()
    cur.close()
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="1")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--sluice", type=Path, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--small", type=int, default=300)
    p.add_argument("--results", type=Path, default=e2e.ROOT / "benches/RESULTS.md")
    p.add_argument("--no-write", action="store_true")
    a, _ = p.parse_known_args()
    work = e2e.ROOT / "target/bench/flight"
    sluice = e2e.Sluice(a.sluice, a.data, work, extra_config='[flight]\nlisten = "127.0.0.1:0"')
    nginx_root = work / "www"
    nginx_root.mkdir(parents=True, exist_ok=True)
    nginx = e2e.Nginx(nginx_root, work)
    df = e2e.EmbeddedDataFusion(a.data)
    lines = []
    try:
        conn = flight_conn(sluice)
        # The bytes HTTP sends for the scan, served by nginx as a static file.
        body = nginx_root / "lineitem.arrows"
        client = sluice.new_client()
        # A first HTTP scan warms the server up and counts the rows Flight must match.
        fetch = client.fetch("POST", "/v1/query", sluice.body(e2e.SCAN_SQL), keep=False)
        conn_http = http.client.HTTPConnection(sluice.host, sluice.port, timeout=600)
        conn_http.request("POST", "/v1/query", body=sluice.body(e2e.SCAN_SQL), headers=client.headers)
        with open(body, "wb") as f:
            shutil.copyfileobj(conn_http.getresponse(), f, 1 << 20)
        conn_http.close()
        wire = body.stat().st_size
        rates = {"flight": [], "http": [], "nginx": []}
        for run in range(a.runs):
            for name in e2e.rotations(list(rates), run):
                if name == "flight":
                    rows, total = flight_scan(conn, e2e.SCAN_SQL)
                    assert rows == fetch.rows, (rows, fetch.rows)
                    rates[name].append(wire / total)
                elif name == "http":
                    f = client.fetch("POST", "/v1/query", sluice.body(e2e.SCAN_SQL), keep=False)
                    rates[name].append(f.wire_bytes / f.total_s)
                else:
                    f = nginx.fetch("/lineitem.arrows")
                    rates[name].append(f.wire_bytes / f.total_s)
        med = {k: statistics.median(v) / 1e9 for k, v in rates.items()}
        e2e.log(f"scan GB/s: {med}")
        # Small queries: p50 over each door (Flight: the same statement on one cursor, so ADBC
        # prepares once; HTTP: one keep-alive connection).
        small = {"flight": [], "http": []}
        cur = conn.cursor()
        for _ in range(a.small):
            t = time.perf_counter()
            cur.execute(SMALL_SQL)
            cur.fetchall()
            small["flight"].append(time.perf_counter() - t)
            t = time.perf_counter()
            client.fetch("POST", "/v1/query", sluice.body(SMALL_SQL), keep=True)
            small["http"].append(time.perf_counter() - t)
        cur.close()
        p50 = {k: statistics.median(v) * 1000 for k, v in small.items()}
        e2e.log(f"small p50 ms: {p50}")
        # TPC-H over Flight vs embedded DataFusion: the median of each query, summed.
        sums = {"flight": 0.0, "http": 0.0, "datafusion": 0.0}
        per = []
        for n in range(1, 23):
            sql = (e2e.ROOT / "benches/tpch" / f"q{n:02}.sql").read_text()
            times = {"flight": [], "http": [], "datafusion": []}
            for run in range(a.runs):
                for name in e2e.rotations(list(times), run):
                    t = time.perf_counter()
                    if name == "flight":
                        got = flight_table(conn, sql)
                    elif name == "http":
                        client.fetch("POST", "/v1/query", sluice.body(sql), keep=False)
                    else:
                        want = df.query(sql)
                    times[name].append(time.perf_counter() - t)
            assert got.num_rows == want.num_rows, (n, got.num_rows, want.num_rows)
            m = {k: statistics.median(v) for k, v in times.items()}
            per.append((n, m["flight"], m["http"], m["datafusion"]))
            for k in sums:
                sums[k] += m[k]
        conn.close()
        client.close()
        lines = [
            f"## Flight SQL ({time.strftime('%Y-%m-%d')}, commit {e2e.commit()}, {e2e.machine()}, SF {a.scale}, {a.runs} runs)",
            "",
            f"`SELECT * FROM lineitem` ({wire / 1e6:.0f} MB of Arrow IPC), median GB/s:",
            "",
            "| Flight DoGet (ADBC → pyarrow) | HTTP Arrow (pyarrow) | nginx, same bytes | Flight / HTTP | Flight / nginx |",
            "| --- | --- | --- | --- | --- |",
            f"| {med['flight']:.2f} | {med['http']:.2f} | {med['nginx']:.2f} | {med['flight'] / med['http']:.2f}x | {med['flight'] / med['nginx']:.2f}x |",
            "",
            f"Small query (`{SMALL_SQL}`), p50 over {a.small}: Flight {p50['flight']:.2f} ms, HTTP {p50['http']:.2f} ms.",
            "",
            f"TPC-H SF {a.scale}, 22 queries, sum of medians: Flight {sums['flight']:.2f} s, HTTP Arrow {sums['http']:.2f} s, "
            f"embedded DataFusion {sums['datafusion']:.2f} s (Flight {sums['flight'] / sums['datafusion']:.2f}x, HTTP {sums['http'] / sums['datafusion']:.2f}x of DataFusion).",
            "",
            "| query | Flight s | HTTP s | DataFusion s | Flight / DataFusion | Flight / HTTP |",
            "| --- | --- | --- | --- | --- | --- |",
            *[f"| q{n:02} | {f:.3f} | {h:.3f} | {d:.3f} | {f / d:.2f}x | {f / h:.2f}x |" for n, f, h, d in per],
            "",
        ]
    finally:
        nginx.stop()
        sluice.stop()
    report = "\n".join(lines)
    print(report)
    if not a.no_write and lines:
        old = a.results.read_text() if a.results.exists() else ""
        head, sep, rest = old.partition("\n## ")
        a.results.write_text(head + "\n" + report + ("\n## " + rest if sep else ""))


if __name__ == "__main__":
    main()
