#!/usr/bin/env bash
# PostgreSQL source: a 10-row primary-key lookup through Sluice vs psql, bytes pulled from
# PostgreSQL vs the result, and a full-table stream's rows/s and peak RSS.
#
#   benches/postgres.sh [--rows 1000000] [--runs 200] [--stream-runs 3] [--no-write]
#
# Starts the test services (scripts/services.sh; the spare PostgreSQL cluster has no TLS and no
# statement log), prepares the virtualenv and a release build as benches/e2e.sh does (no TPC-H
# data), runs benches/postgres.py, and stops the services when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare_data=0
. benches/prepare.sh
trap 'scripts/services.sh down' EXIT
scripts/services.sh up
# shellcheck source=/dev/null
. .services/env
"$venv/bin/python" benches/postgres.py --sluice target/release/sluice \
  --pg-url "$SLUICE_TEST_PG_SPARE_URL" "$@"
