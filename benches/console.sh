#!/usr/bin/env bash
# The console with a million-row result: the browser (Debian's chromium through ui/'s
# playwright-core) against a pyarrow client on the same release server, in one run.
#
#   benches/console.sh [--scale 1] [--runs 5] [--no-write]
#
# Needs /usr/bin/chromium and ui/node_modules (scripts/services.sh installs both). Prepares the
# virtualenv, TPC-H Parquet and a release build as benches/e2e.sh does, then runs
# benches/console.py, which prepends its report to benches/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/prepare.sh "$@"
exec "$venv/bin/python" benches/console.py --data "$data" --sluice target/release/sluice "$@"
