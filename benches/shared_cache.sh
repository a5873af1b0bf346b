#!/usr/bin/env bash
# Two release Sluice servers sharing one Redis: the second server's first request for a result
# the first computed, against a run and a local hit (see benches/shared_cache.py).
#
#   benches/shared_cache.sh [--rounds 5] [--scale 1]
#
# Needs redis-server and redis-cli (Debian: apt-get install -y redis-server); prepares the
# virtualenv, TPC-H data and a release build as benches/e2e.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "shared_cache.sh: redis-server is missing (apt-get install -y redis-server)" >&2; exit 1; }
. benches/prepare.sh "$@"
rounds=()
for ((i = 1; i <= $#; i++)); do
    if [[ ${!i} == --rounds ]]; then j=$((i + 1)); rounds=(--rounds "${!j}"); fi
done
exec "$venv/bin/python" benches/shared_cache.py --data "$data" --sluice target/release/sluice "${rounds[@]}"
