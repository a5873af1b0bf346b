#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing into project-owned,
# git-ignored folders, then runs every test. CI runs exactly this (.ci/run).
#
#   scripts/test.sh                 everything
#   scripts/test.sh -- <filter>     cargo test arguments after `--` (e.g. one test name)
#
# Tools: .venv/ holds pyarrow and polars (reused when their versions match).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

say() { printf '\n== %s\n' "$*"; }

# --- Python tools (the pyarrow/polars reader test) ---------------------------------------
venv=$root/.venv
stamp=$venv/.requirements-test.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s scripts/requirements-test.txt "$stamp"; then
  say "installing Python test tools into .venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
  cp scripts/requirements-test.txt "$stamp"
fi
export SLUICE_TEST_PYTHON=$venv/bin/python

# --- One arrow stack ----------------------------------------------------------------------
say "checking for duplicate arrow/parquet/object_store/sqlparser/datafusion crates"
# --depth 0: only the duplicated packages themselves, not the crates that depend on them.
dups=$(cargo tree --workspace --locked -d --depth 0 -e normal,build,dev --prefix none 2>/dev/null \
  | grep -E '^(arrow|arrow-[a-z-]+|parquet|object_store|sqlparser|datafusion|datafusion-[a-z-]+) v' \
  | sort -u || true)
if [ -n "$dups" ]; then
  echo "two versions of the data stack are in the tree:"; echo "$dups"; exit 1
fi
echo "ok: one version each"

# --- Formatting ---------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

# --- Tests --------------------------------------------------------------------------------
say "cargo test"
args=()
if [ "${1:-}" = "--" ]; then shift; args=("$@"); fi
# --workspace always: building one package alone unifies features differently and rebuilds
# DataFusion.
cargo test --workspace --locked -- "${args[@]}"
