#!/usr/bin/env bash
# What tracing and the log format cost per request: the small query at 16 connections through a
# release Sluice with tracing off, on at 100% and at 1% (spans exported over OTLP/HTTP to a
# loopback collector that answers 200), and with JSON instead of text logs at `info`, and at
# `warn`; side by side in one run, alternating rounds.
#
#   benches/telemetry.sh [--rounds 5] [--seconds 8] [--no-write]
#
# Needs wrk (Debian: apt-get install -y wrk). No test service: the embedded testdata.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare_data=0
. benches/prepare.sh
"$venv/bin/python" benches/telemetry.py --sluice target/release/sluice "$@"
