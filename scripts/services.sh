#!/usr/bin/env bash
# Real services for the test suite, on free 127.0.0.1 ports (../shared/TESTING.md has the facts):
# two throwaway PostgreSQL clusters, S3 (moto), Azure Blob (Azurite), Snowflake (fakesnow) and
# Redis (Debian's redis-server, installed with apt when missing; nothing persisted); and
# installs the OpenID Provider (npm oidc-provider) the identity tests start themselves, and the
# console's browser test's tools: Debian's chromium and the npm packages of ui/ (`npm ci` from
# ui/package-lock.json: esbuild, which the test command's bundle check runs, and playwright-core).
# The main cluster has TLS on and logs every statement; the spare one is for tests that stop
# and restart a source.
#
#   scripts/services.sh up      install what is missing, start them all, write .services/env
#   scripts/services.sh down    stop every service recorded in .services/ by its PID
#   scripts/services.sh status  show what is recorded and whether it still runs
#   scripts/services.sh stop|start postgres_spare   (used by the tests)
#
# Tools live in git-ignored folders owned by the project and are reused: .venv/ (moto,
# fakesnow, from scripts/requirements-test.txt) and .tools/azurite/ (npm). Each service's PID
# is recorded in .services/<name>.pid and it is only ever stopped by that PID.
#
# Running one test by hand with the services up:
#   scripts/services.sh up && . .services/env && cargo test --workspace -- object_stores
#
# With CI=true a service that fails to start fails `up` (exit 1); otherwise it is reported loudly
# and the tests that need it say so when they run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=$root/.services
venv=$root/.venv
azurite_dir=$root/.tools/azurite
azurite_version=3.37.0
# The OpenID Provider the identity tests start (npm oidc-provider; scripts/oidc-provider.mjs).
oidc_dir=$root/.tools/oidc
oidc_version=9.13.3
# The S3 bucket and Azure container created empty at start (SLUICE_TEST_BUCKET).
test_bucket=sluice-test
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
# The PostgreSQL door's clients: npm packages, and psqlODBC's driver from Debian.
pgclients_dir=$root/.tools/pgclients
pgclients_version="pg@8.23.1 postgres@4.2.0"
psqlodbc=/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so
# deploy/'s tools: promtool, amtool and nginx, taken out of Debian's packages (`apt-get download`
# + `dpkg -x`) so nothing is installed system-wide and no service is started by a package.
ops_dir=$root/.tools/ops
ops_packages="prometheus prometheus-alertmanager nginx"

say() { printf '== %s\n' "$*" >&2; }
ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for NAME TRIES PROBE...: run PROBE every 0.2 s until it succeeds.
wait_for() {
  local name=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$run/$name.pid" 2>/dev/null)" 2>/dev/null; then return 1; fi
    sleep 0.2
  done
  return 1
}

# --- install --------------------------------------------------------------------------------
install_python() {
  local stamp=$venv/.requirements-test.txt
  if [ ! -x "$venv/bin/python" ] || ! cmp -s scripts/requirements-test.txt "$stamp"; then
    say "installing Python tools into .venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
    cp scripts/requirements-test.txt "$stamp"
  fi
}

install_azurite() {
  if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ] \
    || [ "$(cat "$azurite_dir/.version" 2>/dev/null)" != "$azurite_version" ]; then
    say "installing azurite@$azurite_version into .tools/azurite"
    mkdir -p "$azurite_dir"
    (cd "$azurite_dir" && npm install --silent --no-audit --no-fund --prefix . \
      "azurite@$azurite_version" >/dev/null) || return 1
    echo "$azurite_version" >"$azurite_dir/.version"
  fi
}

# panva's oidc-provider, with the test suite's provider script beside its node_modules (an ES
# module resolves its imports from where it lives). The tests start their own providers.
install_oidc() {
  if [ ! -d "$oidc_dir/node_modules/oidc-provider" ] \
    || [ "$(cat "$oidc_dir/.version" 2>/dev/null)" != "$oidc_version" ]; then
    say "installing oidc-provider@$oidc_version into .tools/oidc"
    mkdir -p "$oidc_dir"
    (cd "$oidc_dir" && npm install --silent --no-audit --no-fund --prefix . \
      "oidc-provider@$oidc_version" >/dev/null) || return 1
    echo "$oidc_version" >"$oidc_dir/.version"
  fi
  cp scripts/oidc-provider.mjs "$oidc_dir/provider.mjs"
}

# Debian's packages, those missing, in one apt run: redis-server (the shared result cache's
# store) and the PostgreSQL door's clients (pgjdbc, psqlODBC with unixODBC, Go with lib/pq).
install_apt() {
  local want=()
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || want+=(redis-server)
  [ -f /usr/share/java/postgresql.jar ] || want+=(libpostgresql-jdbc-java)
  [ -f "$psqlodbc" ] || want+=(odbc-postgresql)
  ldconfig -p 2>/dev/null | grep -q 'libodbc.so.2' || want+=(unixodbc)
  command -v go >/dev/null || want+=(golang-go)
  [ -d /usr/share/gocode/src/github.com/lib/pq ] || want+=(golang-github-lib-pq-dev)
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  if [ "${#want[@]}" -gt 0 ]; then
    say "installing ${want[*]} (apt)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >/dev/null \
      || { "${sudo[@]}" apt-get update -q >/dev/null \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >/dev/null; }
  fi
  # The console's browser: without its recommended packages (a few minutes cold).
  if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium (apt)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null \
      || { "${sudo[@]}" apt-get update -q >/dev/null \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }
  fi
}

# The console's npm packages (esbuild, CodeMirror, apache-arrow, uPlot, playwright-core), exactly
# as ui/package-lock.json pins them; reused while the lock file is unchanged.
install_ui() {
  local stamp="$root/ui/node_modules/.lock-sha"
  local want
  want=$(sha256sum "$root/ui/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing the console's npm packages (npm ci in ui/)"
    (cd "$root/ui" && npm ci --silent --no-audit --no-fund >/dev/null) || return 1
    echo "$want" >"$stamp"
  fi
}

# node-postgres and porsager's postgres, for the PostgreSQL door's tests.
install_pg_npm() {
  if [ ! -d "$pgclients_dir/node_modules/pg" ] \
    || [ "$(cat "$pgclients_dir/.version" 2>/dev/null)" != "$pgclients_version" ]; then
    say "installing $pgclients_version into .tools/pgclients"
    mkdir -p "$pgclients_dir"
    # shellcheck disable=SC2086
    (cd "$pgclients_dir" && npm install --silent --no-audit --no-fund --prefix . \
      $pgclients_version >/dev/null) || return 1
    echo "$pgclients_version" >"$pgclients_dir/.version"
  fi
}

install_ops() {
  local want
  want=$(apt-cache policy $ops_packages 2>/dev/null | awk '/Candidate/ {print $2}' | tr '\n' ' ')
  if [ ! -x "$ops_dir/usr/bin/promtool" ] || [ "$(cat "$ops_dir/.version" 2>/dev/null)" != "$want" ]; then
    say "unpacking $ops_packages into .tools/ops (apt-get download + dpkg -x)"
    local debs
    debs=$(mktemp -d)
    # shellcheck disable=SC2086
    (cd "$debs" && { apt-get download -q $ops_packages >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get download -q $ops_packages >/dev/null 2>&1; }; }) \
      || { rm -rf "$debs"; return 1; }
    rm -rf "$ops_dir" && mkdir -p "$ops_dir"
    for deb in "$debs"/*.deb; do dpkg -x "$deb" "$ops_dir" || { rm -rf "$debs"; return 1; }; done
    rm -rf "$debs"
    echo "$want" >"$ops_dir/.version"
  fi
}

install_all() {
  # pip, npm and apt in parallel: about a minute cold, nothing when present.
  local failed=0
  install_python & local py=$!
  install_azurite & local az=$!
  install_apt & local rd=$!
  install_oidc & local op=$!
  install_pg_npm & local pn=$!
  install_ui & local ui=$!
  install_ops & local ops=$!
  wait "$py" || { say "installing the Python tools failed"; failed=1; }
  wait "$az" || { say "installing Azurite failed"; failed=1; }
  wait "$op" || { say "installing oidc-provider failed"; failed=1; }
  wait "$pn" || { say "installing the Node PostgreSQL clients failed"; failed=1; }
  wait "$ui" || { say "installing the console's npm packages failed"; failed=1; }
  wait "$ops" || { say "unpacking promtool, amtool and nginx failed"; failed=1; }
  wait "$rd" || { say "installing Debian's packages (redis, PostgreSQL clients, chromium) failed"; failed=1; }
  return "$failed"
}

# --- start ----------------------------------------------------------------------------------
# spawn NAME CMD...: start CMD detached, its output in .services/NAME.log, its PID recorded.
spawn() {
  local name=$1; shift
  setsid "$@" </dev/null >"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
}

# TLS for the main cluster: a throwaway CA and a server certificate it signs, for 127.0.0.1
# and localhost (rustls refuses a CA certificate used as the server's own).
make_certs() {
  local dir=$1
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj /CN=sluice-test-ca \
    -days 30 2>/dev/null || return 1
  openssl req "${ec[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" -subj /CN=localhost \
    2>/dev/null || return 1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/server.crt" -days 30 -extfile "$dir/server.ext" 2>/dev/null || return 1
  chmod 600 "$dir/server.key"
}

# as_postgres CMD...: PostgreSQL refuses to run as root.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# run_postmaster NAME: (re)start cluster NAME on its recorded data dir, port and settings.
run_postmaster() {
  local name=$1 data port
  data=$(cat "$run/$name.data")
  port=$(cat "$run/$name.port")
  # The postmaster itself (not pg_ctl) in the background: its PID is the one to stop.
  # max_connections: the suite's servers run at once, each with its sources' pools (the
  # federation fixture alone may hold 6 sources x 8 connections); 200 was reached.
  # shellcheck disable=SC2046
  setsid $( [ "$(id -u)" = 0 ] && echo runuser -u postgres -- ) "$pg_bin/postgres" -D "$data/db" \
    -c listen_addresses=127.0.0.1 -p "$port" -k "$data" -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=400 $(cat "$run/$name.args") \
    </dev/null >>"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
  wait_for "$name" 100 "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres || return 1
  # Record the postmaster's own PID (the first line of its pid file), not runuser's: signals
  # to runuser do not reach the server.
  head -n 1 "$data/db/postmaster.pid" >"$run/$name.pid"
}

# start_pg_cluster NAME ARGS...: a fresh cluster on a free port; ARGS are extra server settings.
start_pg_cluster() {
  [ -n "$pg_bin" ] || { say "PostgreSQL binaries not found under /usr/lib/postgresql"; return 1; }
  local name=$1 data; shift
  data=$(mktemp -d /tmp/sluice-pg.XXXXXX)
  chmod a+x "$data"
  echo "$data" >"$run/$name.data"
  free_port >"$run/$name.port"
  # A fresh log per `up` (restarts by `start` append to it): the main cluster logs every statement.
  : >"$run/$name.log"
  if [ "$(id -u)" = 0 ]; then chown postgres "$data" "$run/$name.log"; fi
  as_postgres "$pg_bin/initdb" -D "$data/db" -A trust -U postgres -E UTF8 --locale=C --no-sync \
    >"$run/$name.init.log" 2>&1 || { cat "$run/$name.init.log" >&2; return 1; }
  echo "$*" >"$run/$name.args"
  run_postmaster "$name"
}

start_postgres() {
  local data certs
  # TLS on (plain connections still accepted), and every statement logged with the backend's
  # PID and application_name, so tests can assert the exact SQL Sluice sent.
  certs=$(mktemp -d /tmp/sluice-pg-tls.XXXXXX)
  make_certs "$certs" || { say "openssl could not make the test certificates"; return 1; }
  chmod a+rx "$certs"
  if [ "$(id -u)" = 0 ]; then chown postgres "$certs/server.key"; fi
  echo "$certs" >"$run/postgres.certs"
  start_pg_cluster postgres -c ssl=on -c "ssl_cert_file=$certs/server.crt" \
    -c "ssl_key_file=$certs/server.key" -c log_statement=all '-c log_line_prefix=%p|%a|' \
    || return 1
  {
    echo "export SLUICE_TEST_PG_URL=postgres://postgres@127.0.0.1:$(cat "$run/postgres.port")/postgres"
    echo "export SLUICE_TEST_PG_LOG=$run/postgres.log"
    echo "export SLUICE_TEST_PG_CA=$certs/ca.crt"
  } >>"$run/env"
}

# A second cluster that tests stop and start (`services.sh stop|start postgres_spare`).
start_postgres_spare() {
  start_pg_cluster postgres_spare || return 1
  echo "export SLUICE_TEST_PG_SPARE_URL=postgres://postgres@127.0.0.1:$(cat "$run/postgres_spare.port")/postgres" \
    >>"$run/env"
}

# stop_one NAME: stop one service by its recorded PID (PostgreSQL: fast shutdown).
stop_one() {
  local name=$1 pid
  pid=$(cat "$run/$name.pid" 2>/dev/null) || { say "$name is not recorded"; return 1; }
  kill -INT "$pid" 2>/dev/null || { say "$name (pid $pid) is not running"; return 0; }
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

start_moto() {
  local port; port=$(free_port)
  spawn moto "$venv/bin/moto_server" -H 127.0.0.1 -p "$port"
  wait_for moto 100 curl -fsS "http://127.0.0.1:$port/moto-api/" || return 1
  # The bucket the tests put their objects in (under a prefix per test).
  curl -fsS -X PUT "http://127.0.0.1:$port/$test_bucket" >/dev/null || return 1
  echo "export SLUICE_TEST_S3_ENDPOINT=http://127.0.0.1:$port" >>"$run/env"
}

start_azurite() {
  local port; port=$(free_port)
  mkdir -p "$run/azurite"
  # --inMemoryPersistence cannot be combined with --location: run from a scratch folder.
  (cd "$run/azurite" && spawn azurite "$azurite_dir/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence --skipApiVersionCheck \
    --loose --disableTelemetry)
  # Any HTTP answer (403 without a signature) means it is listening.
  wait_for azurite 100 curl -sS -o /dev/null "http://127.0.0.1:$port/devstoreaccount1?comp=list" \
    || return 1
  # The container the tests put their blobs in; creating one needs a signed request.
  "$venv/bin/python" - "http://127.0.0.1:$port" "$test_bucket" <<'PY' || return 1
import sys
from azure.storage.blob import BlobServiceClient
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
conn = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint={sys.argv[1]}/devstoreaccount1;"
BlobServiceClient.from_connection_string(conn).create_container(sys.argv[2])
PY
  echo "export SLUICE_TEST_AZURE_URL=http://127.0.0.1:$port" >>"$run/env"
}

start_fakesnow() {
  local port; port=$(free_port)
  mkdir -p "$run/fakesnow"
  (cd "$run/fakesnow" && spawn fakesnow "$venv/bin/fakesnow" --server --host 127.0.0.1 -p "$port")
  local login='{"data":{"ACCOUNT_NAME":"test","LOGIN_NAME":"test","PASSWORD":"test","SESSION_PARAMETERS":{}}}'
  wait_for fakesnow 150 sh -c "curl -fsS -X POST -H 'Content-Type: application/json' \
    -d '$login' 'http://127.0.0.1:$port/session/v1/login-request' | grep -q '\"success\": *true'" \
    || return 1
  echo "export SLUICE_TEST_SNOWFLAKE_URL=http://127.0.0.1:$port" >>"$run/env"
  # The emulator takes any password; Sluice reads it from the variable its config names.
  echo "export SLUICE_TEST_SNOWFLAKE_PASSWORD=test" >>"$run/env"
}

# Redis as ../shared/TESTING.md says: loopback, nothing saved. Tests that stop a Redis start
# their own from SLUICE_TEST_REDIS_SERVER; this one is shared by the suite.
start_redis() {
  local port; port=$(free_port)
  spawn redis "$(command -v redis-server)" --port "$port" --bind 127.0.0.1 --save "" \
    --appendonly no
  wait_for redis 100 sh -c "redis-cli -p $port ping | grep -q PONG" || return 1
  echo "export SLUICE_TEST_REDIS_URL=redis://127.0.0.1:$port" >>"$run/env"
  echo "export SLUICE_TEST_REDIS_SERVER=$(command -v redis-server)" >>"$run/env"
}

up() {
  if [ -f "$run/env" ]; then down; fi
  mkdir -p "$run"
  echo "export SLUICE_TEST_BUCKET=$test_bucket" >"$run/env"
  # Two Flight SQL ticket secrets: one a "deployment" shares, one another deployment's.
  echo "export SLUICE_TEST_FLIGHT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '=+/\n')flight" >>"$run/env"
  echo "export SLUICE_TEST_FLIGHT_OTHER_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '=+/\n')other" >>"$run/env"
  local start=$SECONDS failed=()
  install_all || failed+=(install)
  if [ -f "$oidc_dir/provider.mjs" ]; then
    echo "export SLUICE_TEST_OIDC_PROVIDER=$oidc_dir/provider.mjs" >>"$run/env"
  fi
  # The PostgreSQL door's clients, where they were installed.
  [ -d "$pgclients_dir/node_modules/pg" ] \
    && echo "export SLUICE_TEST_NODE_PATH=$pgclients_dir/node_modules" >>"$run/env"
  [ -f /usr/share/java/postgresql.jar ] \
    && echo "export SLUICE_TEST_PG_JDBC=/usr/share/java/postgresql.jar" >>"$run/env"
  [ -d /usr/share/gocode/src/github.com/lib/pq ] && command -v go >/dev/null \
    && echo "export SLUICE_TEST_GOPATH=/usr/share/gocode" >>"$run/env"
  [ -f "$psqlodbc" ] && echo "export SLUICE_TEST_PSQLODBC=$psqlodbc" >>"$run/env"
  # The console's browser test.
  [ -x /usr/bin/chromium ] && echo "export SLUICE_TEST_CHROMIUM=/usr/bin/chromium" >>"$run/env"
  [ -d "$root/ui/node_modules/playwright-core" ] \
    && echo "export SLUICE_TEST_CONSOLE_UI=$root/ui" >>"$run/env"
  # deploy/'s checks: promtool, amtool, and nginx for the multi-replica run.
  [ -x "$ops_dir/usr/bin/promtool" ] && {
    echo "export SLUICE_TEST_PROMTOOL=$ops_dir/usr/bin/promtool"
    echo "export SLUICE_TEST_AMTOOL=$ops_dir/usr/bin/amtool"
    echo "export SLUICE_TEST_NGINX=$ops_dir/usr/sbin/nginx"
  } >>"$run/env"
  for s in postgres postgres_spare moto azurite fakesnow redis; do
    if "start_$s"; then
      say "$s is up (pid $(cat "$run/$s.pid"))"
    else
      say "FAILED to start $s; its log follows"
      tail -n 20 "$run/$s.log" >&2 2>/dev/null || true
      failed+=("$s")
    fi
  done
  say "services ready in $((SECONDS - start)) s; environment in .services/env"
  if [ "${#failed[@]}" -gt 0 ]; then
    say "NOT AVAILABLE: ${failed[*]}: the tests that need them will fail in CI and skip loudly here"
    if ci; then return 1; fi
  fi
}

# --- stop -----------------------------------------------------------------------------------
down() {
  [ -d "$run" ] || return 0
  local pidfile pid name pids=()
  # setsid made each service its own process group: signal every group first, then wait for all.
  for pidfile in "$run"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # SIGINT is PostgreSQL's fast shutdown; the others stop on SIGTERM.
    case "$(basename "$pidfile")" in postgres*) sig=INT ;; *) sig=TERM ;; esac
    kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pidfile in "$run"/*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || true
      say "killed $name (pid $pid): it ignored SIGTERM for 5 s"
    else
      say "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
  done
  local f
  for f in "$run"/*.data "$run"/*.certs; do
    [ -e "$f" ] || continue
    rm -rf "$(cat "$f")"
    rm -f "$f"
  done
  rm -f "$run/env"
}

status() {
  local pidfile pid
  for pidfile in "$run"/*.pid; do
    [ -e "$pidfile" ] || { echo "no services recorded"; return 0; }
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then state=running; else state=gone; fi
    echo "$(basename "$pidfile" .pid): pid $pid $state"
  done
  [ -f "$run/env" ] && cat "$run/env"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  # For tests of a source going away and coming back; only the spare cluster is theirs.
  stop) [ "${2:-}" = postgres_spare ] || { echo "usage: $0 stop postgres_spare" >&2; exit 2; }
        stop_one postgres_spare ;;
  start) [ "${2:-}" = postgres_spare ] || { echo "usage: $0 start postgres_spare" >&2; exit 2; }
         run_postmaster postgres_spare ;;
  *) echo "usage: $0 up|down|status|stop postgres_spare|start postgres_spare" >&2; exit 2 ;;
esac
