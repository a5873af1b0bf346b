#!/usr/bin/env bash
# Remote reads: TPC-H Q1 and Q6 from S3 (moto) vs local disk, bytes read per query.
#
#   benches/remote.sh [--scale 1] [--runs 5] [--no-write]
#
# Prepares what benches/e2e.sh prepares (virtualenv with moto, TPC-H data, release build), then
# runs benches/remote.py, which starts its own moto, uploads lineitem and prepends its report
# to benches/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/prepare.sh "$@"
exec "$venv/bin/python" benches/remote.py --data "$data" --sluice target/release/sluice "$@"
