"""PostgreSQL-protocol benchmark (benches/pg.sh): Sluice's PostgreSQL door read by psycopg in
binary, against the same statement over HTTP Arrow and Flight SQL, and against PostgreSQL itself
serving the same rows, side by side in one run."""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
import e2e  # noqa: E402

SMALL_SQL = "SELECT n_name FROM nation WHERE n_nationkey = 7"
FETCH = 50_000


def pg_fetch(conn, sql: str) -> tuple[int, float]:
    """Rows and seconds: psycopg's binary cursor, rows fetched in chunks into Python tuples."""
    start = time.perf_counter()
    rows = 0
    with conn.cursor(binary=True) as cur:
        cur.execute(sql)
        while True:
            chunk = cur.fetchmany(FETCH)
            if not chunk:
                break
            rows += len(chunk)
    return rows, time.perf_counter() - start


def load_postgres(url: str, data: Path, tables: list[str]) -> None:
    """TPC-H tables into PostgreSQL, through CSV (duckdb reads the Parquet)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for t in tables:
            have = conn.execute(f"SELECT to_regclass('public.{t}') IS NOT NULL").fetchone()[0]
            if have:
                continue
            e2e.log(f"loading {t} into PostgreSQL")
            rel = duckdb.read_parquet(str(data / f"{t}.parquet"))
            cols = ", ".join(
                f"{c} {'bigint' if str(ty) in ('BIGINT', 'INTEGER') else 'numeric(15,2)' if 'DECIMAL' in str(ty) else 'date' if str(ty) == 'DATE' else 'text'}"
                for c, ty in zip(rel.columns, rel.types)
            )
            conn.execute(f"CREATE TABLE {t} ({cols})")
            csv = Path("target/bench/pg") / f"{t}.csv"
            csv.parent.mkdir(parents=True, exist_ok=True)
            rel.write_csv(str(csv))
            with conn.cursor().copy(f"COPY {t} FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
                with open(csv, "rb") as f:
                    while block := f.read(1 << 20):
                        copy.write(block)
            conn.execute(f"ANALYZE {t}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="1")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--sluice", type=Path, required=True)
    p.add_argument("--pg-url", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--small", type=int, default=300)
    p.add_argument("--results", type=Path, default=e2e.ROOT / "benches/RESULTS.md")
    p.add_argument("--no-write", action="store_true")
    a, _ = p.parse_known_args()
    load_postgres(a.pg_url, a.data, ["nation", "lineitem"])
    work = e2e.ROOT / "target/bench/pg"
    sluice = e2e.Sluice(
        a.sluice, a.data, work,
        extra_config='[flight]\nlisten = "127.0.0.1:0"\n[pg]\nlisten = "127.0.0.1:0"',
    )
    lines = []
    try:
        pg_host, pg_port = sluice.pg.removeprefix("postgresql://").split("?")[0].rsplit(":", 1)
        door = psycopg.connect(host=pg_host, port=int(pg_port), user="bench", password=sluice.key,
                               dbname="tpch", sslmode="disable", prepare_threshold=1)
        door.autocommit = True
        direct = psycopg.connect(a.pg_url, prepare_threshold=1)
        direct.autocommit = True
        flight = flight_sql.connect(sluice.flight,
                                    db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {sluice.key}"})
        client = sluice.new_client()
        # Small queries: p50 of each, one connection each (psycopg prepares after the first).
        small = {"pg door": [], "http": [], "flight": [], "postgres": []}
        fcur = flight.cursor()
        for _ in range(a.small):
            for name in small:
                t = time.perf_counter()
                if name == "pg door":
                    with door.cursor(binary=True) as cur:
                        cur.execute(SMALL_SQL)
                        cur.fetchall()
                elif name == "postgres":
                    with direct.cursor(binary=True) as cur:
                        cur.execute(SMALL_SQL)
                        cur.fetchall()
                elif name == "http":
                    client.fetch("POST", "/v1/query", sluice.body(SMALL_SQL), keep=True)
                else:
                    fcur.execute(SMALL_SQL)
                    fcur.fetchall()
                small[name].append(time.perf_counter() - t)
        fcur.close()
        p50 = {k: statistics.median(v) * 1000 for k, v in small.items()}
        e2e.log(f"small p50 ms: {p50}")
        # The fetch: rows/s of each.
        rates = {"pg door": [], "postgres": [], "http": [], "flight": []}
        rows_seen = {}
        for run in range(a.runs):
            for name in e2e.rotations(list(rates), run):
                if name == "pg door":
                    rows, total = pg_fetch(door, e2e.SCAN_SQL)
                elif name == "postgres":
                    rows, total = pg_fetch(direct, e2e.SCAN_SQL)
                elif name == "http":
                    f = client.fetch("POST", "/v1/query", sluice.body(e2e.SCAN_SQL), keep=False)
                    rows, total = f.rows, f.total_s
                else:
                    t = time.perf_counter()
                    cur = flight.cursor()
                    cur.execute(e2e.SCAN_SQL)
                    rows = sum(b.num_rows for b in cur.fetch_record_batch())
                    cur.close()
                    total = time.perf_counter() - t
                rows_seen.setdefault(name, rows)
                rates[name].append(rows / total)
                e2e.log(f"{name}: {rows} rows in {total:.2f} s")
        assert len(set(rows_seen.values())) == 1, rows_seen
        med = {k: statistics.median(v) / 1e6 for k, v in rates.items()}
        e2e.log(f"fetch M rows/s: {med}")
        door.close()
        direct.close()
        flight.close()
        client.close()
        n = next(iter(rows_seen.values()))
        lines = [
            f"## PostgreSQL protocol ({time.strftime('%Y-%m-%d')}, commit {e2e.commit()}, {e2e.machine()}, SF {a.scale}, {a.runs} runs)",
            "",
            f"`{e2e.SCAN_SQL}` ({n:,} rows), median million rows/s (psycopg: binary, fetchmany({FETCH:,}) into tuples; "
            "HTTP: pyarrow; Flight: ADBC into Arrow batches):",
            "",
            "| pg door (psycopg) | PostgreSQL 15 itself (psycopg) | HTTP Arrow | Flight SQL | door / PostgreSQL |",
            "| --- | --- | --- | --- | --- |",
            f"| {med['pg door']:.2f} | {med['postgres']:.2f} | {med['http']:.2f} | {med['flight']:.2f} | {med['pg door'] / med['postgres']:.2f}x |",
            "",
            f"Small query (`{SMALL_SQL}`), p50 over {a.small}: pg door {p50['pg door']:.2f} ms, PostgreSQL {p50['postgres']:.2f} ms, "
            f"HTTP {p50['http']:.2f} ms, Flight {p50['flight']:.2f} ms.",
            "",
        ]
    finally:
        sluice.stop()
    report = "\n".join(lines)
    print(report)
    if not a.no_write and lines:
        old = a.results.read_text() if a.results.exists() else ""
        head, sep, rest = old.partition("\n## ")
        a.results.write_text(head + "\n" + report + ("\n## " + rest if sep else ""))


if __name__ == "__main__":
    main()
