#!/bin/sh
# Checks every case of routes.test against alertmanager.example.yml with amtool:
#   deploy/alertmanager/check-routes.sh [CONFIG [CASES]]
# AMTOOL names the amtool binary (default: amtool on PATH). Exit 1 if any case routes elsewhere.
set -u
here=$(dirname "$0")
config=${1:-$here/alertmanager.example.yml}
cases=${2:-$here/routes.test}
amtool=${AMTOOL:-amtool}
failed=0
total=0
while read -r expected labels; do
  case $expected in ''|'#'*) continue ;; esac
  total=$((total + 1))
  # shellcheck disable=SC2086 # the labels are separate arguments
  got=$("$amtool" config routes test --config.file="$config" $labels 2>/dev/null)
  if [ "$got" = "$expected" ]; then
    echo "ok    $expected  $labels"
  else
    echo "FAIL  expected $expected, got ${got:-nothing}  $labels"
    failed=$((failed + 1))
  fi
done < "$cases"
echo "$((total - failed)) of $total cases route as expected"
[ "$failed" -eq 0 ]
