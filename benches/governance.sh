#!/usr/bin/env bash
# Governance on vs off, end to end: the small query's latency at one connection through a
# release Sluice with auth off (no keys, no grants, no limits) and with governance on (a reader
# key with grants and a rate limit, audit and usage written to PostgreSQL), side by side in one
# run, alternating rounds.
#
#   benches/governance.sh [--rounds 5] [--seconds 10] [--log info] [--no-write]
#
# Needs wrk (Debian: apt-get install -y wrk) and psql.
#
# Starts the test services (the spare PostgreSQL cluster holds the metadata store), prepares the
# virtualenv and a release build as benches/e2e.sh does (no TPC-H data: the embedded testdata),
# runs benches/governance.py, and stops the services when it ends. The per-request costs inside
# are `cargo bench --bench micro -- governance` (SLUICE_BENCH_METADATA_URL for the audit insert).
set -euo pipefail
cd "$(dirname "$0")/.."

prepare_data=0
. benches/prepare.sh
trap 'scripts/services.sh down' EXIT
scripts/services.sh up
# shellcheck source=/dev/null
. .services/env
"$venv/bin/python" benches/governance.py --sluice target/release/sluice \
  --pg-url "$SLUICE_TEST_PG_SPARE_URL" "$@"
