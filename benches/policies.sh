#!/usr/bin/env bash
# Row filters and column masks: the overhead of a filter and two masks on TPC-H SF 1, side by
# side in one run against the same server with no policy (an admin key, whom the policy does not
# bind), alternating per query.
#
#   benches/policies.sh [--scale 1] [--runs 5] [--queries 1-22] [--no-write]
#
# Prepares the virtualenv, TPC-H Parquet and a release build as benches/e2e.sh does, then runs
# benches/policies.py, which prepends its report to benches/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/prepare.sh "$@"
exec "$venv/bin/python" benches/policies.py --data "$data" --sluice target/release/sluice "$@"
