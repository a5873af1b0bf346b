"""Spooled results benchmark: `SELECT * FROM lineitem` spooled (`[spool]`: a manifest, then its
segments fetched in parallel) through Sluice's proxy from a file:// spool and presigned from S3
on moto, against the same rows as one HTTP Arrow stream and one Flight SQL stream, side by side
in one run (benches/spool.sh).

Two servers over the same TPC-H Parquet: one with `[flight]` and a file:// spool (proxy
retrieval), one with an S3 spool on a moto server this script starts (presigned retrieval, the
default there). Each method runs once per round, rounds alternating the order after a warm-up
round that is not counted. Reported per method: time to the first rows (HTTP and Flight: the
first decoded batch; spooled: the manifest, which carries up to 1,000 rows inline), time to the
last byte, MB/s, and the serving Sluice's CPU seconds (utime + stime from /proc/PID/stat) and
peak RSS (VmHWM, reset before each run)."""

import argparse
import hashlib
import http.client
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
import e2e  # noqa: E402
import report as report_file  # noqa: E402
from flight import flight_conn  # noqa: E402
from remote import s3_client, start_moto  # noqa: E402

SPOOL = "application/vnd.sluice.spool+json"
BUCKET = "sluice-spool"
METHODS = ["http", "flight", "proxy", "presigned"]
LABELS = {
    "http": "HTTP stream (`/v1/query`, Arrow IPC → pyarrow)",
    "flight": "Flight stream (ADBC `fetch_record_batch` → pyarrow)",
    "proxy": "spooled, proxy (file:// spool, segments through Sluice)",
    "presigned": "spooled, presigned (S3 on moto, no Sluice hop)",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time `pid` has used so far, all threads, user + system (/proc/PID/stat)."""
    # The command name (field 2) may hold spaces; the fields after its ')' start at field 3.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Usage:
    """Sluice's CPU seconds and peak RSS over one run (and moto's CPU seconds, when given): the
    peak is VmHWM after a reset to the current RSS, which is kept as the floor."""

    def __init__(self, sluice: e2e.Sluice, moto_pid: int | None = None):
        self.sluice, self.moto_pid = sluice, moto_pid

    def __enter__(self):
        self.sluice.reset_peak_rss()
        self.floor = self.sluice.rss_bytes("VmRSS")
        self.cpu0 = cpu_seconds(self.sluice.proc.pid)
        self.moto0 = cpu_seconds(self.moto_pid) if self.moto_pid else 0.0
        return self

    def __exit__(self, *exc):
        self.cpu = cpu_seconds(self.sluice.proc.pid) - self.cpu0
        self.peak = self.sluice.peak_rss_bytes()
        self.moto = cpu_seconds(self.moto_pid) - self.moto0 if self.moto_pid else 0.0
        return False


def spool_toml(location: str, segment_bytes: int, proxy: bool, options: dict[str, str] | None = None) -> str:
    # e2e.Sluice's config already has [limits] (max_rows 1e9, query_timeout_ms one hour), enough
    # for lineitem at any scale tpchgen makes here: a second [limits] would be a duplicate table.
    lines = ["[spool]", f'location = "{location}"']
    if proxy:
        lines.append('retrieval = "proxy"')
    lines += [f"segment_bytes = {segment_bytes}", "expiry_ms = 900000"]
    if options:
        lines.append("[spool.options]")
        lines += [f'{k} = "{v}"' for k, v in options.items()]
    return "\n".join(lines)


def http_stream(sluice: e2e.Sluice, client: e2e.HttpArrowClient) -> dict:
    """One `POST /v1/query` read by pyarrow's stream reader as it arrives."""
    f = client.fetch("POST", "/v1/query", sluice.body(e2e.SCAN_SQL), keep=False)
    return {"first": f.first_batch_s, "last": f.total_s, "rows": f.rows, "bytes": f.wire_bytes}


def flight_stream(conn, wire: int) -> dict:
    """ADBC's record batch reader over one DoGet; the bytes are the HTTP stream's (ADBC does not
    count its own)."""
    start = time.perf_counter()
    cur = conn.cursor()
    cur.execute(e2e.SCAN_SQL)
    first, rows = None, 0
    for batch in cur.fetch_record_batch():
        if first is None:
            first = time.perf_counter() - start
        rows += batch.num_rows
    last = time.perf_counter() - start
    cur.close()
    return {"first": first if first is not None else last, "last": last, "rows": rows, "bytes": wire}


def request_json(sluice: e2e.Sluice, method: str, path: str, body: bytes | None = None) -> tuple[int, dict | None]:
    """One request to Sluice with the admin key, on a fresh connection: status and JSON body."""
    conn = http.client.HTTPConnection(sluice.host, sluice.port, timeout=600)
    try:
        headers = {"Authorization": f"Bearer {sluice.key}", "Accept": SPOOL, "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None
    finally:
        conn.close()


def fetch_segment(seg: dict, headers: dict[str, str], start: float) -> tuple[int, int, float]:
    """GETs one segment, checks its size and SHA-256, decodes it: rows, bytes and when it was
    decoded (seconds after `start`)."""
    url = urlsplit(seg["url"])
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = cls(url.hostname, url.port, timeout=600)
    try:
        conn.request("GET", url.path + (f"?{url.query}" if url.query else ""), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"segment {seg['index']}: HTTP {resp.status}: {body[:300]!r}")
    if len(body) != seg["bytes"] or hashlib.sha256(body).hexdigest() != seg["sha256"]:
        raise RuntimeError(f"segment {seg['index']}: {len(body)} bytes, not the manifest's {seg['bytes']} or its SHA-256")
    rows = sum(b.num_rows for b in pa.ipc.open_stream(pa.py_buffer(body)))
    if rows != seg["rows"]:
        raise RuntimeError(f"segment {seg['index']}: {rows} rows decoded, the manifest says {seg['rows']}")
    return rows, len(body), time.perf_counter() - start


def spooled(sluice: e2e.Sluice, pool: ThreadPoolExecutor, proxy: bool) -> dict:
    """`"spool": true`, then the manifest polled every 50 ms until complete, each segment fetched
    by the pool as soon as it is listed; acknowledged (DELETE, not timed) at the end."""
    server = f"http://{sluice.host}:{sluice.port}"
    # Proxy URLs are Sluice's and need the key; presigned URLs need nothing.
    seg_headers = {"Authorization": f"Bearer {sluice.key}"} if proxy else {}
    start = time.perf_counter()
    status, manifest = request_json(sluice, "POST", "/v1/query", json.dumps({"sql": e2e.SCAN_SQL, "spool": True}).encode())
    first = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"spooled query: HTTP {status}: {manifest}")
    ack = manifest["ack"]
    try:
        if manifest["format"] != e2e.ARROW:
            raise RuntimeError(f"segments in {manifest['format']}, not Arrow IPC")
        inline = len(manifest["inline"]["rows"])
        futures = {}

        def submit(m: dict) -> None:
            for seg in m["segments"]:
                if seg["index"] not in futures:
                    if seg["url"].startswith(server) != proxy:
                        raise RuntimeError(f"segment URL {seg['url'][:80]} is not {'a proxy' if proxy else 'a presigned'} URL")
                    futures[seg["index"]] = pool.submit(fetch_segment, seg, seg_headers, start)

        submit(manifest)
        while not manifest["complete"]:
            time.sleep(0.05)
            status, manifest = request_json(sluice, "GET", ack)
            if status != 200:
                raise RuntimeError(f"GET {ack}: HTTP {status}: {manifest}")
            submit(manifest)
        complete = time.perf_counter() - start
        done = [futures[i].result() for i in sorted(futures)]
        if sorted(futures) != list(range(len(futures))):
            raise RuntimeError(f"segment indexes {sorted(futures)} are not 0..{len(futures) - 1}")
        rows = sum(r for r, _, _ in done)
        if rows != manifest["row_count"]:
            raise RuntimeError(f"{rows} rows in the segments, the manifest says {manifest['row_count']}")
        return {
            "first": first,
            "last": max((t for _, _, t in done), default=complete),
            "rows": rows,
            "bytes": sum(b for _, b, _ in done),
            "complete": complete,
            "segments": len(done),
            "inline": inline,
        }
    finally:
        status, body = request_json(sluice, "DELETE", ack)
        if status != 204:
            e2e.log(f"DELETE {ack}: HTTP {status}: {body}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", default="1")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--sluice", type=Path, required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--parallel", type=int, default=4, help="workers fetching spooled segments")
    p.add_argument("--segment-bytes", type=int, default=64 << 20)
    p.add_argument("--no-write", action="store_true")
    a, _ = p.parse_known_args()
    work = e2e.ROOT / "target/bench/spool"
    spool_dir = (work / "spool").resolve()
    spool_dir.mkdir(parents=True, exist_ok=True)
    moto = local = s3 = None
    lines = []
    try:
        moto, endpoint = start_moto(Path(sys.executable).parent, work)
        # The bucket must exist before Sluice starts: it writes, reads back and deletes an
        # object there to check the location.
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        local = e2e.Sluice(
            a.sluice, a.data, work / "file",
            extra_config='[flight]\nlisten = "127.0.0.1:0"\n' + spool_toml(f"file://{spool_dir}/", a.segment_bytes, proxy=True),
        )
        options = {
            "endpoint": endpoint,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "allow_http": "true",
        }
        s3 = e2e.Sluice(a.sluice, a.data, work / "s3", extra_config=spool_toml(f"s3://{BUCKET}/spool/", a.segment_bytes, False, options))
        conn = flight_conn(local)
        client = local.new_client()
        pool = ThreadPoolExecutor(max_workers=a.parallel, thread_name_prefix="segment")
        # A first HTTP scan warms each server up (page cache, Parquet metadata) and counts the
        # rows every method must match.
        warm = http_stream(local, client)
        expect, wire = warm["rows"], warm["bytes"]
        warm_client = s3.new_client()
        http_stream(s3, warm_client)
        warm_client.close()
        runners = {
            "http": (local, None, lambda: http_stream(local, client)),
            "flight": (local, None, lambda: flight_stream(conn, wire)),
            "proxy": (local, None, lambda: spooled(local, pool, proxy=True)),
            "presigned": (s3, moto.pid, lambda: spooled(s3, pool, proxy=False)),
        }
        got = {m: [] for m in METHODS}
        # Round 0 is a warm-up (connections, the spool's first writes), not counted.
        for run in range(a.runs + 1):
            for m in e2e.rotations(METHODS, run):
                server, moto_pid, go = runners[m]
                with Usage(server, moto_pid) as usage:
                    r = go()
                if r["rows"] != expect:
                    raise RuntimeError(f"{m}: {r['rows']} rows, HTTP's warm-up counted {expect}")
                r.update(cpu=usage.cpu, peak=usage.peak, floor=usage.floor, moto=usage.moto)
                e2e.log(f"run {run} {m}: first {r['first']:.3f} s, last {r['last']:.3f} s, Sluice CPU {usage.cpu:.1f} s")
                if run:
                    got[m].append(r)
        pool.shutdown()
        conn.close()
        client.close()
        med = {m: {k: statistics.median(r[k] for r in rs) for k in ("first", "last", "cpu")} for m, rs in got.items()}
        for m, rs in got.items():
            med[m]["mbps"] = statistics.median(r["bytes"] / r["last"] / 1e6 for r in rs)
            med[m]["peak"] = max(r["peak"] for r in rs)
            med[m]["floor"] = max(r["floor"] for r in rs)
            med[m]["rows"] = rs[0]["rows"]
        for m in ("proxy", "presigned"):
            med[m]["complete"] = statistics.median(r["complete"] for r in got[m])
            med[m]["segments"] = got[m][0]["segments"]
            med[m]["spooled_bytes"] = got[m][0]["bytes"]
            med[m]["inline"] = got[m][0]["inline"]
        moto_cpu = statistics.median(r["moto"] for r in got["presigned"])
        h, f, px, ps = med["http"], med["flight"], med["proxy"], med["presigned"]
        lines = [
            f"## Spooled results: lineitem SF {a.scale}, spooled (parallel fetch) vs HTTP vs Flight "
            f"({time.strftime('%Y-%m-%d')}, commit {e2e.commit()}, {e2e.machine()}, {a.runs} runs)",
            "",
            f"`{e2e.SCAN_SQL}` ({expect:,} rows; {wire / 1e6:.0f} MB as one HTTP Arrow stream, "
            f"{px['spooled_bytes'] / 1e6:.0f} MB in {px['segments']} spooled segments of up to {a.segment_bytes / 2**20:.0f} MiB), "
            f"`benches/spool.sh --scale {a.scale} --runs {a.runs} --parallel {a.parallel}`: medians of {a.runs} runs after a "
            "warm-up, methods alternating. Spooled: `POST /v1/query` with `\"spool\": true`, the manifest polled every 50 ms, "
            f"each segment fetched by one of {a.parallel} workers as soon as it is listed, checked against its SHA-256 and "
            "decoded by pyarrow inside the timed path (as `sluice query --out` checks it); the acknowledgement (DELETE) is not "
            "timed. Client and server share the machine's cores. MB/s: the method's bytes (Flight: the HTTP stream's) over the "
            "time to the last byte. CPU: Sluice's utime + stime over the run; RSS: VmHWM reset before each run, max of runs, "
            "the rise over the RSS before the run in brackets.",
            "",
            "| method | time to first rows (median s) | time to last byte (median s) | rows | MB/s | Sluice CPU s | Sluice peak RSS MB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *[
                f"| {LABELS[m]} | {med[m]['first']:.3f} | {med[m]['last']:.2f} | {med[m]['rows']:,} | {med[m]['mbps']:.0f} | "
                f"{med[m]['cpu']:.1f} | {med[m]['peak'] / 1e6:.0f} (+{(med[m]['peak'] - med[m]['floor']) / 1e6:.0f}) |"
                for m in METHODS
            ],
            "",
            "What bounds each:",
            "",
            f"- **HTTP stream**: one connection, Sluice encoding and pyarrow decoding batch after batch; Sluice kept "
            f"{h['cpu'] / h['last']:.2f} cores busy over the {h['last']:.2f} s. The first batch waits only for the first "
            "row group's decode.",
            f"- **Flight stream**: one DoGet stream through ADBC's driver (gRPC framing, then the C Data Interface into "
            f"pyarrow); Sluice kept {f['cpu'] / f['last']:.2f} cores busy, and the client's side of the hop is the "
            f"difference from HTTP ({f['last'] / h['last']:.2f}x its time).",
            f"- **Spooled, proxy**: the first rows come with the manifest ({px['inline']:,} inline), once the first batch is in. The rest is "
            "bounded by Sluice's writer, which encodes and hashes one segment while the one before it is written (one "
            f"upload at a time) and lists a segment only once written: it completed at {px['complete']:.2f} s, and the "
            f"last segment was decoded {px['last'] - px['complete']:.2f} s later. Every byte crosses Sluice twice (into "
            f"the spool, back out through the proxy): {px['cpu']:.1f} CPU s against HTTP's {h['cpu']:.1f}.",
            f"- **Spooled, presigned**: the same writer, uploading to moto (completed at {ps['complete']:.2f} s; the "
            f"last segment decoded {ps['last'] - ps['complete']:.2f} s later), and no Sluice on the read path. moto is "
            f"one Python process on the same cores ({moto_cpu:.1f} CPU s per run, for the uploads and the GETs): it "
            "bounds this figure, which says more about moto than about Sluice or a real S3.",
            "",
        ]
    finally:
        for server in (local, s3):
            if server:
                server.stop()
        if moto:
            moto.terminate()
            moto.wait(10)
    report_file.publish("\n".join(lines) + "\n", not a.no_write and bool(lines))


if __name__ == "__main__":
    main()
