#!/usr/bin/env bash
# The SDD proxy against nginx, in one run. Origin: nginx serving 1 KiB and 1 MiB files.
# Measured: direct to the origin; through Civitas in reverse mode; through Civitas in
# forward mode (absolute-form requests, as HTTP_PROXY clients send them); through nginx
# itself as a reverse proxy with an upstream keepalive pool. Then the latency Civitas adds
# at low load, and Civitas' resident memory while a 1 GiB view streams through it.
#
# Pinning: the proxy under test (Civitas or nginx-as-proxy) runs on CPU 0; the origin
# nginx and wrk share CPU 1, so both proxies get the same single core.
#
# usage: bash bench/dataplane.sh [duration_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/civitas/target}"

source bench/common.sh
need wrk wrk
need nginx nginx

cargo build --release -q -p civitas
BIN="$CARGO_TARGET_DIR/release/civitas"
WORK="$(mktemp -d)"
# nginx workers run as an unprivileged user: let them read what they serve.
chmod 755 "$WORK"
ORIGIN=18081
NGPROXY=18082
CIV=18070
cleanup() {
  [ -n "${NODE_PID:-}" ] && kill "$NODE_PID" 2>/dev/null || true
  for p in origin proxy; do [ -f "$WORK/$p.pid" ] && kill "$(cat "$WORK/$p.pid")" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/www"
chmod 755 "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
head -c 1048576 /dev/urandom >"$WORK/www/1m.bin"
truncate -s 1G "$WORK/www/1g.bin"

cat >"$WORK/origin.conf" <<NGINX
worker_processes 1;
pid $WORK/origin.pid;
error_log $WORK/origin-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$ORIGIN; root $WORK/www; }
}
NGINX
cat >"$WORK/proxy.conf" <<NGINX
worker_processes 1;
pid $WORK/proxy.pid;
error_log $WORK/proxy-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 256; }
  server {
    listen 127.0.0.1:$NGPROXY;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
taskset -c 1 nginx -c "$WORK/origin.conf"
taskset -c 0 nginx -c "$WORK/proxy.conf"

RUST_LOG=warn taskset -c 0 "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$CIV" 2>"$WORK/node.log" &
NODE_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$CIV/readyz" >/dev/null && break; sleep 0.1; done
cat >"$WORK/bench.json" <<JSON
[
 {"@type": "Site", "name": "urn:site:bench", "version": "1", "tier": "fog", "region": "bench"},
 {"@type": "DataUnit", "name": "urn:bench:files", "version": "1", "metainformation": {"type": "rest"},
  "views": [{"name": "small", "link": "/1k.bin"}, {"name": "big", "link": "/1m.bin"}, {"name": "huge", "link": "/1g.bin"}]},
 {"@type": "DataInstance", "name": "urn:bench:files-origin", "version": "1", "dataUnit": "urn:bench:files",
  "site": "urn:site:bench", "endpoint": "http://127.0.0.1:$ORIGIN"}
]
JSON
"$BIN" --server "http://127.0.0.1:$CIV" apply -f "$WORK/bench.json" >/dev/null
# The route table follows the catalog; wait until the view answers.
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$CIV/data/urn:bench:files/small" && break; sleep 0.05; done

cat >"$WORK/forward-1k.lua" <<LUA
wrk.headers["Host"] = "127.0.0.1:$ORIGIN"
request = function() return wrk.format("GET", "http://127.0.0.1:$ORIGIN/1k.bin") end
LUA
cat >"$WORK/forward-1m.lua" <<LUA
wrk.headers["Host"] = "127.0.0.1:$ORIGIN"
request = function() return wrk.format("GET", "http://127.0.0.1:$ORIGIN/1m.bin") end
LUA

summary() { # one table row's cells from wrk's output
  local out rps p50 p99 bad err
  out=$(cat)
  read -r rps p50 p99 bad < <(wrk_fields <<<"$out")
  err=$(grep -m1 'Socket errors' <<<"$out" || true)
  printf "%s | %s | %s" "$rps" "$p50" "$p99"
  [ "$bad" != 0 ] && printf " (non-2xx: %s)" "$bad"
  [ -n "$err" ] && printf " (%s)" "$err"
  return 0
}
load() { # name conns url [script]
  local script=()
  [ -n "${4:-}" ] && script=(-s "$4")
  printf "| %s | %s | " "$1" "$2"
  taskset -c 1 wrk -t1 -c"$2" -d"${DURATION}s" --latency "${script[@]}" "$3" | summary
  printf " |\n"
}

echo "### SDD proxy vs nginx — $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r)"
echo
echo "Command: \`bash bench/dataplane.sh $DURATION\`. Proxy under test pinned to CPU 0; origin nginx and wrk on CPU 1."
echo
echo "| path | connections | req/s | p50 | p99 |"
echo "|---|---|---|---|---|"
for size in 1k 1m; do
  conns=64; [ "$size" = 1m ] && conns=16
  view=small; [ "$size" = 1m ] && view=big
  load "$size direct to origin nginx" $conns "http://127.0.0.1:$ORIGIN/$size.bin"
  load "$size via nginx as reverse proxy (keepalive pool)" $conns "http://127.0.0.1:$NGPROXY/$size.bin"
  load "$size via Civitas, reverse mode" $conns "http://127.0.0.1:$CIV/data/urn:bench:files/$view"
  load "$size via Civitas, forward mode" $conns "http://127.0.0.1:$CIV" "$WORK/forward-$size.lua"
done
echo
echo "Added latency at low load (1 connection, 1 KiB):"
echo
echo "| path | connections | req/s | p50 | p99 |"
echo "|---|---|---|---|---|"
load "1k direct" 1 "http://127.0.0.1:$ORIGIN/1k.bin"
load "1k via nginx proxy" 1 "http://127.0.0.1:$NGPROXY/1k.bin"
load "1k via Civitas reverse" 1 "http://127.0.0.1:$CIV/data/urn:bench:files/small"

rss() { awk '/VmRSS/ {print $2}' "/proc/$NODE_PID/status"; }
BEFORE=$(rss)
MAX=$BEFORE
curl -s -o /dev/null "http://127.0.0.1:$CIV/data/urn:bench:files/huge" &
CURL=$!
while kill -0 $CURL 2>/dev/null; do r=$(rss); [ "$r" -gt "$MAX" ] && MAX=$r; sleep 0.1; done
AFTER=$(rss)
echo
echo "Resident memory of the Civitas node while 1 GiB streams through reverse mode: before ${BEFORE} KiB, peak ${MAX} KiB, after ${AFTER} KiB."
