#!/usr/bin/env bash
# PostgreSQL-protocol benchmark: small-query p50 and a 6,000,000-row fetch (TPC-H SF 1 lineitem)
# through psycopg in binary from Sluice's PostgreSQL door, against the same rows over HTTP Arrow
# (pyarrow) and Flight SQL (ADBC), and against PostgreSQL itself serving them (loaded into the
# test services' spare cluster).
#
#   benches/pg.sh [--scale 1] [--runs 3] [--small 300]
#
# Prepares what e2e.sh prepares (benches/prepare.sh), starts the test services
# (scripts/services.sh) and stops them when it ends, then runs benches/pg.py, which prepends its
# report to benches/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/prepare.sh "$@"
trap 'scripts/services.sh down' EXIT
scripts/services.sh up
# shellcheck source=/dev/null
. .services/env
"$venv/bin/python" benches/pg.py --data "$data" --sluice target/release/sluice \
  --pg-url "$SLUICE_TEST_PG_SPARE_URL" "$@"
