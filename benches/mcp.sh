#!/usr/bin/env bash
# MCP vs /v1/query through a release Sluice on the embedded default: the small query's tool-call
# latency (raw 2026-07-28 POSTs and the official Python SDK) against the same query over
# /v1/query, side by side in alternating rounds; and tokens per row of the query tool's compact
# result against plain JSON rows (see benches/mcp.py).
#
#   benches/mcp.sh [--rounds 3] [--requests 2000] [--sdk-requests 500]
#
# Prepares the virtualenv and a release build as benches/e2e.sh does (no TPC-H data needed).
set -euo pipefail
cd "$(dirname "$0")/.."

prepare_data=0
. benches/prepare.sh
"$venv/bin/python" benches/mcp.py --sluice target/release/sluice "$@"
