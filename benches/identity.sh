#!/usr/bin/env bash
# Identity, end to end: the small query's latency at one connection with an API key and with a
# bearer JWT from a real OpenID Provider (npm oidc-provider, as the tests run it), side by side
# in one run, alternating rounds; and `SELECT * FROM lineitem` (TPC-H SF 1) streamed over HTTPS
# and over HTTP, alternating. The per-request cost of checking a token is
# `cargo bench --bench micro -- identity`.
#
#   benches/identity.sh [--rounds 5] [--requests 2000] [--streams 5] [--no-write]
#
# Prepares the virtualenv, TPC-H SF 1 and a release build as benches/e2e.sh does, installs the
# OpenID Provider like the test services (scripts/services.sh), needs node, openssl and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/prepare.sh
if [ ! -d .tools/oidc/node_modules/oidc-provider ]; then
  mkdir -p .tools/oidc
  (cd .tools/oidc && npm install --silent --no-audit --no-fund --prefix . oidc-provider@9.13.3 >/dev/null)
fi
cp scripts/oidc-provider.mjs .tools/oidc/provider.mjs
"$venv/bin/python" benches/identity.py --sluice target/release/sluice --data "$data" \
  --provider .tools/oidc/provider.mjs "$@"
