#!/usr/bin/env bash
# Federation: TPC-H in three layouts over PostgreSQL and Parquet, with each remote source's
# pushdown at full, filters and none: per-query time, rows and bytes pulled per source, and
# answers checked against DuckDB.
#
#   benches/federation.sh [--scale 1] [--runs 3] [--none-runs 1] [--layouts all,star,two]
#                         [--queries 1,6] [--no-write]
#
# Starts the test services (the spare PostgreSQL cluster: no TLS, no statement log), prepares
# the virtualenv, TPC-H Parquet and a release build as benches/e2e.sh does, loads the tables
# into two PostgreSQL databases once per scale, runs benches/federation.py and stops the
# services when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/prepare.sh
trap 'scripts/services.sh down' EXIT
scripts/services.sh up
# shellcheck source=/dev/null
. .services/env
"$venv/bin/python" benches/federation.py --sluice target/release/sluice --data "$data" \
  --pg-url "$SLUICE_TEST_PG_SPARE_URL" "$@"
