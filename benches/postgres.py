#!/usr/bin/env python3
"""PostgreSQL source: a point lookup and a full-table stream, through Sluice and directly.

Run it through `benches/postgres.sh`, which starts the test services (the spare PostgreSQL
cluster: no TLS, no statement log), prepares the virtualenv and the release binary. On a table of
`--rows` rows (id int8 primary key, int4, text, numeric(12,2), timestamptz, text: ~130 bytes a
row on the wire) it measures:

1. **Point lookup**: 10 rows by the primary key (`id BETWEEN n AND n + 9`, a different `n` each
   run), `--runs` times, through Sluice (HTTP, Arrow IPC into pyarrow, one kept-alive
   connection) and through `psql` (one session, `\\timing`), interleaved in blocks.
2. **Bytes pulled**: the same lookup and the full scan once more through a second Sluice source
   whose connections go through a byte-counting TCP proxy, and through `psql` over the same
   proxy: the bytes PostgreSQL sent Sluice against the bytes it sends a client that asks for
   exactly that result. Also Sluice's own count of value bytes and its response size.
3. **Full-table stream**: `SELECT *` into a pyarrow client that drops each batch: rows/s and
   Sluice's peak RSS (VmHWM, reset before each run), beside a scan of a tenth of the table to
   show whether memory grows with size, and `psql`'s `COPY ... TO STDOUT (FORMAT binary)` of the
   table into /dev/null as PostgreSQL's own ceiling.

psql, Sluice, PostgreSQL and the client share the machine's cores, as in the e2e harness.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from e2e import (
    ROOT,
    Sluice,
    commit,
    log,
    machine,
    median,
    ms,
    percentile,
    ratio,
    verdict,
    write_results,
)

TABLE = "bench.t"


def psql(url: str, sql: str, *extra: str) -> str:
    out = subprocess.run(
        ["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "SET client_min_messages = warning", *extra, "-c", sql],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def prepare_table(url: str, rows: int) -> None:
    try:
        if int(psql(url, f"SELECT count(*) FROM {TABLE}")) == rows:
            log(f"{TABLE} already holds {rows} rows")
            return
    except RuntimeError:
        pass
    log(f"creating {TABLE} with {rows} rows")
    psql(
        url,
        f"""DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
        CREATE TABLE {TABLE} (id int8 PRIMARY KEY, k int4, name text, amount numeric(12, 2),
                             at timestamptz, note text);
        INSERT INTO {TABLE} SELECT g, g % 1000, 'name ' || g, (g % 100000) / 100.0,
               timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second',
               md5(g::text) || md5((g + 1)::text)
        FROM generate_series(1, {rows}) g;""",
    )
    psql(url, f"VACUUM ANALYZE {TABLE}")


class CountingProxy:
    """Forwards 127.0.0.1:port to the server, counting the bytes the server sends."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if count:
                    with self.lock:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def measure(self, fn) -> int:
        """Bytes the server sent while `fn` ran (after a moment for stragglers)."""
        time.sleep(0.2)
        with self.lock:
            before = self.down
        fn()
        time.sleep(0.2)
        with self.lock:
            return self.down - before


def metric(sluice: Sluice, name: str, source: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://{sluice.host}:{sluice.port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and f'source="{source}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def psql_timings(url: str, statements: list[str]) -> list[float]:
    """Runs the statements in one psql session with \\timing; returns each one's seconds."""
    script = "\\timing on\n" + "\n".join(s + ";" for s in statements) + "\n"
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["psql", url, "-X", "-q", "-A", "-t", "-o", "/dev/null", "-f", f.name],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    times = [float(m) / 1e3 for m in re.findall(r"Time: ([0-9.]+) ms", out.stdout + out.stderr)]
    if len(times) != len(statements):
        raise RuntimeError(f"psql reported {len(times)} timings for {len(statements)} statements")
    return times


def point_sql(n: int, catalog: str = "") -> str:
    table = f"{catalog}.{TABLE}" if catalog else TABLE
    return f"SELECT * FROM {table} WHERE id BETWEEN {n} AND {n + 9}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sluice", type=Path, required=True)
    parser.add_argument("--pg-url", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--stream-runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    url = args.pg_url
    host, port = re.search(r"@([^:/]+):(\d+)", url).groups()
    prepare_table(url, args.rows)
    proxy = CountingProxy((host, int(port)))
    proxied = re.sub(r"@[^:/]+:\d+", f"@127.0.0.1:{proxy.port}", url)
    sep = "&" if "?" in url else "?"
    source = lambda name, u, every: "\n".join(  # noqa: E731
        [
            "[[sources]]",
            f'name = "{name}"',
            'kind = "postgres"',
            f'replicas = ["{u}{sep}sslmode=disable"]',
            'schemas = ["bench"]',
            "max_concurrency = 4",
            f"health_check_interval_ms = {every}",
            "refresh_interval_ms = 0",
        ]
    )
    workdir = Path(tempfile.mkdtemp(prefix="sluice-pg-bench-"))
    # The counted source's probes are rare, so they do not add to its bytes.
    sluice = Sluice(
        args.sluice,
        ROOT / "testdata" / "tpch",
        workdir,
        source("pg", url, 10_000) + "\n" + source("pgc", proxied, 3_600_000),
    )
    failures: list[str] = []
    lines: list[str] = []
    try:
        # --- 1. point lookups ---------------------------------------------------------------
        for i in range(20):  # warm-up: connections, plans, caches
            sluice.query(point_sql(1000 + i * 10, "pg"), keep=False)
        psql_timings(url, [point_sql(1000 + i * 10) for i in range(20)])
        sluice_t, psql_t = [], []
        block = 20
        for b in range(0, args.runs, block):
            ns = [(b + i) * 4_000 % (args.rows - 10) + 1 for i in range(block)]
            for n in ns:
                f = sluice.query(point_sql(n, "pg"), keep=True)
                if f.rows != 10:
                    failures.append(f"point lookup {n} returned {f.rows} rows")
                sluice_t.append(f.total_s)
            psql_t.extend(psql_timings(url, [point_sql(n) for n in ns]))

        # --- 2. bytes pulled --------------------------------------------------------------------
        mid = args.rows // 2
        sluice.query(point_sql(77, "pgc"), keep=False)  # open the counted pool's connection
        values_before = metric(sluice, "sluice_source_bytes_read_total", "pgc")
        box = {}
        pulled_point = proxy.measure(lambda: box.update(f=sluice.query(point_sql(mid, "pgc"), keep=True)))
        if box["f"].rows != 10:
            failures.append(f"counted point lookup returned {box['f'].rows} rows")
        values_point = metric(sluice, "sluice_source_bytes_read_total", "pgc") - values_before
        response_point = box["f"].wire_bytes
        direct_point = proxy.measure(lambda: psql(proxied, point_sql(mid), "-o", "/dev/null"))
        values_before = metric(sluice, "sluice_source_bytes_read_total", "pgc")
        pulled_full = proxy.measure(lambda: box.update(f=sluice.query(f"SELECT * FROM pgc.{TABLE}", keep=False)))
        values_full = metric(sluice, "sluice_source_bytes_read_total", "pgc") - values_before
        response_full = box["f"].wire_bytes
        direct_full = proxy.measure(lambda: psql(proxied, f"SELECT * FROM {TABLE}", "-o", "/dev/null"))
        direct_full_binary = proxy.measure(
            lambda: psql(proxied, f"COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT binary)", "-o", "/dev/null")
        )

        # --- 3. full-table stream -----------------------------------------------------------
        def stream(sql: str) -> tuple[float, int, int]:
            sluice.reset_peak_rss()
            f = sluice.query(sql, keep=False)
            return f.total_s, f.rows, sluice.peak_rss_bytes()

        full, tenth, copy_t = [], [], []
        rss_full, rss_tenth = [], []
        floor = sluice.rss_bytes("VmRSS")
        for _ in range(args.stream_runs):
            t, rows, peak = stream(f"SELECT * FROM pg.{TABLE}")
            if rows != args.rows:
                failures.append(f"full scan returned {rows} rows")
            full.append(t)
            rss_full.append(peak)
            t, rows, peak = stream(f"SELECT * FROM pg.{TABLE} WHERE id <= {args.rows // 10}")
            tenth.append(t)
            rss_tenth.append(peak)
            start = time.perf_counter()
            psql(url, f"COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT binary)", "-o", "/dev/null")
            copy_t.append(time.perf_counter() - start)
    finally:
        sluice.stop()

    mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sp50, pp50 = percentile(sluice_t, 0.5), percentile(psql_t, 0.5)
    lines += [
        f"## PostgreSQL source: {now} · commit {commit()} · `benches/postgres.sh --rows {args.rows} --runs {args.runs}`",
        "",
        f"{machine()}; PostgreSQL {psql(url, 'SHOW server_version')} on loopback (no TLS), release build.",
        f"Table `{TABLE}`: {args.rows:,} rows, id int8 primary key, int4, text, numeric(12,2), timestamptz, text.",
        "",
        "**Point lookup**, 10 rows by primary key, all six columns "
        f"({args.runs} runs each, interleaved in blocks of 20):",
        "",
        "| | p50 | p90 | p99 |",
        "| --- | ---: | ---: | ---: |",
        f"| Sluice (HTTP, Arrow into pyarrow) | {ms(sp50)} ms | {ms(percentile(sluice_t, 0.9))} ms | {ms(percentile(sluice_t, 0.99))} ms |",
        f"| psql, one session (`\\timing`) | {ms(pp50)} ms | {ms(percentile(psql_t, 0.9))} ms | {ms(percentile(psql_t, 0.99))} ms |",
        f"| ratio / difference at p50 | {ratio(sp50, pp50)} | +{ms(sp50 - pp50)} ms | |",
        "",
        "**Bytes pulled** from PostgreSQL (counted on the wire by a proxy), against a client asking for exactly that result:",
        "",
        "| query | Sluice pulled | psql pulled, same SELECT (text) | ratio | value bytes (Sluice's metric) | Sluice's response (Arrow IPC) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| point lookup (10 rows) | {pulled_point:,} B | {direct_point:,} B | {ratio(pulled_point, direct_point)} | {values_point:,.0f} B | {response_point:,} B |",
        f"| full table | {mib(pulled_full)} | {mib(direct_full)} | {ratio(pulled_full, direct_full)} | {mib(values_full)} | {mib(response_full)} |",
        f"| full table, vs `COPY ... (FORMAT binary)` | {mib(pulled_full)} | {mib(direct_full_binary)} | {ratio(pulled_full, direct_full_binary)} | | |",
        "",
        f"**Full-table stream** ({args.stream_runs} runs, medians):",
        "",
        "| | time | rows/s | Sluice peak RSS |",
        "| --- | ---: | ---: | ---: |",
        f"| Sluice, `SELECT *` ({args.rows:,} rows) into pyarrow | {ms(median(full))} ms | {args.rows / median(full):,.0f} | {mib(median(rss_full))} |",
        f"| Sluice, a tenth of the table | {ms(median(tenth))} ms | {args.rows / 10 / median(tenth):,.0f} | {mib(median(rss_tenth))} |",
        f"| psql `COPY ... TO STDOUT (FORMAT binary)` into /dev/null | {ms(median(copy_t))} ms | {args.rows / median(copy_t):,.0f} | |",
        "",
        f"RSS before the scans: {mib(floor)}. Targets (issue 5): bytes pulled within 1.1x of the result: "
        f"point {verdict(pulled_point <= 1.1 * direct_point)}, full table {verdict(pulled_full <= 1.1 * direct_full)}; "
        f"RSS flat (full-table peak within 1.25x of the tenth's): {verdict(median(rss_full) <= 1.25 * median(rss_tenth))}.",
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
