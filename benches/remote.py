#!/usr/bin/env python3
"""Remote reads: TPC-H Q1 and Q6 over lineitem in S3 (moto) against the same file on local disk.

Run it through `benches/remote.sh`, which prepares the virtualenv (with moto), the TPC-H data and
the release binary. One Sluice serves three sources over the same lineitem file:

- `tpch`: local disk;
- `s3`: moto, with Sluice's defaults (filters evaluated after decoding);
- `s3_pushdown`: moto, with `pushdown_filters = "true"` (filters evaluated while decoding, so
  pages whose rows all fail them are not fetched).

Each query runs `--runs` times per source, sources alternating run by run; the report gives the
median time, the bytes and GET requests Sluice's per-source metrics counted for one run, and the
ratio to local disk. moto is a Python server on the same 2 cores, so the S3 times are an upper
bound on the cost of going remote, not a forecast for AWS.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

from e2e import ROOT, Sluice, commit, free_port, log, machine, median, ms, write_results

QUERIES = {1: "q01.sql", 6: "q06.sql"}
SOURCES = ["tpch", "s3", "s3_pushdown"]
BUCKET = "tpch"


def start_moto(venv_bin: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log_file = open(workdir / "moto.log", "wb")
    proc = subprocess.Popen(
        [str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto did not start; see moto.log")


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def upload(endpoint: str, path: Path) -> int:
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(path), BUCKET, "lineitem.parquet")
    return s3.head_object(Bucket=BUCKET, Key="lineitem.parquet")["ContentLength"]


def ranged_get_ms(endpoint: str, size: int, runs: int = 5) -> float:
    """What moto itself takes to serve one 1 MiB ranged GET from the middle of the object."""
    s3 = s3_client(endpoint)
    mid = size // 2
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        s3.get_object(Bucket=BUCKET, Key="lineitem.parquet", Range=f"bytes={mid}-{mid + 2**20 - 1}")["Body"].read()
        times.append(time.perf_counter() - start)
    return median(times) * 1e3


def source_toml(name: str, endpoint: str, pushdown: bool | None) -> str:
    opts = (
        f'endpoint = "{endpoint}", region = "us-east-1", access_key_id = "testing", '
        f'secret_access_key = "testing", allow_http = "true"'
    )
    if pushdown is not None:
        opts += f', pushdown_filters = "{str(pushdown).lower()}"'
    return "\n".join(
        [
            "[[sources]]",
            f'name = "{name}"',
            'kind = "parquet"',
            f'location = "s3://{BUCKET}/"',
            f"options = {{ {opts} }}",
            'tables = [ { name = "lineitem", path = "lineitem.parquet" } ]',
            "refresh_interval_ms = 0",
        ]
    )


def metrics(sluice: Sluice) -> str:
    req = urllib.request.Request(f"http://{sluice.host}:{sluice.port}/metrics")
    return urllib.request.urlopen(req, timeout=10).read().decode()


def counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        inside, value = line[len(name) + 1 :].rsplit("} ", 1)
        have = set(inside.split(","))
        if all(f'{k}="{v}"' in have for k, v in labels.items()):
            total += float(value)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="1")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sluice", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "benches/RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sluice-remote-"))
    venv_bin = Path(sys.executable).parent
    lineitem = args.data / "lineitem.parquet"
    moto = sluice = None
    times: dict[tuple[int, str], list[float]] = {}
    cost: dict[tuple[int, str], tuple[float, float]] = {}
    answers: dict[tuple[int, str], str] = {}
    try:
        moto, endpoint = start_moto(venv_bin, workdir)
        t = time.perf_counter()
        size = upload(endpoint, lineitem)
        log(f"uploaded lineitem ({size / 2**20:.0f} MiB) to moto in {time.perf_counter() - t:.1f} s")
        get_ms = ranged_get_ms(endpoint, size)
        extra = "\n".join([source_toml("s3", endpoint, None), source_toml("s3_pushdown", endpoint, True)])
        sluice = Sluice(args.sluice, args.data, workdir, extra)
        for q, file in QUERIES.items():
            sql = (ROOT / "benches/tpch" / file).read_text()
            for run in range(args.runs + 1):
                order = SOURCES[run % 3 :] + SOURCES[: run % 3]
                for src in order:
                    text = re.sub(r"\blineitem\b", f"{src}.public.lineitem", sql)
                    before = metrics(sluice)
                    start = time.perf_counter()
                    fetch = sluice.query(text)
                    elapsed = time.perf_counter() - start
                    after = metrics(sluice)
                    answers[(q, src)] = str(fetch.table.to_pylist())
                    if run == 0:
                        # Warm-up: footers, connections. Its cost is kept as the cold figure.
                        continue
                    times.setdefault((q, src), []).append(elapsed)
                    read = counter(after, "sluice_source_bytes_read_total", source=src) - counter(
                        before, "sluice_source_bytes_read_total", source=src
                    )
                    gets = counter(after, "sluice_source_requests_total", source=src, op="get") - counter(
                        before, "sluice_source_requests_total", source=src, op="get"
                    )
                    cost[(q, src)] = (read, gets)
            log(f"Q{q} done")
    finally:
        if sluice:
            sluice.stop()
        if moto:
            moto.terminate()
            moto.wait(10)

    out = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append(f"## {now} · commit {commit()} · remote reads, TPC-H SF {args.scale}\n")
    out.append(f"- Machine: {machine()}")
    out.append(f"- Command: `benches/remote.sh --scale {args.scale} --runs {args.runs}`")
    out.append(
        f"- lineitem: one {size / 2**20:.0f} MiB Parquet object; S3 is moto on the same machine. "
        "Bytes and GETs are Sluice's per-source metrics for one run (after a warm-up run)."
    )
    out.append(
        f"- moto itself takes {get_ms:.0f} ms to serve one 1 MiB ranged GET of this object (boto3, "
        "median of 5): it reads the whole object for every range, so the S3 times below are mostly "
        "moto's and scale with its request count, not with the bytes."
    )
    out.append("")
    out.append("| query | source | median ms | vs local | bytes read | of object | GET requests | answer |")
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    failures = 0
    for q in QUERIES:
        local = median(times[(q, "tpch")])
        for src in SOURCES:
            t = median(times[(q, src)])
            read, gets = cost.get((q, src), (0.0, 0.0))
            same = answers[(q, src)] == answers[(q, "tpch")]
            failures += not same
            shown = "local disk" if src == "tpch" else src
            out.append(
                f"| Q{q} | {shown} | {ms(t)} | {t / local:.2f}x | {read / 2**20:.1f} MiB | "
                f"{read / size:.0%} | {gets:.0f} | {'same' if same else '**differs**'} |"
            )
    out.append("")
    text = "\n".join(out)
    print(text)
    if not args.no_write:
        write_results(args.results, text)
        log(f"results written to {args.results}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
