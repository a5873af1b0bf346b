#!/usr/bin/env python3
"""Writes deploy/prometheus/alerts.yaml, Sluice's Prometheus recording and alerting rules.

The thresholds of the design's four alerts (the error-rate SLO, slow queries, the cache hit
ratio and concurrency) and a few others are options; every other figure is fixed here. The
committed alerts.yaml is this script's output with the defaults:

    python3 deploy/prometheus/generate.py            # rewrite alerts.yaml
    python3 deploy/prometheus/generate.py --check    # exit 1 if alerts.yaml differs
    python3 deploy/prometheus/generate.py --slow-query-seconds 60 --error-slo 0.995 -o my-alerts.yaml

Standard library only (Python 3.11). The unit tests in alerts.test.yaml are written against
the defaults: after changing a threshold, run them against your own file (copy the test file
next to it and point rule_files at it) and adjust the expectations they name.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "alerts.yaml"

# The bucket bounds of every *_seconds histogram Sluice exports (src/metrics.rs).
BUCKETS = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
           "2.5", "10", "60", "300"]

# Query outcomes whose HTTP status is 5xx: the error-rate SLI.
# (metadata_unavailable and memory_exhausted are 503 codes of src/error.rs too.)
SERVER_ERROR_OUTCOMES = ["internal", "unsupported", "upstream_error", "source_unavailable",
                         "shutting_down", "metadata_unavailable", "memory_exhausted",
                         "query_timeout"]

# Multiwindow, multi-burn-rate pairs (Google SRE workbook, "Alerting on SLOs", table 5-8),
# for a 30-day SLO period: (name, burn rate, long window, short window, for, severity, budget
# spent when it fires, time until the budget is gone at this rate).
BURN_RATES = [
    ("Fast", "14.4", "1h", "5m", "2m", "page", "2% of the 30-day budget in 1 hour", "about 2 days"),
    ("Sustained", "6", "6h", "30m", "5m", "page", "5% of the 30-day budget in 6 hours", "5 days"),
    ("Slow", "3", "1d", "2h", "15m", "warning", "10% of the 30-day budget in 1 day", "10 days"),
    ("Chronic", "1", "3d", "6h", "1h", "warning", "10% of the 30-day budget in 3 days", "30 days"),
]
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
WINDOW_WORDS = {"5m": "5 minutes", "30m": "30 minutes", "1h": "hour", "2h": "2 hours",
                "6h": "6 hours", "1d": "day", "3d": "3 days"}

DOC = "docs/operations-alerts.md"


# ---------------------------------------------------------------------------------------------
# Options


def number(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def fraction(text: str) -> Decimal:
    value = number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive): {text}")
    return value


def positive(text: str) -> Decimal:
    value = number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
    return value


def bucket(text: str) -> Decimal:
    value = number(text)
    if value not in {Decimal(b) for b in BUCKETS}:
        raise argparse.ArgumentTypeError(
            f"{text} is not a bucket bound (le) of sluice_query_duration_seconds_bucket; "
            f"choose one of {', '.join(BUCKETS)}")
    return value


def job_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", text):
        raise argparse.ArgumentTypeError(f"job names here are [A-Za-z0-9_.:-]+: {text!r}")
    return text


def fmt(value: Decimal) -> str:
    """A number as plain text: 0.001, 2.5, 10 (never 1E+1 or 10.0)."""
    return format(value.normalize(), "f")


def pct(value: Decimal) -> str:
    return fmt(value * 100) + "%"


def le_matcher(value: Decimal) -> str:
    """A matcher for the `le` label of one bucket, whichever way the bound is written: Sluice
    writes 10 and 2.5; Prometheus 3 normalizes an integral bound to 10.0 when it ingests it."""
    text = fmt(value)
    regex = text.replace(".", "\\\\.")
    if "." not in text:
        regex = f"{regex}|{regex}\\\\.0"
    return f'le=~"{regex}"'


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Write Sluice's Prometheus rules (alerts.yaml) with the given thresholds.")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                   help="file to write or check (default: alerts.yaml next to this script)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 (with a diff) if the file differs from the output")
    p.add_argument("--job", type=job_name, default="sluice",
                   help="the Prometheus scrape job of the Sluice servers (default: sluice)")
    p.add_argument("--error-slo", "--error-budget", dest="error_slo", type=fraction,
                   default=Decimal("0.999"), metavar="TARGET",
                   help="error-rate SLO target, the share of queries that must not end in a "
                        "5xx outcome; the error budget is 1 - TARGET (default: 0.999)")
    p.add_argument("--latency-slo-seconds", type=bucket, default=Decimal("2.5"),
                   metavar="SECONDS",
                   help="latency SLO: a query slower than this spends the latency budget; "
                        "a bucket bound (default: 2.5)")
    p.add_argument("--latency-slo", type=fraction, default=Decimal("0.99"), metavar="TARGET",
                   help="latency SLO target, the share of queries that must finish within "
                        "--latency-slo-seconds (default: 0.99)")
    p.add_argument("--slow-query-seconds", type=bucket, default=Decimal("10"),
                   metavar="SECONDS",
                   help="SluiceSlowQueries: a query slower than this is slow; a bucket bound "
                        "(default: 10)")
    p.add_argument("--slow-query-rate", type=positive, default=Decimal("0.05"),
                   metavar="PER_SECOND",
                   help="SluiceSlowQueries fires above this many slow queries a second on an "
                        "instance, over 10 minutes, for 10 minutes (default: 0.05, 3 a minute)")
    p.add_argument("--cache-hit-ratio-min", type=fraction, default=Decimal("0.3"),
                   metavar="RATIO",
                   help="SluiceCacheHitRatioLow fires below this result-cache hit ratio over "
                        "30 minutes (default: 0.3)")
    p.add_argument("--cache-min-request-rate", type=positive, default=Decimal("0.1"),
                   metavar="PER_SECOND",
                   help="the cache alerts only judge an instance with more cacheable requests "
                        "a second than this (default: 0.1)")
    p.add_argument("--cache-hit-ratio-drop", type=fraction, default=Decimal("0.5"),
                   metavar="FACTOR",
                   help="SluiceCacheHitRatioFalling fires when the 30-minute hit ratio is below "
                        "FACTOR times the 1-day one (default: 0.5)")
    p.add_argument("--concurrency-ratio", type=fraction, default=Decimal("0.9"),
                   metavar="RATIO",
                   help="SluiceConcurrentQueriesNearLimit fires when queries in flight (5-minute "
                        "average) exceed this share of the server's limit (default: 0.9)")
    p.add_argument("--queue-saturation-ratio", type=fraction, default=Decimal("0.8"),
                   metavar="RATIO",
                   help="SluiceSourceQueueSaturated fires when a source's queue is fuller than "
                        "this share of its max_queued (default: 0.8)")
    p.add_argument("--rate-limited-per-second", type=positive, default=Decimal("1"),
                   metavar="PER_SECOND",
                   help="SluiceRateLimitRejections fires above this many refusals a second by "
                        "keys' limits (default: 1)")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# YAML output (a fixed layout, so the file is byte-for-byte reproducible)


def quote(text: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + text.replace("'", "''") + "'"


def emit_rule(out: list[str], rule: dict) -> None:
    if "record" in rule:
        out.append(f"      - record: {rule['record']}")
    else:
        out.append(f"      - alert: {rule['alert']}")
    out.append("        expr: |-")
    for line in rule["expr"].strip("\n").splitlines():
        out.append(("          " + line).rstrip())
    if rule.get("for"):
        out.append(f"        for: {rule['for']}")
    if rule.get("labels"):
        out.append("        labels:")
        for k, v in rule["labels"].items():
            out.append(f"          {k}: {v}")
    if rule.get("annotations"):
        out.append("        annotations:")
        for k, v in rule["annotations"].items():
            out.append(f"          {k}: {quote(v)}")


def emit(header: str, groups: list[tuple[str, str, list[dict]]]) -> str:
    out = [header.rstrip("\n"), "", "groups:"]
    for i, (name, comment, rules) in enumerate(groups):
        if i:
            out.append("")
        for line in comment.strip("\n").splitlines():
            out.append(("  # " + line).rstrip())
        out.append(f"  - name: {name}")
        out.append("    rules:")
        for rule in rules:
            emit_rule(out, rule)
    return "\n".join(out) + "\n"


def runbook(alert: str, text: str) -> str:
    return f"{DOC}#{alert.lower()}: {text}"


# ---------------------------------------------------------------------------------------------
# The rules


def build(a: argparse.Namespace) -> str:
    job = a.job
    J = f'job="{job}"'
    err_budget = Decimal(1) - a.error_slo
    lat_budget = Decimal(1) - a.latency_slo
    outcomes = "|".join(SERVER_ERROR_OUTCOMES)

    header = f"""\
# Sluice: Prometheus recording and alerting rules.
#
# GENERATED by deploy/prometheus/generate.py; do not edit by hand. Change a threshold with the
# script's options and check the result with promtool:
#
#   python3 deploy/prometheus/generate.py [options]      # rewrites this file
#   python3 deploy/prometheus/generate.py --check        # exit 1 if this file is not the defaults' output
#   promtool check rules deploy/prometheus/alerts.yaml
#   promtool test rules deploy/prometheus/alerts.test.yaml
#
# Knobs (option: value in this file):
#   --job {job}
#       the scrape job of the Sluice servers; every selector below carries job="{job}".
#   --error-slo {fmt(a.error_slo)}   (alias --error-budget)
#       error-rate SLO: {pct(a.error_slo)} of queries end without a server error (an outcome whose
#       HTTP status is 5xx: {", ".join(SERVER_ERROR_OUTCOMES[:4])},
#       {", ".join(SERVER_ERROR_OUTCOMES[4:])}), on every door;
#       error budget {pct(err_budget)}. Burn-rate alerts SluiceErrorBudgetBurn*.
#   --latency-slo-seconds {fmt(a.latency_slo_seconds)}, --latency-slo {fmt(a.latency_slo)}
#       latency SLO: {pct(a.latency_slo)} of queries finish (request to last byte) within {fmt(a.latency_slo_seconds)} s;
#       the threshold must be a bucket bound. Burn-rate alerts SluiceLatencyBudgetBurn*.
#   --slow-query-seconds {fmt(a.slow_query_seconds)}, --slow-query-rate {fmt(a.slow_query_rate)}
#       SluiceSlowQueries: more than {fmt(a.slow_query_rate)} queries a second slower than {fmt(a.slow_query_seconds)} s on an
#       instance (10-minute rate, for 10 minutes); the threshold must be a bucket bound.
#   --cache-hit-ratio-min {fmt(a.cache_hit_ratio_min)}, --cache-hit-ratio-drop {fmt(a.cache_hit_ratio_drop)}, --cache-min-request-rate {fmt(a.cache_min_request_rate)}
#       SluiceCacheHitRatioLow: result-cache hit ratio under {pct(a.cache_hit_ratio_min)} over 30 minutes;
#       SluiceCacheHitRatioFalling: under {fmt(a.cache_hit_ratio_drop)} x its 1-day ratio; both only while the
#       instance sees more than {fmt(a.cache_min_request_rate)} cacheable requests a second.
#   --concurrency-ratio {fmt(a.concurrency_ratio)}
#       SluiceConcurrentQueriesNearLimit: queries in flight (5-minute average) above {pct(a.concurrency_ratio)} of
#       [limits] max_concurrent_queries.
#   --queue-saturation-ratio {fmt(a.queue_saturation_ratio)}
#       SluiceSourceQueueSaturated: a source's queue above {pct(a.queue_saturation_ratio)} of its max_queued.
#   --rate-limited-per-second {fmt(a.rate_limited_per_second)}
#       SluiceRateLimitRejections: more than {fmt(a.rate_limited_per_second)} refusals a second by keys' limits.
#
# Every alert has labels severity (page | warning) and the labels of the series it is about
# (job, instance, source, replica, ...); the SLO alerts also slo (errors | latency), and are
# about the whole job (no instance). Annotations: summary, description, runbook (the section
# of {DOC} to read, and the first thing to do).
"""

    groups: list[tuple[str, str, list[dict]]] = []

    # --- SLO recording rules -----------------------------------------------------------------
    rec: list[dict] = []
    for w in WINDOWS:
        rec.append({
            "record": f"sluice:query_errors:ratio_rate{w}",
            "expr": f"""
sum by (job) (rate(sluice_queries_total{{{J},outcome=~"{outcomes}"}}[{w}]))
/
sum by (job) (rate(sluice_queries_total{{{J}}}[{w}]))
""",
        })
    for w in WINDOWS:
        rec.append({
            "record": f"sluice:query_latency_over_slo:ratio_rate{w}",
            "expr": f"""
1 - (
  sum by (job) (rate(sluice_query_duration_seconds_bucket{{{J},{le_matcher(a.latency_slo_seconds)}}}[{w}]))
  /
  sum by (job) (rate(sluice_query_duration_seconds_count{{{J}}}[{w}]))
)
""",
        })
    groups.append(("sluice-slo-recording", f"""
SLIs over the burn-rate windows, per job (all instances, all doors).
sluice:query_errors:ratio_rateW: share of finished queries with a 5xx outcome.
sluice:query_latency_over_slo:ratio_rateW: share of queries slower than {fmt(a.latency_slo_seconds)} s.
""", rec))

    # --- SLO alerts ----------------------------------------------------------------------------
    slo: list[dict] = []
    for kind in ("errors", "latency"):
        for name, rate, long_w, short_w, for_, sev, spent, gone in BURN_RATES:
            if kind == "errors":
                alert = f"SluiceErrorBudgetBurn{name}"
                series = "sluice:query_errors:ratio_rate"
                budget = err_budget
                what = "of queries ended in a server error (5xx outcome)"
                target = f"error-rate SLO {pct(a.error_slo)}, budget {pct(err_budget)}"
                first = ("see which outcomes and doors fail: "
                         "sum by (outcome, door) (rate(sluice_queries_total{outcome!=\"ok\"}[5m])); "
                         "source_unavailable/upstream_error point at a source, internal at the "
                         "server log (query ids), shutting_down at a stuck drain.")
                summary = f"Sluice {{{{ $labels.job }}}} is burning its error budget {rate}x too fast"
            else:
                alert = f"SluiceLatencyBudgetBurn{name}"
                series = "sluice:query_latency_over_slo:ratio_rate"
                budget = lat_budget
                what = f"of queries took longer than {fmt(a.latency_slo_seconds)} s"
                target = (f"latency SLO {pct(a.latency_slo)} within "
                          f"{fmt(a.latency_slo_seconds)} s, budget {pct(lat_budget)}")
                first = ("see whether one source is slow (the dashboard's Sources and replicas "
                         "row: request and replica latency, queue depth) or the server is saturated "
                         "(queries in flight vs limit); GET /v1/queries lists the running ones.")
                summary = (f"Sluice {{{{ $labels.job }}}} is burning its latency budget "
                           f"{rate}x too fast")
            thr = f"{rate} * {fmt(budget)}"
            slo.append({
                "alert": alert,
                "expr": f"""
{series}{long_w}{{{J}}} > ({thr})
and
{series}{short_w}{{{J}}} > ({thr})
""",
                "for": for_,
                "labels": {"severity": sev, "slo": kind},
                "annotations": {
                    "summary": summary,
                    "description": (
                        f"{{{{ $value | humanizePercentage }}}} {what} over the last "
                        f"{WINDOW_WORDS[long_w]}, and still more than {rate}x the budget over the "
                        f"last {WINDOW_WORDS[short_w]} ({target}). That spends {spent}; "
                        f"at this rate the budget is gone in {gone}."),
                    "runbook": runbook(alert, first),
                },
            })
    groups.append(("sluice-slo-alerts", f"""
Multiwindow, multi-burn-rate alerts (Google SRE workbook): a long window for significance, a
short one so the alert resolves soon after the burn stops. 14.4x (1h & 5m) and 6x (6h & 30m)
page; 3x (1d & 2h) and 1x (3d & 6h) are warnings (tickets).
""", slo))

    # --- other recording rules ---------------------------------------------------------------
    groups.append(("sluice-recording", """
Per-instance ratios the cache alerts and the dashboard use.
""", [
        {"record": "sluice:cache_requests:rate30m",
         "expr": f"""
sum by (job, instance) (rate(sluice_cache_hits_total{{{J}}}[30m]))
+
sum by (job, instance) (rate(sluice_cache_misses_total{{{J}}}[30m]))
"""},
        {"record": "sluice:cache_hit:ratio_rate30m",
         "expr": f"""
sum by (job, instance) (rate(sluice_cache_hits_total{{{J}}}[30m]))
/
sluice:cache_requests:rate30m{{{J}}}
"""},
        {"record": "sluice:cache_hit:ratio_rate1d",
         "expr": f"""
sum by (job, instance) (rate(sluice_cache_hits_total{{{J}}}[1d]))
/
(
  sum by (job, instance) (rate(sluice_cache_hits_total{{{J}}}[1d]))
  +
  sum by (job, instance) (rate(sluice_cache_misses_total{{{J}}}[1d]))
)
"""},
    ]))

    # --- server ------------------------------------------------------------------------------
    groups.append(("sluice-server", "", [
        {"alert": "SluiceDown",
         "expr": f"up{{{J}}} == 0",
         "for": "2m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} is down",
             "description": ("Prometheus has not scraped {{ $labels.instance }} (job "
                             "{{ $labels.job }}) for 2 minutes: the server is down, unreachable, "
                             "or /metrics refuses the scrape (auth.protect_metrics without the "
                             "scraper's key)."),
             "runbook": runbook("SluiceDown",
                                "check the process and its log, GET /health on the instance, "
                                "and the target's last scrape error on Prometheus' Targets page."),
         }},
        {"alert": "SluiceSlowQueries",
         "expr": f"""
(
  sum by (job, instance) (rate(sluice_query_duration_seconds_count{{{J}}}[10m]))
  -
  sum by (job, instance) (rate(sluice_query_duration_seconds_bucket{{{J},{le_matcher(a.slow_query_seconds)}}}[10m]))
) > {fmt(a.slow_query_rate)}
""",
         "for": "10m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Slow queries on Sluice {{ $labels.instance }}",
             "description": (f"{{{{ $value | printf \"%.3f\" }}}} queries a second on "
                             f"{{{{ $labels.instance }}}} have taken longer than "
                             f"{fmt(a.slow_query_seconds)} s over the last 10 minutes (threshold "
                             f"{fmt(a.slow_query_rate)} a second)."),
             "runbook": runbook("SluiceSlowQueries",
                                "GET /v1/queries (recent queries with durations and sources) "
                                "finds the statements and keys; then the sources' latency "
                                "and queues (the dashboard's Sources and replicas row)."),
         }},
        {"alert": "SluiceConcurrentQueriesNearLimit",
         "expr": f"""
avg_over_time(sluice_queries_in_flight{{{J}}}[5m])
  / on (job, instance) sluice_queries_max_concurrent{{{J}}} > {fmt(a.concurrency_ratio)}
and on (job, instance)
sluice_queries_max_concurrent{{{J}}} > 0
""",
         "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} is near its concurrent-query limit",
             "description": (f"{{{{ $labels.instance }}}} has run {{{{ $value | humanizePercentage }}}} "
                             f"of its max_concurrent_queries on average over 5 minutes (threshold "
                             f"{pct(a.concurrency_ratio)}); beyond the limit queries get 429 "
                             f"too_many_queries."),
             "runbook": runbook("SluiceConcurrentQueriesNearLimit",
                                "look for long-running queries (GET /v1/queries) and slow "
                                "sources; add instances or raise [limits] "
                                "max_concurrent_queries if the sources have headroom."),
         }},
        {"alert": "SluicePanics",
         "expr": f"increase(sluice_panics_total{{{J}}}[15m]) > 0",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} caught a panic",
             "description": ("{{ $labels.instance }} caught {{ $value | printf \"%.0f\" }} "
                             "panic(s) at a query's task boundary in the last 15 minutes; the "
                             "queries failed with 500 internal, the server kept running."),
             "runbook": runbook("SluicePanics",
                                "find the panic and its query id in the server log, and report "
                                "it with the statement."),
         }},
    ]))

    # --- sources -----------------------------------------------------------------------------
    groups.append(("sluice-sources", "", [
        {"alert": "SluiceSourceDown",
         "expr": f"sluice_source_up{{{J}}} == 0",
         "for": "5m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "Source {{ $labels.source }} is down on Sluice {{ $labels.instance }}",
             "description": ("Every replica of source {{ $labels.source }} has been unavailable "
                             "(or still starting) on {{ $labels.instance }} for 5 minutes: its "
                             "queries get 503 source_unavailable unless it has a fallback."),
             "runbook": runbook("SluiceSourceDown",
                                "GET /v1/sources shows each replica's state and last error; "
                                "check the database or bucket itself, its credentials and the "
                                "network from the instance."),
         }},
        {"alert": "SluiceCircuitOpen",
         "expr": f"sluice_replica_circuit{{{J}}} == 2",
         "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Replica {{ $labels.replica }} of {{ $labels.source }} has an open circuit",
             "description": ("The circuit of replica {{ $labels.replica }} of source "
                             "{{ $labels.source }} on {{ $labels.instance }} has been open for "
                             "5 minutes: it gets no statements, the other replicas carry its "
                             "load."),
             "runbook": runbook("SluiceCircuitOpen",
                                "GET /v1/sources for the replica's last error; check that "
                                "database (up, accepting connections, in recovery?)."),
         }},
        {"alert": "SluiceReplicaFailover",
         "expr": f"""
sum by (job, instance, source) (increase(sluice_failovers_total{{{J}}}[15m])) > 2
""",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Statements of {{ $labels.source }} are failing over",
             "description": ("{{ $value | printf \"%.0f\" }} statements of source "
                             "{{ $labels.source }} on {{ $labels.instance }} failed on a replica "
                             "and were retried on another in the last 15 minutes."),
             "runbook": runbook("SluiceReplicaFailover",
                                "find the failing replica: "
                                "rate(sluice_replica_failures_total[15m]) by replica, and its "
                                "state and circuit."),
         }},
        {"alert": "SluiceSourceQueueSaturated",
         "expr": f"""
sluice_source_queue_depth{{{J}}}
  / on (job, instance, source) sluice_source_queue_limit{{{J}}} > {fmt(a.queue_saturation_ratio)}
and on (job, instance, source)
sluice_source_queue_limit{{{J}}} > 0
""",
         "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "The queue of source {{ $labels.source }} is nearly full",
             "description": (f"Statements waiting for a slot of source {{{{ $labels.source }}}} "
                             f"on {{{{ $labels.instance }}}} fill {{{{ $value | humanizePercentage }}}} "
                             f"of its max_queued (threshold {pct(a.queue_saturation_ratio)}); "
                             f"when full, statements are refused with 429."),
             "runbook": runbook("SluiceSourceQueueSaturated",
                                "the source is slower than the load: check its latency and "
                                "replicas, the queries holding its slots (GET /v1/queries), and "
                                "its max_concurrency."),
         }},
        {"alert": "SluiceSourceQueueRefusals",
         "expr": f"""
sum by (job, instance, source, reason) (increase(sluice_source_queue_refusals_total{{{J}}}[10m])) > 0
""",
         "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Source {{ $labels.source }} refuses statements ({{ $labels.reason }})",
             "description": ("The queue of source {{ $labels.source }} on "
                             "{{ $labels.instance }} refused {{ $value | printf \"%.0f\" }} "
                             "statements in the last 10 minutes, reason {{ $labels.reason }} "
                             "(full: 429 too_many_queries; timeout: 503 after queue_timeout_ms)."),
             "runbook": runbook("SluiceSourceQueueRefusals",
                                "as for SluiceSourceQueueSaturated: a slow source or too little "
                                "max_concurrency/max_queued for the load."),
         }},
        {"alert": "SluiceRegistryApplyErrors",
         "expr": f"increase(sluice_registry_apply_errors_total{{{J}}}[10m]) > 0",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} cannot apply registry sources",
             "description": ("{{ $labels.instance }} could not apply {{ $value | printf \"%.0f\" }} "
                             "source registry entries in the last 10 minutes (counted again at "
                             "each registry change and each retry, every 30 s): a ${VAR} reference its "
                             "environment lacks, or a store, pool or client it cannot build. "
                             "Those sources are missing or out of date there, while other "
                             "servers may run them."),
             "runbook": runbook("SluiceRegistryApplyErrors",
                                "the server log names each entry (\"A registry source could not "
                                "be applied on this server.\"); give the instance the variable, "
                                "or fix the entry (PUT /v1/sources/{name}). Entries are retried "
                                "every 30 s: the alert resolves 10 minutes after the fix."),
         }},
        {"alert": "SluiceSpoolErrors",
         "expr": f"increase(sluice_spool_errors_total{{{J}}}[10m]) > 0",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} cannot use its spool location",
             "description": ("{{ $labels.instance }} had {{ $value | printf \"%.0f\" }} failed "
                             "spool store operations (writes, reads, deletes, listings) in the "
                             "last 10 minutes: spooled queries fail with spool_unavailable, "
                             "or their segments wait for the sweeper's next pass."),
             "runbook": runbook("SluiceSpoolErrors",
                                "the server log says which operation failed (\"Spool: ... "
                                "failed.\"); check the location's credentials, permissions "
                                "and reachability. The alert resolves 10 minutes after the "
                                "last failure."),
         }},
        {"alert": "SluiceRegistryVersionBehind",
         "expr": f"""
sluice_registry_version{{{J}}}
  < on (job) group_left
max by (job) (sluice_registry_version{{{J}}} offset 1m)
""",
         "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} is behind the source registry",
             "description": ("{{ $labels.instance }} has applied source registry version "
                             "{{ $value | printf \"%.0f\" }}, older than the one another "
                             "server of job {{ $labels.job }} has applied, for more than 5 "
                             "minutes (servers sharing a metadata store converge within "
                             "metadata.registry_sync_ms): "
                             "sources added, changed or removed since may be missing, out of "
                             "date or still running there."),
             "runbook": runbook("SluiceRegistryVersionBehind",
                                "check that the instance reaches the metadata store "
                                "(SluiceMetadataStoreUnreachable) and its log (\"The source "
                                "registry could not be read\"); compare registry_version in "
                                "GET /v1/sources (as an admin) across the servers. Servers that "
                                "do not share one store need a job each."),
         }},
    ]))

    # --- cache -------------------------------------------------------------------------------
    groups.append(("sluice-cache", "", [
        {"alert": "SluiceCacheHitRatioLow",
         "expr": f"""
sluice:cache_hit:ratio_rate30m{{{J}}} < {fmt(a.cache_hit_ratio_min)}
and on (job, instance)
sluice:cache_requests:rate30m{{{J}}} > {fmt(a.cache_min_request_rate)}
""",
         "for": "15m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Result-cache hit ratio is low on Sluice {{ $labels.instance }}",
             "description": (f"The result cache of {{{{ $labels.instance }}}} answered "
                             f"{{{{ $value | humanizePercentage }}}} of cacheable requests over "
                             f"30 minutes (threshold {pct(a.cache_hit_ratio_min)})."),
             "runbook": runbook("SluiceCacheHitRatioLow",
                                "look at evictions by cause (size: the cache is too small; "
                                "invalidated: sources refresh often; expired: ttl too short) "
                                "and whether the shared cache (Redis) is up."),
         }},
        {"alert": "SluiceCacheHitRatioFalling",
         "expr": f"""
sluice:cache_hit:ratio_rate30m{{{J}}} < {fmt(a.cache_hit_ratio_drop)} * sluice:cache_hit:ratio_rate1d{{{J}}}
and on (job, instance)
sluice:cache_requests:rate30m{{{J}}} > {fmt(a.cache_min_request_rate)}
""",
         "for": "15m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Result-cache hit ratio is falling on Sluice {{ $labels.instance }}",
             "description": (f"The result cache of {{{{ $labels.instance }}}} answered "
                             f"{{{{ $value | humanizePercentage }}}} of cacheable requests over "
                             f"30 minutes, less than {fmt(a.cache_hit_ratio_drop)} times its "
                             f"ratio over the last day."),
             "runbook": runbook("SluiceCacheHitRatioFalling",
                                "as for SluiceCacheHitRatioLow; also a new client or dashboard "
                                "sending unrepeated statements, or a restart (an empty cache)."),
         }},
        {"alert": "SluiceRedisUnreachable",
         "expr": f"sluice_cache_shared_up{{{J}}} == 0",
         "for": "5m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} cannot reach its shared cache (Redis)",
             "description": ("{{ $labels.instance }} has not reached the Redis of "
                             "[cache] redis_url for 5 minutes; it answers from its own cache "
                             "alone, so instances no longer share hits."),
             "runbook": runbook("SluiceRedisUnreachable",
                                "check Redis and the network from the instance; "
                                "sluice_cache_shared_errors_total and the server log say why."),
         }},
    ]))

    # --- governance --------------------------------------------------------------------------
    groups.append(("sluice-governance", "", [
        {"alert": "SluiceMetadataStoreUnreachable",
         "expr": f"sluice_metadata_store_up{{{J}}} == 0",
         "for": "2m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} cannot reach its metadata store",
             "description": ("The metadata store (PostgreSQL) of {{ $labels.instance }} has not "
                             "answered for 2 minutes: audit records pile up in memory (queries "
                             "are refused once the buffer is full) and keys the server does not "
                             "hold cannot be looked up."),
             "runbook": runbook("SluiceMetadataStoreUnreachable",
                                "check the [metadata] database (up, connections, disk) and the "
                                "network; watch sluice_audit_buffered."),
         }},
        {"alert": "SluiceAuditWriteErrors",
         "expr": f"increase(sluice_audit_write_errors_total{{{J}}}[15m]) > 2",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} fails to write audit records",
             "description": ("{{ $value | printf \"%.0f\" }} audit batch writes of "
                             "{{ $labels.instance }} failed in the last 15 minutes (each is "
                             "retried; the records wait in the buffer)."),
             "runbook": runbook("SluiceAuditWriteErrors",
                                "the server log (target sluice::audit) has the store's error; "
                                "check the metadata store and its disk."),
         }},
        {"alert": "SluiceAuditRecordsDropped",
         "expr": f"increase(sluice_audit_dropped_total{{{J}}}[15m]) > 0",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} dropped audit records",
             "description": ("{{ $value | printf \"%.0f\" }} audit records of "
                             "{{ $labels.instance }} were kept only in the log in the last "
                             "15 minutes (the buffer was full): the audit table misses them."),
             "runbook": runbook("SluiceAuditRecordsDropped",
                                "fix the store first (see SluiceAuditWriteErrors); recover the "
                                "records from the sluice::audit log lines."),
         }},
        {"alert": "SluiceAuditRefusingQueries",
         "expr": f"increase(sluice_audit_refused_total{{{J}}}[5m]) > 0",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} refuses queries it cannot audit",
             "description": ("{{ $labels.instance }} refused {{ $value | printf \"%.0f\" }} "
                             "queries in the last 5 minutes because their audit record could "
                             "not be kept (503 metadata_unavailable)."),
             "runbook": runbook("SluiceAuditRefusingQueries",
                                "the metadata store is down or too slow: see "
                                "SluiceMetadataStoreUnreachable and SluiceAuditWriteErrors."),
         }},
        {"alert": "SluiceRateLimitRejections",
         "expr": f"""
sum by (job, instance, reason) (rate(sluice_rate_limited_total{{{J}}}[5m])) > {fmt(a.rate_limited_per_second)}
""",
         "for": "15m",
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "Sluice {{ $labels.instance }} refuses many queries by keys' limits ({{ $labels.reason }})",
             "description": (f"{{{{ $labels.instance }}}} has refused {{{{ $value | printf \"%.2f\" }}}} "
                             f"queries a second for 15 minutes by keys' {{{{ $labels.reason }}}} "
                             f"limits (threshold {fmt(a.rate_limited_per_second)} a second)."),
             "runbook": runbook("SluiceRateLimitRejections",
                                "find the key in the audit log (outcome rate_limited) and either "
                                "fix the client (retries without backoff?) or raise the key's "
                                "limits."),
         }},
    ]))

    return emit(header, groups)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    text = build(args)
    out: Path = args.output
    if args.check:
        try:
            current = out.read_text()
        except FileNotFoundError:
            print(f"{out}: missing", file=sys.stderr)
            return 1
        if current != text:
            sys.stderr.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                fromfile=str(out), tofile="generate.py output"))
            print(f"{out} differs from generate.py's output; run generate.py to rewrite it",
                  file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
