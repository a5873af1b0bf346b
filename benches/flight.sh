#!/usr/bin/env bash
# Flight SQL benchmark: Sluice's Flight SQL door (ADBC) vs its HTTP Arrow stream vs nginx serving
# the same bytes, small-query latency on both doors, and TPC-H over Flight vs embedded DataFusion.
#
#   benches/flight.sh [--scale 1] [--runs 5]
#
# Needs python3, curl and nginx (Debian: apt-get install nginx). Prepares what e2e.sh prepares
# (benches/prepare.sh), builds Sluice in release mode, then runs benches/flight.py, which
# prepends its report to benches/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 curl nginx; do
    if ! command -v "$tool" >/dev/null && [[ ! -x /usr/sbin/$tool ]]; then
        echo "flight.sh: $tool is missing (Debian: apt-get install -y nginx curl)" >&2
        exit 1
    fi
done
export PATH="$PATH:/usr/sbin"
. benches/prepare.sh "$@"
exec "$venv/bin/python" benches/flight.py --data "$data" --sluice target/release/sluice "$@"
