#!/bin/bash
# The image's HEALTHCHECK: GET /health on Sluice's HTTP listener; healthy on a 200.
#
# debian:bookworm-slim has neither curl nor wget, and the sluice CLI has no command that GETs a
# URL without a key, so this speaks HTTP/1.1 itself over bash's /dev/tcp. That cannot do TLS:
# with [server.tls] (SLUICE_HEALTH_URL=https://...) it only checks that the listener accepts
# a connection. Kubernetes does not use this (its probes are in the Deployment).
#
#   SLUICE_HEALTH_URL   default http://127.0.0.1:8080/health
set -u
url=${SLUICE_HEALTH_URL:-http://127.0.0.1:8080/health}
scheme=${url%%://*}
rest=${url#*://}
hostport=${rest%%/*}
path=/${rest#*/}
[ "$rest" = "$hostport" ] && path=/health
host=${hostport%:*}
port=${hostport##*:}
if [ "$host" = "$hostport" ]; then
  [ "$scheme" = https ] && port=443 || port=80
fi

exec 3<>"/dev/tcp/$host/$port" || { echo "unhealthy: nothing listens on $host:$port" >&2; exit 1; }
if [ "$scheme" = https ]; then
  exec 3>&-
  exit 0
fi
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
status=
IFS= read -r -t 2 status <&3
exec 3>&-
case $status in
  "HTTP/1.1 200 "*|"HTTP/1.0 200 "*) exit 0 ;;
  *) echo "unhealthy: GET $url answered ${status:-nothing}" >&2; exit 1 ;;
esac
