#!/usr/bin/env bash
# Failover under load, end to end: a release Sluice with one PostgreSQL source whose two replicas
# are the test services' two clusters (the same table in both); 32 clients query it without
# pause while the second replica is stopped (fast shutdown, by PID) and later started again.
# Reports errors and latency before, during and after, the time until the replica showed as
# unavailable in /v1/sources, and the time until it was readmitted.
#
#   benches/failover.sh [--seconds 30] [--clients 32] [--interval-ms 1000] [--no-write]
#
# Starts the test services and stops them when it ends; prepares the virtualenv and a release
# build as benches/e2e.sh does (no TPC-H data). The routing decision alone is
# `cargo bench --bench micro -- routing`.
set -euo pipefail
cd "$(dirname "$0")/.."

prepare_data=0
. benches/prepare.sh
trap 'scripts/services.sh down' EXIT
scripts/services.sh up
# shellcheck source=/dev/null
. .services/env
"$venv/bin/python" benches/failover.py --sluice target/release/sluice \
  --main "$SLUICE_TEST_PG_URL" --spare "$SLUICE_TEST_PG_SPARE_URL" "$@"
