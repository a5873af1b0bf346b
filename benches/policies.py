"""Row filters and column masks: the time a filter and two masks add to TPC-H (see policies.sh).

One release server over TPC-H Parquet. A policy guards `lineitem` for readers: a row filter
that keeps every row (`l_shipmode <> principal.attr('hidden_mode')`, the attribute `NONE`), so
both sides compute the same answer, and two masks: `l_comment` as its SHA-256 (no query reads
it: a mask costs only where its column is read) and `l_shipinstruct` as `upper(...)` (its
values are upper case already; Q19 reads it). Three sides per query, answers checked equal:
the admin with no policy; the admin with the same filter and masks written into the query by
hand (a CTE named `lineitem`), which is what the filter and masks cost by themselves; and the
reader with the policy, which adds the enforcement (the fence, what it keeps from moving).
Per query: planning alone (`/v1/explain`, which plans and federates but does not run) and the
whole query (Arrow IPC to the last byte), medians of alternating runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import report as report_file
from server import Server

ROOT = Path(__file__).resolve().parent.parent
ARROW = "application/vnd.apache.arrow.stream"

POLICY = """
[[policies]]
name = "bench"
tables = "tpch.public.lineitem"
row_filter = "l_shipmode <> principal.attr('hidden_mode')"
masks = { l_comment = "sha256(l_comment)", l_shipinstruct = "upper(l_shipinstruct)" }
applies_to = { roles = ["reader"] }
"""


# The policy, written by hand.
INLINE = (
    "lineitem AS (SELECT * EXCLUDE (l_shipinstruct, l_comment), "
    "upper(l_shipinstruct) AS l_shipinstruct, encode(sha256(l_comment), 'hex') AS l_comment "
    "FROM tpch.public.lineitem WHERE l_shipmode <> 'NONE')"
)


def inline(sql: str) -> str:
    body = sql.strip()
    if body[:4].upper() == "WITH":
        return f"WITH {INLINE}, {body[4:]}"
    return f"WITH {INLINE} {body}"


def timed(server: Server, path: str, sql: str, key: str, accept: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    status, body = server.request("POST", path, {"sql": sql}, key, accept)
    took = time.perf_counter() - start
    assert status == 200, (path, status, body[:500])
    return took, body


def queries(spec: str) -> list[int]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--scale", default="1")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--queries", default="1-22")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.sluice, Path(tmp), Path(args.data).resolve(), POLICY)
        status, body = server.request("POST", "/v1/keys", {
            "name": "bench", "grants": [{"source": "*", "schema": "*", "table": "*"}],
            "rate_limit": {"per_second": 1000000}, "attributes": {"hidden_mode": "NONE"},
        }, server.key)
        assert status == 201, body
        reader = json.loads(body)["key"]
        names = ("none", "by hand", "policy")
        rows = []
        for q in queries(args.queries):
            sql = (ROOT / "benches" / "tpch" / f"q{q:02}.sql").read_text()
            sides = ((names[0], server.key, sql), (names[1], server.key, inline(sql)), (names[2], reader, sql))
            digests = {}
            for name, key, text in sides:  # warm: footers, plans, the reader's view
                _, body = timed(server, "/v1/query", text, key, "application/json")
                digests[name] = hashlib.sha256(body).hexdigest()
            # The JSON answers are compared: Arrow IPC carries schema metadata that may differ.
            assert len(set(digests.values())) == 1, f"Q{q}: the answers differ: {digests}"
            plan = {n: [] for n in names}
            run = {n: [] for n in names}
            for i in range(args.runs):
                order = sides[i % 3:] + sides[:i % 3]
                for name, key, text in order:
                    plan[name].append(timed(server, "/v1/explain", text, key, "application/json")[0])
                    run[name].append(timed(server, "/v1/query", text, key, ARROW)[0])
            med = lambda xs: statistics.median(xs) * 1000.0
            rows.append((q, *(med(plan[n]) for n in names), *(med(run[n]) for n in names)))
            print(f"Q{q:02}: plan {rows[-1][1:4]} ms, run {rows[-1][4:7]} ms", flush=True)
        server.stop()
    now = report_file.now()
    total = [sum(r[i] for r in rows) for i in range(1, 7)]
    worst = max(rows, key=lambda r: r[6] / r[4])
    lines = [
        f"## Row filters and column masks: {now} · commit {report_file.revision()} · `benches/policies.sh --scale {args.scale} --runs {args.runs}`\n",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. TPC-H SF {args.scale} Parquet, one release server, result cache off. "
        "`lineitem` guarded for readers by a row filter that keeps every row "
        "(`l_shipmode <> principal.attr('hidden_mode')`) and two masks (`l_comment` as `sha256`, read by no query; "
        "`l_shipinstruct` as `upper(...)`, read by Q19). Three sides, the same answer (checked): no policy; "
        "the same filter and masks written into the query by hand (a CTE named `lineitem`); the reader under the policy. "
        f"Medians of {args.runs} rotating runs: planning alone (`/v1/explain`) and the whole query (Arrow IPC, to the last byte), ms.\n",
        "| query | plan: none | by hand | policy | run: none | by hand | policy | policy / none | policy / by hand |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for q, p0, p1, p2, r0, r1, r2 in rows:
        lines.append(f"| Q{q:02} | {p0:.1f} | {p1:.1f} | {p2:.1f} | {r0:.0f} | {r1:.0f} | {r2:.0f} | {r2 / r0:.3f} | {r2 / r1:.3f} |")
    lines.append(
        f"| sum | {total[0]:.0f} | {total[1]:.0f} | {total[2]:.0f} | {total[3]:.0f} | {total[4]:.0f} | {total[5]:.0f} "
        f"| {total[5] / total[3]:.3f} | {total[5] / total[4]:.3f} |"
    )
    cost = total[5] / total[3] - 1
    enforcement = total[5] / total[4] - 1
    lines.append("")
    lines.append(
        f"The filter and masks cost **{cost * 100:+.1f}%** of the queries' time in sum (target ≤ 5%: "
        f"{'met' if cost <= 0.05 else 'missed'}); enforcing them as a policy, against the same filter and masks "
        f"written by hand, **{enforcement * 100:+.1f}%** ({'met' if enforcement <= 0.05 else 'missed'}). "
        f"Planning: {total[2] / total[0]:.3f}x of no policy in sum. "
        f"Largest single ratio against no policy: Q{worst[0]:02} at {worst[6] / worst[4]:.3f}.\n"
    )
    report = "\n".join(lines) + "\n"
    report_file.publish(report, not args.no_write)


if __name__ == "__main__":
    main()
