#!/usr/bin/env bash
# Fuzzes the whole HTTP API against its own OpenAPI document: starts a Sluice server (the
# embedded default, with its minted admin key) on a free loopback port, runs schemathesis
# (pinned in .venv) over every operation with every check but the two that do not fit this
# API (below), then asserts the case count and that the server is still alive.
#
#   scripts/fuzz-api.sh                     uses target/debug/sluice (built by cargo test)
#   SLUICE_BIN=... FUZZ_EXAMPLES=... scripts/fuzz-api.sh
#
# Left out: positive_data_acceptance (any string is schema-valid `sql`, not valid SQL, so a
# 400 sql_invalid is right), use_after_free (DELETE /v1/queries/{id} cancels a query; its
# record stays readable, as the contract says).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${SLUICE_BIN:-target/debug/sluice}
examples=${FUZZ_EXAMPLES:-200}
min_cases=${FUZZ_MIN_CASES:-2000}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$port" >"$work/server.out" 2>"$work/server.err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 600); do
  grep -q '^sluice ready' "$work/server.out" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.err" >&2; echo "fuzz: server did not start" >&2; exit 1; }
  sleep 0.1
done
key=$(grep -o 'api_key=[^ ]*' "$work/server.out" | cut -d= -f2)
[ -n "$key" ] || { echo "fuzz: no key in the ready line" >&2; exit 1; }
started=$(date +%s)
set +e
# From the temporary folder: schemathesis keeps a cache in its working directory.
(cd "$work" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$root/scripts" \
  "$root/.venv/bin/st" --config-file "$root/scripts/schemathesis.toml" run "http://127.0.0.1:$port/openapi.json" \
  -H "Authorization: Bearer $key" -n "$examples" --seed 20261201 \
  --checks all --exclude-checks positive_data_acceptance,use_after_free \
  --request-timeout 60 --no-color >"$work/st.out" 2>&1)
rc=$?
set -e
elapsed=$(( $(date +%s) - started ))
tail -25 "$work/st.out"
cases=$(grep -oE '^ *[0-9]+ generated' "$work/st.out" | grep -oE '[0-9]+' | tail -1)
if [ "$rc" -ne 0 ]; then
  cat "$work/st.out" | head -200
  echo "fuzz: schemathesis failed (exit $rc)" >&2; exit 1
fi
if [ -z "$cases" ] || [ "$cases" -lt "$min_cases" ]; then
  echo "fuzz: only ${cases:-0} cases ran; at least $min_cases are required" >&2; exit 1
fi
if ! kill -0 "$pid" 2>/dev/null || ! curl -sf "http://127.0.0.1:$port/health" >/dev/null; then
  echo "fuzz: the server is not alive after the run" >&2; exit 1
fi
echo "fuzz: $cases cases in ${elapsed} s, 0 failures, server alive"
