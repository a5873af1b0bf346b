#!/usr/bin/env bash
# Snowflake source against fakesnow: a large result (a few million rows) through Sluice and
# through the Python connector's fetch_arrow_all(): rows/s, peak RSS, bytes and chunks fetched.
#
#   benches/snowflake.sh [--rows 3000000] [--runs 3] [--no-write]
#
# Starts the test services (scripts/services.sh: fakesnow from the test virtualenv), prepares
# the bench virtualenv and a release build as benches/e2e.sh does (no TPC-H data), runs
# benches/snowflake.py, and stops the services when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare_data=0
. benches/prepare.sh
trap 'scripts/services.sh down' EXIT
scripts/services.sh up
# shellcheck source=/dev/null
. .services/env
"$venv/bin/python" benches/snowflake.py --sluice target/release/sluice \
  --url "$SLUICE_TEST_SNOWFLAKE_URL" --connector-python "$venv/bin/python" "$@"
