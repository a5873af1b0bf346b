#!/usr/bin/env bash
# What a hostile client costs a release Sluice: memory per idle MCP session (what
# `[mcp] max_sessions` bounds), one key's handshakes against the default session caps, and a
# flood of made-up keys (refusal latency, store lookups, a real key's latency meanwhile). See
# benches/floods.py.
#
#   benches/floods.sh [--sessions 4000] [--handshakes 5000] [--keys 5000] [--clients 32] [--no-write]
#
# Prepares the virtualenv and a release build as benches/e2e.sh does (no TPC-H data needed).
set -euo pipefail
cd "$(dirname "$0")/.."

prepare_data=0
. benches/prepare.sh
"$venv/bin/python" benches/floods.py --sluice target/release/sluice "$@"
