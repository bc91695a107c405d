#!/usr/bin/env bash
# What authentication costs the data plane: the same 1 KiB view through two Civitas nodes
# in one run, one without security and one with `[security] enabled` (a local bearer token
# on every request, the view readable by authenticated callers; decisions cached as by
# default). Rounds alternate between the two nodes so that machine noise hits both alike.
#
# Pinning: the node under test on CPU 0; the origin nginx and wrk on CPU 1.
#
# usage: bash bench/dataplane-auth.sh [duration_seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-5}"
ROUNDS="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/civitas/target}"

source bench/common.sh
need wrk wrk
need nginx nginx

cargo build --release -q -p civitas
BIN="$CARGO_TARGET_DIR/release/civitas"
WORK="$(mktemp -d)"
chmod 755 "$WORK"
ORIGIN=18181
OPEN=18170
SECURE=18171
cleanup() {
  for p in "${OPEN_PID:-}" "${SECURE_PID:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/origin.pid" ] && kill "$(cat "$WORK/origin.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www"
chmod 755 "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
cat >"$WORK/origin.conf" <<NGINX
worker_processes 1;
pid $WORK/origin.pid;
error_log $WORK/origin-error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; server { listen 127.0.0.1:$ORIGIN; root $WORK/www; } }
NGINX
taskset -c 1 nginx -c "$WORK/origin.conf"

printf '[security]\nenabled = true\n' >"$WORK/secure.toml"
RUST_LOG=warn taskset -c 0 "$BIN" serve --data-dir "$WORK/open" --listen "127.0.0.1:$OPEN" 2>"$WORK/open.log" &
OPEN_PID=$!
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/secure.toml" --data-dir "$WORK/secure" \
  --listen "127.0.0.1:$SECURE" 2>"$WORK/secure.log" &
SECURE_PID=$!
for port in $OPEN $SECURE; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done
cat >"$WORK/bench.json" <<JSON
[
 {"@type": "Site", "name": "urn:site:bench", "version": "1", "tier": "fog", "region": "bench"},
 {"@type": "DataUnit", "name": "urn:bench:files", "version": "1", "metainformation": {"type": "rest"},
  "views": [{"name": "small", "link": "/1k.bin"}]},
 {"@type": "DataInstance", "name": "urn:bench:files-origin", "version": "1", "dataUnit": "urn:bench:files",
  "site": "urn:site:bench", "endpoint": "http://127.0.0.1:$ORIGIN"}
]
JSON
ADMIN="$(cat "$WORK/secure/security/admin.token")"
"$BIN" --server "http://127.0.0.1:$OPEN" apply -f "$WORK/bench.json" >/dev/null
"$BIN" --server "http://127.0.0.1:$SECURE" --token "$ADMIN" apply -f "$WORK/bench.json" >/dev/null
TOKEN="$("$BIN" --server "http://127.0.0.1:$SECURE" --token "$ADMIN" token create --subject bench --roles reader)"
for port in $OPEN $SECURE; do
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/data/urn:bench:files/small" && break
    sleep 0.05
  done
done
# Refused without the token: the secure node really checks.
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SECURE/data/urn:bench:files/small")
[ "$code" = 401 ] || { echo "the secured node answered $code without a token" >&2; exit 1; }

cat >"$WORK/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
run() { # port -> "rps p50 p99 non2xx"
  taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" --latency -s "$WORK/auth.lua" "http://127.0.0.1:$1/data/urn:bench:files/small" | wrk_fields
}

echo "### Data plane with and without authentication — $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r)"
echo
echo "Command: \`bash bench/dataplane-auth.sh $DURATION $ROUNDS\`. 1 KiB view, 64 connections; node on CPU 0, nginx origin and wrk on CPU 1; rounds alternate."
echo
echo "| round | no security req/s | p99 | security on req/s | p99 | ratio |"
echo "|---|---|---|---|---|---|"
total_open=0; total_secure=0
for r in $(seq 1 "$ROUNDS"); do
  read -r o_rps _ o_p99 o_bad < <(run $OPEN)
  read -r s_rps _ s_p99 s_bad < <(run $SECURE)
  [ "$o_bad" = 0 ] && [ "$s_bad" = 0 ] || { echo "non-2xx answers: $o_bad / $s_bad" >&2; exit 1; }
  ratio=$(awk -v a="$s_rps" -v b="$o_rps" 'BEGIN { printf "%.3f", a / b }')
  echo "| $r | $o_rps | $o_p99 | $s_rps | $s_p99 | $ratio |"
  total_open=$(awk -v t="$total_open" -v x="$o_rps" 'BEGIN { print t + x }')
  total_secure=$(awk -v t="$total_secure" -v x="$s_rps" 'BEGIN { print t + x }')
done
echo
awk -v s="$total_secure" -v o="$total_open" 'BEGIN { printf "Overall: security on / off = %.3f (goal: >= 0.90)\n", s / o }'
