#!/usr/bin/env bash
# Several Sluice servers on this machine behind nginx, as a deployment runs them: one shared
# PostgreSQL metadata store (keys, audit, usage, policies), one optional shared Redis result
# cache, the TPC-H test data as source `local`, each server on its own loopback ports.
#
#   deploy/local/cluster.sh up        start 3 servers and nginx; write $SLUICE_CLUSTER_DIR/env
#   deploy/local/cluster.sh status    each process, and what /ready answers through it
#   deploy/local/cluster.sh stop N    drain and stop server N (SIGTERM), the others keep serving
#   deploy/local/cluster.sh start N   start server N again on its ports
#   deploy/local/cluster.sh down      stop everything by its recorded PID
#
# Environment:
#   SLUICE_METADATA_URL    required: postgres://... a database the servers may create tables in
#   SLUICE_REDIS_URL       optional: redis://host:port, a result cache the servers share
#   SLUICE_BIN             the sluice binary (default target/release/sluice)
#   NGINX                  the nginx binary (default `nginx` on PATH; 1.19.5 or newer)
#   SLUICE_CLUSTER_DIR     run folder: configs, logs, PIDs, nginx.conf, env (default .cluster/)
#   SLUICE_CLUSTER_DATA    the Parquet folder served as source `local` (default testdata/tpch)
#   SLUICE_CLUSTER_SIZE    servers (default 3)
#   SLUICE_CLUSTER_PORT    nginx's port (default: a free one)
#   SLUICE_CLUSTER_READY_TRIES  /ready polls, 0.2 s apart, per server (default 300: a minute)
#
# After `up`, `. .cluster/env` gives CLUSTER_URL (nginx), SLUICE_URL_1..N, SLUICE_FLIGHT_1..N,
# SLUICE_PG_1..N, SLUICE_PID_1..N, NGINX_PID, SLUICE_ADMIN_KEY (+ _ID), and SLUICE_URL /
# SLUICE_API_KEY for the sluice CLI. The admin key is minted on the store by `sluice keys
# --config` before any server starts, and revoked by `down`.
#
# Needs bash, curl and python3 (free ports, JSON). Every process is started in its own session
# (setsid, where there is one), its PID recorded in the run folder, and stopped only by that PID. docs/operations-deploy.md explains
# the nginx settings (retries, streaming) and what a client sees when a server goes away.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# abs PATH: PATH made absolute against the caller's folder.
abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }
# tool NAME-OR-PATH: a path as given (made absolute), a bare name looked up on PATH.
tool() {
  case $1 in
    */*) abs "$1" ;;
    *) command -v "$1" 2>/dev/null || printf '%s\n' "$1" ;;
  esac
}

bin=$(tool "${SLUICE_BIN:-$root/target/release/sluice}")
nginx=$(tool "${NGINX:-nginx}")
dir=$(abs "${SLUICE_CLUSTER_DIR:-$root/.cluster}")
data=$(abs "${SLUICE_CLUSTER_DATA:-$root/testdata/tpch}")
size=${SLUICE_CLUSTER_SIZE:-3}
ready_tries=${SLUICE_CLUSTER_READY_TRIES:-300}
# Short enough that `down` is quick, long enough for a query to finish.
drain_ms=10000
# Revocations made through one server are refused by the others within this.
key_sync_ms=1000

# --- small helpers ----------------------------------------------------------------------------

# A TOML basic string: `\` and `"` escaped, and `${` written `$${` so Sluice's own `${VAR}`
# expansion leaves the value as it is.
toml_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//\$\{/\$\$\{}
  printf '"%s"' "$s"
}

# free_ports N: N distinct free loopback ports (all bound at once, then released).
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# ours PID WORD: PID runs a command line containing WORD (a recorded PID the OS gave to another
# process since is never signalled).
ours() { alive "$1" && ps -o args= -p "$1" 2>/dev/null | grep -qF -- "$2"; }

# spawn PIDFILE LOG CMD...: CMD in its own session, detached; its PID in PIDFILE (written by the
# process itself before exec, so it is CMD's PID however setsid behaves).
spawn() {
  local pidfile=$1 log=$2; shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # expanded by the inner bash
  if command -v setsid >/dev/null; then
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' cluster.sh "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
  else
    # macOS has no setsid: a background process of this script, which exits without HUPing it.
    bash -c 'echo $$ >"$1"; shift; exec "$@"' cluster.sh "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
  fi
  local _
  for _ in $(seq 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
  die "could not start $1 (see $log)"
}

# http_code URL: the status of GET URL, 000 when nothing answers.
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }

# wait_ready NAME URL PID LOG: poll URL/ready every 0.2 s until 200; fail with LOG's tail when
# the process exits or the tries run out.
wait_ready() {
  local name=$1 url=$2 pid=$3 log=$4 code=000 _
  for _ in $(seq "$ready_tries"); do
    code=$(http_code "$url/ready")
    [ "$code" = 200 ] && return 0
    if ! alive "$pid"; then
      say "$name (pid $pid) exited before it was ready; the end of $log:"
      tail -n 30 "$log" >&2 || true
      return 1
    fi
    sleep 0.2
  done
  say "$name (pid $pid) not ready after $ready_tries tries (last GET $url/ready: $code); the end of $log:"
  tail -n 30 "$log" >&2 || true
  return 1
}

load_state() {
  [ -f "$dir/state" ] || die "no cluster recorded in $dir (run: $0 up)"
  # shellcheck disable=SC1091
  . "$dir/state"
}

pid_of() { cat "$dir/$1.pid" 2>/dev/null || true; }

# --- configs ----------------------------------------------------------------------------------

write_config() {
  local i=$1 http=$2 flight=$3 pg=$4
  (
    umask 077
    cat >"$dir/sluice-$i.toml" <<EOF
# Server $i of $size, written by deploy/local/cluster.sh.
[server]
listen = "127.0.0.1:$http"
drain_timeout_ms = $drain_ms
default_catalog = "local"
default_schema = "public"

[auth]
key_sync_ms = $key_sync_ms

[metadata]
postgres_url = $(toml_str "$SLUICE_METADATA_URL")

[cache]
redis_url = $(toml_str "${SLUICE_REDIS_URL:-}")

# Each server its own loopback ports (plain PostgreSQL protocol is allowed on loopback only);
# one ticket secret, so a Flight ticket one server issues is good on the others.
[flight]
listen = "127.0.0.1:$flight"
ticket_secret_env = "SLUICE_CLUSTER_FLIGHT_SECRET"

[pg]
listen = "127.0.0.1:$pg"

[[sources]]
name = "local"
kind = "parquet"
location = $(toml_str "$data")
EOF
  )
}

write_nginx_conf() {
  local servers="" i port
  for i in $(seq "$size"); do
    port=$(eval echo "\$http_$i")
    # max_fails=0: a server's own 503 (a source down everywhere) must not take every server out
    # of rotation ("no live upstreams"); a dead server costs one refused loopback connect.
    servers+="        server 127.0.0.1:$port max_fails=0;"$'\n'
  done
  mkdir -p "$dir/nginx/tmp"
  cat >"$dir/nginx/nginx.conf" <<EOF
# Written by deploy/local/cluster.sh; docs/operations-deploy.md explains each setting.
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 1024; }

http {
    types { application/json json; text/html html; }
    default_type application/octet-stream;
    server_tokens off;
    client_body_temp_path $dir/nginx/tmp/body;
    proxy_temp_path $dir/nginx/tmp/proxy;
    fastcgi_temp_path $dir/nginx/tmp/fastcgi;
    uwsgi_temp_path $dir/nginx/tmp/uwsgi;
    scgi_temp_path $dir/nginx/tmp/scgi;
    # Which servers a request went to and what each answered: "A, B" / "503, 200" is a retry.
    log_format upstreams '\$remote_addr "\$request" \$status \$body_bytes_sent \$request_time '
                         'upstream=\$upstream_addr upstream_status=\$upstream_status';
    access_log $dir/nginx-access.log upstreams;

    # Round robin over the servers.
    upstream sluice {
$servers        keepalive 32;
        # Below actix's 5 s keep-alive: nginx never reuses a connection the server is closing.
        keepalive_timeout 4s;
    }
    # /mcp: the same servers, by credential. A handshake-era MCP session lives on the server
    # that opened it and belongs to its key, so a key's MCP requests go to one server.
    upstream sluice_by_key {
        hash \$http_authorization\$http_x_api_key consistent;
$servers        keepalive 32;
        keepalive_timeout 4s;
    }

    server {
        listen 127.0.0.1:$cluster_port;
        # Bodies are buffered whole before a server sees them, so a retry can send them again;
        # above limits.max_request_bytes (1 MiB) Sluice answers its own 413.
        client_max_body_size 4m;
        client_body_buffer_size 1m;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        # Host as the client sent it: /mcp's Host check, and links Sluice writes (MCP results).
        proxy_set_header Host \$http_host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        # Passed as they came (nginx passes every request header; named to say so).
        proxy_set_header Authorization \$http_authorization;
        proxy_set_header X-API-Key \$http_x_api_key;
        proxy_set_header traceparent \$http_traceparent;
        proxy_set_header tracestate \$http_tracestate;
        # Results stream through as the server produces them.
        proxy_buffering off;
        proxy_connect_timeout 2s;
        # Longer than limits.query_timeout_ms (30 s): Sluice answers 504 itself first.
        proxy_read_timeout 300s;
        proxy_send_timeout 300s;
        send_timeout 300s;
        add_header X-Sluice-Upstream \$upstream_addr always;

        # A request that failed before any byte of its answer reached the client is sent to the
        # next server: no connection, a reset or timeout before the response head, or a 503
        # (draining, memory, audit store). Queries are read-only, so resending a POST is safe.
        # Once the response head is sent nothing is retried: a cut stream stays cut.
        location / {
            proxy_pass http://sluice;
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_next_upstream_tries 3;
        }
        # A query's record (state, cancel, result) is on the server that ran it: ask each
        # server in turn until one knows the id.
        location /v1/queries/ {
            proxy_pass http://sluice;
            proxy_next_upstream error timeout http_404;
            proxy_next_upstream_tries $size;
        }
        location /mcp {
            proxy_pass http://sluice_by_key;
            proxy_next_upstream error timeout http_503 non_idempotent;
            proxy_next_upstream_tries 3;
        }
    }
}
EOF
}

write_env() {
  local i tmp=$dir/env.tmp
  (
    umask 077
    {
      echo "# Written by deploy/local/cluster.sh up; removed by down."
      echo "export SLUICE_CLUSTER_DIR=$dir"
      echo "export CLUSTER_URL=http://127.0.0.1:$cluster_port"
      echo "export NGINX_PID=$(pid_of nginx)"
      for i in $(seq "$size"); do
        echo "export SLUICE_URL_$i=http://127.0.0.1:$(eval echo "\$http_$i")"
        echo "export SLUICE_FLIGHT_$i=grpc://127.0.0.1:$(eval echo "\$flight_$i")"
        echo "export SLUICE_PG_$i=postgresql://127.0.0.1:$(eval echo "\$pg_$i")"
        echo "export SLUICE_PID_$i=$(pid_of "sluice-$i")"
      done
      echo "export SLUICE_ADMIN_KEY=$admin_key"
      echo "export SLUICE_ADMIN_KEY_ID=$admin_key_id"
      echo "# For the sluice CLI: through nginx, as the admin."
      echo "export SLUICE_URL=http://127.0.0.1:$cluster_port"
      echo "export SLUICE_API_KEY=$admin_key"
    } >"$tmp"
  )
  mv "$tmp" "$dir/env"
}

# --- servers and nginx ------------------------------------------------------------------------

start_server() {
  local i=$1 url
  url=http://127.0.0.1:$(eval echo "\$http_$i")
  SLUICE_CLUSTER_FLIGHT_SECRET=$(cat "$dir/flight-secret") \
    spawn "$dir/sluice-$i.pid" "$dir/sluice-$i.log" "$bin" serve --config "$dir/sluice-$i.toml"
  say "sluice-$i: pid $(pid_of "sluice-$i"), $url"
}

stop_server() {
  local i=$1 pid _
  pid=$(pid_of "sluice-$i")
  if ours "$pid" "sluice-$i.toml"; then
    kill -TERM "$pid"
  fi
}

# wait_gone SECONDS PID...: wait for the PIDs to exit; SIGKILL what is left.
wait_gone() {
  local secs=$1 pid _ left; shift
  for _ in $(seq $((secs * 10))); do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    [ "$left" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "$@"; do
    if alive "$pid"; then
      say "pid $pid still running after ${secs}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

up() {
  [ -x "$bin" ] || die "no sluice binary at $bin (cargo build --release, or set SLUICE_BIN)"
  [ -x "$nginx" ] || die "no nginx at $nginx (install it, or set NGINX to its binary)"
  [ -n "${SLUICE_METADATA_URL:-}" ] \
    || die "SLUICE_METADATA_URL is required: postgres://user@host:port/db, a database the servers share"
  case $SLUICE_METADATA_URL in postgres://*|postgresql://*) ;; *) die "SLUICE_METADATA_URL must be a postgres:// URL" ;; esac
  case ${SLUICE_REDIS_URL:-redis://} in redis://*) ;; *) die "SLUICE_REDIS_URL must be a redis:// URL" ;; esac
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  [ -d "$data" ] || die "no data folder $data"
  case $size in [1-9]) ;; *) die "SLUICE_CLUSTER_SIZE must be 1 to 9" ;; esac
  if [ -f "$dir/state" ]; then
    local f
    for f in "$dir"/*.pid; do
      [ -e "$f" ] || continue
      alive "$(cat "$f")" && die "a cluster is already up in $dir ($(basename "$f" .pid) runs): $0 down first"
    done
  fi
  mkdir -p "$dir"
  rm -f "$dir"/*.pid "$dir/env"

  # Ports: 3 per server, and nginx's.
  local ports i
  read -r -a ports <<<"$(free_ports $((size * 3 + 1)))"
  cluster_port=${SLUICE_CLUSTER_PORT:-${ports[$((size * 3))]}}
  {
    echo "size=$size"
    echo "cluster_port=$cluster_port"
    for i in $(seq "$size"); do
      echo "http_$i=${ports[$(((i - 1) * 3))]}"
      echo "flight_$i=${ports[$(((i - 1) * 3 + 1))]}"
      echo "pg_$i=${ports[$(((i - 1) * 3 + 2))]}"
    done
  } >"$dir/state"
  # shellcheck disable=SC1091
  . "$dir/state"
  (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n=+/' >"$dir/flight-secret")

  for i in $(seq "$size"); do
    write_config "$i" "$(eval echo "\$http_$i")" "$(eval echo "\$flight_$i")" "$(eval echo "\$pg_$i")"
    "$bin" check --config "$dir/sluice-$i.toml" >/dev/null \
      || die "sluice check refused $dir/sluice-$i.toml (above)"
  done

  # The first admin key, on the store itself, before any server runs: deterministic whether
  # the store is new (a server would mint one per empty store, and several starting at once
  # could each mint one) or already holds keys (no server mints any then).
  local created
  created=$("$bin" keys --config "$dir/sluice-1.toml" create --name local-cluster-admin --role admin) \
    || die "could not create an admin key on the metadata store (SLUICE_METADATA_URL; the error is above)"
  read -r admin_key admin_key_id < <(python3 -c '
import json, sys
k = json.load(sys.stdin)
print(k["key"], k["id"])' <<<"$created") || die "unexpected answer from sluice keys create: $created"
  (umask 077 && echo "$admin_key_id" >"$dir/admin-key-id")

  for i in $(seq "$size"); do
    : >"$dir/sluice-$i.log"
    start_server "$i"
  done
  for i in $(seq "$size"); do
    wait_ready "sluice-$i" "http://127.0.0.1:$(eval echo "\$http_$i")" "$(pid_of "sluice-$i")" \
      "$dir/sluice-$i.log" || { down; exit 1; }
  done

  write_nginx_conf
  # nginx reads a variable named NGINX itself (sockets inherited on a binary upgrade): not ours.
  env -u NGINX "$nginx" -t -q -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx-error.log" \
    || { say "nginx refused $dir/nginx/nginx.conf"; down; exit 1; }
  : >"$dir/nginx.log"
  spawn "$dir/nginx.pid" "$dir/nginx.log" env -u NGINX "$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" \
    -e "$dir/nginx-error.log"
  wait_ready nginx "http://127.0.0.1:$cluster_port" "$(pid_of nginx)" "$dir/nginx-error.log" \
    || { down; exit 1; }
  write_env
  say "up: $size servers behind nginx at http://127.0.0.1:$cluster_port (. $dir/env)"
}

down() {
  if [ ! -f "$dir/state" ]; then
    say "no cluster recorded in $dir"
    return 0
  fi
  # shellcheck disable=SC1091
  . "$dir/state"
  local i pid pids=()
  for i in $(seq "$size"); do
    pid=$(pid_of "sluice-$i")
    if ours "$pid" "sluice-$i.toml"; then
      kill -TERM "$pid"
      pids+=("$pid")
    fi
  done
  # Each drains: /ready 503, running queries finish (drain_timeout_ms), then it exits.
  [ "${#pids[@]}" -gt 0 ] && wait_gone $((drain_ms / 1000 + 20)) "${pids[@]}"
  pid=$(pid_of nginx)
  if ours "$pid" "$dir/nginx/nginx.conf"; then
    kill -QUIT "$pid"     # graceful: open requests finish
    wait_gone 5 "$pid"
  fi
  # The admin key `up` minted is of no use once the cluster is gone.
  if [ -s "$dir/admin-key-id" ] && [ -x "$bin" ] && [ -f "$dir/sluice-1.toml" ]; then
    if "$bin" keys --config "$dir/sluice-1.toml" revoke "$(cat "$dir/admin-key-id")" >/dev/null 2>&1; then
      rm -f "$dir/admin-key-id"
    else
      say "could not revoke admin key $(cat "$dir/admin-key-id") (the store is unreachable?)"
    fi
  fi
  rm -f "$dir"/*.pid "$dir/env" "$dir/state"
  say "down (logs and configs stay in $dir)"
}

status() {
  load_state
  local i pid code all=0
  for i in $(seq "$size"); do
    pid=$(pid_of "sluice-$i")
    if ours "$pid" "sluice-$i.toml"; then
      code=$(http_code "http://127.0.0.1:$(eval echo "\$http_$i")/ready")
      echo "sluice-$i: pid $pid, http://127.0.0.1:$(eval echo "\$http_$i"), /ready $code"
      [ "$code" = 200 ] || all=1
    else
      echo "sluice-$i: not running"
      all=1
    fi
  done
  pid=$(pid_of nginx)
  if ours "$pid" "$dir/nginx/nginx.conf"; then
    echo "nginx: pid $pid, http://127.0.0.1:$cluster_port, /ready $(http_code "http://127.0.0.1:$cluster_port/ready")"
  else
    echo "nginx: not running"
    all=1
  fi
  return "$all"
}

one() {
  local what=$1 i=${2:-}
  load_state
  case $i in [1-9]) [ "$i" -le "$size" ] || die "no server $i" ;; *) die "usage: $0 $what N" ;; esac
  admin_key=$(sed -n 's/^export SLUICE_ADMIN_KEY=//p' "$dir/env" 2>/dev/null)
  admin_key_id=$(cat "$dir/admin-key-id" 2>/dev/null || true)
  local pid
  pid=$(pid_of "sluice-$i")
  if [ "$what" = stop ]; then
    ours "$pid" "sluice-$i.toml" || die "sluice-$i is not running"
    kill -TERM "$pid"
    wait_gone $((drain_ms / 1000 + 20)) "$pid"
    rm -f "$dir/sluice-$i.pid"
    say "sluice-$i stopped"
  else
    ours "$pid" "sluice-$i.toml" && die "sluice-$i already runs (pid $pid)"
    [ -x "$bin" ] || die "no sluice binary at $bin (set SLUICE_BIN as for up)"
    start_server "$i"
    wait_ready "sluice-$i" "http://127.0.0.1:$(eval echo "\$http_$i")" "$(pid_of "sluice-$i")" \
      "$dir/sluice-$i.log" || exit 1
  fi
  write_env
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  stop|start) one "$1" "${2:-}" ;;
  *) echo "usage: $0 up|down|status|stop N|start N" >&2; exit 2 ;;
esac
