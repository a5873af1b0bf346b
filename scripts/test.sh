#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing into project-owned,
# git-ignored folders, then runs every test. CI runs exactly this (.ci/run).
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- <filter>     cargo test arguments after `--` (e.g. one test name)
#
# Tools: .venv/ (pyarrow, polars, moto, fakesnow, schemathesis) and .tools/azurite/, reused when their
# versions match. Services: scripts/services.sh (it also documents running one test by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '\n== %s\n' "$*"; }

# How long each stage took, printed at the end whether the run passed or failed (the CI
# note reports these figures).
stages=()
stage_started=$SECONDS
stage_name=""
stage() {
  if [ -n "$stage_name" ]; then stages+=("$(printf '%-12s %5d s' "$stage_name" $((SECONDS - stage_started)))"); fi
  stage_name=$1
  stage_started=$SECONDS
}
report() {
  local status=$?
  stage ""
  printf '\n== stage times (total %d s)\n' "$SECONDS"
  printf '   %s\n' "${stages[@]}"
  scripts/services.sh down || true
  return $status
}

# --- Real services -------------------------------------------------------------------------
# PostgreSQL, S3 (moto), Azure Blob (Azurite), Snowflake (fakesnow) on free loopback ports,
# stopped by PID when this script exits, whether the tests pass or fail. With CI=true a service
# that does not start fails the run here.
say "starting test services (scripts/services.sh)"
trap report EXIT
stage services
scripts/services.sh up
# shellcheck source=/dev/null
. .services/env
export SLUICE_TEST_PYTHON=$root/.venv/bin/python

# --- One arrow stack ----------------------------------------------------------------------
stage checks
say "checking for duplicate arrow/parquet/object_store/sqlparser/datafusion crates"
# --depth 0: only the duplicated packages themselves, not the crates that depend on them.
dups=$(cargo tree --workspace --locked -d --depth 0 -e normal,build,dev --prefix none 2>/dev/null \
  | grep -E '^(arrow|arrow-[a-z-]+|parquet|object_store|sqlparser|datafusion|datafusion-[a-z-]+) v' \
  | sort -u || true)
if [ -n "$dups" ]; then
  echo "two versions of the data stack are in the tree:"; echo "$dups"; exit 1
fi
echo "ok: one version each"

# --- The console's committed bundle is the build of its sources ----------------------------
say "ui/dist is the build of ui/src (node ui/build.mjs --check)"
node ui/build.mjs --check

# --- Formatting ---------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

# --- Lints --------------------------------------------------------------------------------
stage clippy
say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --- Tests --------------------------------------------------------------------------------
args=()
if [ "${1:-}" = "--" ]; then shift; args=("$@"); fi
# --workspace always: building one package alone unifies features differently and rebuilds
# DataFusion.
stage build
say "cargo test --no-run"
cargo test --workspace --locked --no-run
stage tests
say "cargo test"
# Tests wait for events without wall-clock bounds of their own; a test that hangs is stopped
# here, the whole run failing with it. The output goes to a file, followed here as it grows
# (not piped: a process a test started that outlived it would hold a pipe open for good);
# when the run fails, what named the culprit (a test running for over 60 s, a wait that says
# what it still waits for, a panic) is printed again at the end, where a truncated log still
# shows it.
test_log=$root/target/test-output.log
: >"$test_log"
timeout --signal=KILL 30m cargo test --workspace --locked -- "${args[@]}" >>"$test_log" 2>&1 &
tests_pid=$!
tail -n +1 -f --pid="$tests_pid" "$test_log"
tests_status=0
wait "$tests_pid" || tests_status=$?
if [ "$tests_status" -ne 0 ]; then
  say "the tests failed (exit $tests_status); from their output:"
  grep -aE 'has been running for over|still waiting after|panicked at|^test .* FAILED$|^    [a-z0-9_:]+$' "$test_log" \
    | awk '!seen[$0]++' | tail -n 60 || true
  exit "$tests_status"
fi

# --- The API against its own OpenAPI document ----------------------------------------------
# Only for the whole suite, not for a run of one test.
if [ ${#args[@]} -eq 0 ]; then
  stage fuzz
  say "schemathesis against /openapi.json (scripts/fuzz-api.sh)"
  scripts/fuzz-api.sh
fi
