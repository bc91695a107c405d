#!/usr/bin/env bash
# Catalog through the HTTP API: single-document apply, GET of one unit, and an atomic
# 1,000-document directory apply. Peers measured in the same run: nginx serving the same
# unit bytes as a static file (GET), and the disk's own synchronous-write rate (apply,
# which must be durable). Prints a Markdown block for docs/BENCHMARKS.md.
#
# usage: bash bench/catalog.sh [duration_seconds]
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
PORT=17070
NGINX_PORT=17071
cleanup() {
  [ -n "${NODE_PID:-}" ] && kill "$NODE_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" 2>"$WORK/node.log" &
NODE_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"
"$BIN" --server "$URL" apply -f examples/urbem >/dev/null

# --- peer: nginx serving the unit's bytes ---
mkdir -p "$WORK/www"
chmod 755 "$WORK/www"
curl -sf "$URL/api/v1/units/urn:urbem:buildings" >"$WORK/www/unit.json"
cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; }
}
NGINX
nginx -c "$WORK/nginx.conf"

wrk_summary() { # prints "req/s p50 p99"; fails when any answer was not 2xx/3xx
  local rps p50 p99 bad
  read -r rps p50 p99 bad < <(wrk_fields)
  if [ "$bad" != 0 ]; then echo "non-2xx answers: $bad" >&2; return 1; fi
  echo "$rps $p50 $p99"
}

echo "## GET one unit ($DURATION s, wrk -t2 -c64)" >&2
CIV_GET=$(wrk -t2 -c64 -d"${DURATION}s" --latency "$URL/api/v1/units/urn:urbem:buildings" | wrk_summary)
NGX_GET=$(wrk -t2 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$NGINX_PORT/unit.json" | wrk_summary)

echo "## single-document apply ($DURATION s, wrk -t2 -c64, unique unit per request)" >&2
cat >"$WORK/apply.lua" <<'LUA'
local counter = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"@type":"DataUnit","name":"urn:bench:t%d-%d","version":"1","metainformation":{"type":"rest"},"views":[{"name":"v","link":"/v","size":1000}]}',
    tid, counter)
  return wrk.format("POST", "/api/v1/units", {["Content-Type"] = "application/json"}, body)
end
LUA
CIV_APPLY=$(wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/apply.lua" "$URL" | wrk_summary)

# Peer for durable writes: 4 KiB synchronous writes (O_DSYNC) on the same disk, one at a time.
SYNC_N=500
SYNC_START=$(date +%s.%N)
dd if=/dev/zero of="$WORK/data/dsync.test" bs=4k count=$SYNC_N oflag=dsync status=none
SYNC_END=$(date +%s.%N)
SYNC_RATE=$(python3 -c "print(round($SYNC_N/($SYNC_END-$SYNC_START)))")
rm -f "$WORK/data/dsync.test"

echo "## atomic directory apply, 1,000 documents (5 runs)" >&2
DIR_TIMES=()
for run in 1 2 3 4 5; do
  D="$WORK/dir$run"
  mkdir -p "$D"
  python3 - "$D" "$run" <<'PY'
import json, sys
d, run = sys.argv[1], sys.argv[2]
json.dump({"@type": "Site", "name": f"urn:site:bench{run}", "version": "1", "tier": "fog", "region": "bench"},
          open(f"{d}/000-site.json", "w"))
for i in range(499):
    json.dump({"@type": "DataUnit", "name": f"urn:dir{run}:unit{i}", "version": "1",
               "metainformation": {"type": "rest"},
               "views": [{"name": "all", "link": "/all", "size": 1000,
                          "updateFrequency": {"period": "daily", "times": 1}}]},
              open(f"{d}/u{i:04}.json", "w"))
    json.dump({"@type": "DataInstance", "name": f"urn:dir{run}:inst{i}", "version": "1",
               "dataUnit": f"urn:dir{run}:unit{i}", "site": f"urn:site:bench{run}",
               "endpoint": "http://127.0.0.1:9"}, open(f"{d}/i{i:04}.json", "w"))
PY
  # 1 site + 499 units + 499 instances = 999 files; add one link-free unit to make 1,000
  python3 -c "import json,sys; json.dump({'@type':'DataUnit','name':'urn:dir$run:extra','version':'1','metainformation':{'type':'rest'},'views':[]}, open('$D/zzz.json','w'))"
  S=$(date +%s.%N)
  "$BIN" --server "$URL" apply -f "$D" >/dev/null
  E=$(date +%s.%N)
  DIR_TIMES+=("$(python3 -c "print(f'{$E-$S:.3f}')")")
done

read -r CG_RPS CG_P50 CG_P99 <<<"$CIV_GET"
read -r NG_RPS NG_P50 NG_P99 <<<"$NGX_GET"
read -r CA_RPS CA_P50 CA_P99 <<<"$CIV_APPLY"
RATIO_GET=$(python3 -c "print(f'{$CG_RPS/$NG_RPS:.2f}')")
RATIO_APPLY=$(python3 -c "print(f'{$CA_RPS/$SYNC_RATE:.1f}')")

cat <<MD
### Catalog over HTTP — $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)

Command: \`bash bench/catalog.sh $DURATION\` (release build, wrk -t2 -c64, node and load generator on the same machine).

| measurement | Civitas | peer (same run) | ratio |
|---|---|---|---|
| GET one unit, req/s | $CG_RPS (p50 $CG_P50, p99 $CG_P99) | nginx static file of the same bytes: $NG_RPS (p50 $NG_P50, p99 $NG_P99) | $RATIO_GET × nginx |
| single-document apply (durable), req/s | $CA_RPS (p50 $CA_P50, p99 $CA_P99) | one-at-a-time O_DSYNC 4 KiB writes on the same disk: $SYNC_RATE/s | $RATIO_APPLY × the disk's sync rate (group commit) |
| 1,000-document directory, one atomic apply via the CLI, s | ${DIR_TIMES[*]} | — | — |
MD
