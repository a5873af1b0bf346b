#!/usr/bin/env bash
# Spooled results benchmark: `SELECT * FROM lineitem` spooled (manifest, then segments fetched in
# parallel) through Sluice's proxy (file:// spool) and presigned from S3 on moto, against the HTTP
# Arrow stream and Flight SQL.
#
#   benches/spool.sh [--scale 1] [--runs 3] [--parallel 4] [--no-write]
#
# Needs python3. Prepares what e2e.sh prepares (benches/prepare.sh: the virtualenv with moto and
# ADBC's Flight SQL driver, TPC-H data, a release build), then runs benches/spool.py, which starts
# its own moto and two Sluice servers and prepends its report to benches/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/prepare.sh "$@"
exec "$venv/bin/python" benches/spool.py --data "$data" --sluice target/release/sluice "$@"
