"""Failover under load: errors, latency, detection and readmission (see failover.sh)."""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True)


def services(what: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "services.sh"), what, "postgres_spare"], check=True)


class Client:
    def __init__(self, url: str, key: str | None):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.key = key

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            r = self.conn.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            return 0, str(e).encode()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * q))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--main", required=True)
    ap.add_argument("--spare", required=True)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--interval-ms", type=int, default=1000, help="health_check_interval_ms")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    table = f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.t AS SELECT g AS x FROM generate_series(1, 1000) g"
    for url in (args.main, args.spare):
        psql(url, table)
    sql = f"SELECT count(*), sum(x) FROM pg.{schema}.t"
    config = (
        "[limits]\nmax_concurrent_queries = 256\n"
        "[metadata]\ndata_dir = \"{tmp}\"\n"
        f'[[sources]]\nname = "pg"\nkind = "postgres"\nreplicas = ["{args.main}", "{args.spare}"]\n'
        f'schemas = ["{schema}"]\nmax_concurrency = {args.clients}\nhealth_check_interval_ms = {args.interval_ms}\n'
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "failover.toml"
        cfg.write_text(config.replace("{tmp}", tmp))
        log = open(Path(tmp) / "sluice.log", "w")
        proc = subprocess.Popen(
            [args.sluice, "serve", "--listen", "127.0.0.1:0", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT,
            env={**os.environ, "SLUICE_LOG": "warn"},
        )
        line = proc.stdout.readline()
        url = line.split("url=")[1].split()[0]
        key = line.split("api_key=")[1].strip() if "api_key=" in line else None

        results: list[tuple[float, float, int]] = []  # (start, latency ms, status)
        lock = threading.Lock()
        stop = threading.Event()

        def worker() -> None:
            c = Client(url, key)
            while not stop.is_set():
                t = time.time()
                status, _ = c.request("POST", "/v1/query", {"sql": sql})
                with lock:
                    results.append((t, (time.time() - t) * 1000.0, status))

        threads = [threading.Thread(target=worker) for _ in range(args.clients)]
        for th in threads:
            th.start()
        watcher = Client(url, key)

        def replica(i: int) -> dict:
            status, body = watcher.request("GET", "/v1/sources")
            if status != 200:
                # A keep-alive connection the server closed while idle: once more, fresh.
                status, body = watcher.request("GET", "/v1/sources")
            src = next(s for s in json.loads(body)["sources"] if s["name"] == "pg")
            return src["replicas"][i]

        third = args.seconds / 3
        time.sleep(third)
        killed = time.time()
        services("stop")
        detected = None
        while detected is None and time.time() - killed < third:
            if replica(1)["state"] == "unavailable":
                detected = time.time() - killed
            time.sleep(0.01)
        time.sleep(max(0.0, third - (time.time() - killed)))
        restarted = time.time()
        services("start")
        readmitted = None
        while readmitted is None and time.time() - restarted < third * 2:
            r = replica(1)
            if r["state"] == "healthy" and r["circuit"] == "closed":
                readmitted = time.time() - restarted
            time.sleep(0.01)
        time.sleep(max(0.0, third - (time.time() - restarted)))
        stop.set()
        for th in threads:
            th.join()
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    for url_ in (args.main, args.spare):
        psql(url_, f"DROP SCHEMA {schema} CASCADE")

    phases = {
        "before the kill": [r for r in results if r[0] < killed],
        "replica down": [r for r in results if killed <= r[0] < restarted],
        "after the restart": [r for r in results if r[0] >= restarted],
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    fmt = lambda v: "—" if v is None else f"{v * 1000:.0f} ms"  # noqa: E731
    lines = [
        f"## Failover under load: {now} · commit {commit}{'+dirty' if dirty else ''} · `benches/failover.sh --seconds {args.seconds} --clients {args.clients} --interval-ms {args.interval_ms}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. One PostgreSQL source, two replicas (the test services' "
        f"two clusters on loopback), `{sql}` from {args.clients} clients without pause (JSON, keep-alive), "
        f"`health_check_interval_ms = {args.interval_ms}`. The second replica is stopped (fast shutdown by PID) a third of the "
        "way in and started again two thirds of the way in.\n",
        "| phase | queries | errors | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, rs in phases.items():
        lat = [r[1] for r in rs]
        errors = sum(1 for r in rs if r[2] != 200)
        lines.append(f"| {name} | {len(rs)} | {errors} | {pct(lat, 0.5):.1f} | {pct(lat, 0.99):.1f} |")
    lines.append("")
    lines.append(f"Detected (replica unavailable in /v1/sources) {fmt(detected)} after the kill; readmitted (healthy, circuit closed) {fmt(readmitted)} after the restart.\n")
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.no_write:
        res = ROOT / "benches" / "RESULTS.md"
        text = res.read_text()
        head, _, rest = text.partition("\n## ")
        res.write_text(head + "\n" + report + "## " + rest)


if __name__ == "__main__":
    main()
