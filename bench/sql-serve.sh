#!/usr/bin/env bash
# Serving a SQL view (issue 8) against PostgreSQL itself, in one run. A 158,000-row
# `bench_sql.buildings` table (about 200 bytes a row) in the origin cluster of
# scripts/services.sh; a node serves it as a SQL view with keyColumn id (`all`) and as
# the same query without one (`unpaged`). Measured in interleaved rounds:
#   - the floor: `psql -c "\copy (same query) to stdout" > /dev/null`;
#   - the full view as NDJSON through Civitas: `curl -H 'Accept: application/x-ndjson'`;
#   both timed by the wall clock around the process (start, connection, all rows);
#   - time to first byte (curl's time_starttransfer) of the full view (its cursor goes at
#   the end, as trailers), of a 100-row page, of a 10,000-row page (the largest whose
#   cursor is also in the headers, so the database reads its keys first) with that cursor
#   query alone in psql (\timing), and of the full `unpaged` view;
# then the node's resident memory while 4 clients fetch 15,800-row and 158,000-row
# responses at once, against its idle memory.
#
# usage: bash bench/sql-serve.sh [rounds] [small_page_requests_per_round]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-7}"
SMALL="${2:-20}"
ROWS=158000
CONCURRENT=4
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/civitas/target}"

source bench/common.sh
need curl curl
need psql postgresql-client

PG="${CIVITAS_BENCH_PG:-postgres://civitas@127.0.0.1:${CIVITAS_PG_ORIGIN_PORT:-55432}/civitas}"
# The clusters are shared with whoever else runs tests on this machine, and services.sh
# restarts a cluster whose generated configuration differs from its own (another branch's
# limits): start them only when the origin does not answer.
psql "$PG" -X -q -c 'SELECT 1' >/dev/null 2>&1 || bash scripts/services.sh >/dev/null

cargo build --release -q -p civitas
BIN="$CARGO_TARGET_DIR/release/civitas"
WORK="$(mktemp -d)"
PORT="${CIVITAS_BENCH_PORT:-18071}"
BASE="http://127.0.0.1:$PORT"
cleanup() {
  [ -n "${NODE_PID:-}" ] && kill "$NODE_PID" 2>/dev/null || true
  psql "$PG" -X -q -c 'SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_sql CASCADE' >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

pg() { psql "$PG" -X -q -v ON_ERROR_STOP=1 "$@"; }

# The table: id, district, height, a name and a WKT-like footprint of about 100 bytes, a
# timestamp; COPY's text form of a row is about 200 bytes.
pg >/dev/null <<SQL
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench_sql CASCADE;
CREATE SCHEMA bench_sql;
CREATE TABLE bench_sql.buildings (
  id int PRIMARY KEY,
  district int NOT NULL,
  height float8,
  name text NOT NULL,
  footprint text NOT NULL,
  updated_at timestamptz NOT NULL
);
INSERT INTO bench_sql.buildings
SELECT g,
       1 + g % 23,
       round((3 + (g * 7919 % 9000) / 100.0)::numeric, 2)::float8,
       'Building ' || g || ', ' || (ARRAY['Ringstraße','Praterstraße','Mariahilfer Straße','Landstraßer Hauptstraße'])[1 + g % 4] || ' ' || (1 + g % 180),
       format('POLYGON((%1\$s %2\$s,%3\$s %2\$s,%3\$s %4\$s,%1\$s %4\$s,%1\$s %2\$s))',
              round((16.2 + (g % 1000) * 0.0003)::numeric, 7), round((48.1 + (g / 1000) * 0.0006)::numeric, 7),
              round((16.20015 + (g % 1000) * 0.0003)::numeric, 7), round((48.10025 + (g / 1000) * 0.0006)::numeric, 7)),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '97 seconds'
FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE bench_sql.buildings;
SQL
COLUMNS="id, district, height, name, footprint, updated_at"
VIEW_QUERY="SELECT $COLUMNS FROM bench_sql.buildings"
# Civitas serves a keyColumn view in key order; the floor asks for the same order.
FLOOR_QUERY="$VIEW_QUERY ORDER BY id"
COPY_BYTES=$(pg -c "\\copy ($FLOOR_QUERY) to stdout" | wc -c)

cat >"$WORK/node.toml" <<TOML
[sql.connections.bench]
url = "$PG"
max_rows = 200000
TOML
RUST_LOG=warn "$BIN" serve --config "$WORK/node.toml" --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" 2>"$WORK/node.log" &
NODE_PID=$!
for _ in $(seq 1 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
cat >"$WORK/unit.json" <<JSON
[
 {"@type": "DataUnit", "name": "urn:bench:buildings", "version": "1",
  "metainformation": {"type": "sql:postgresql", "connection": "bench",
    "sqlViews": {"all": {"query": "$VIEW_QUERY", "keyColumn": "id"},
                 "unpaged": {"query": "$VIEW_QUERY"}}},
  "views": [{"name": "all", "link": "/all"}, {"name": "unpaged", "link": "/unpaged"}]}
]
JSON
"$BIN" --server "$BASE" apply -f "$WORK/unit.json" >/dev/null
URL="$BASE/data/urn:bench:buildings/all"
UNPAGED="$BASE/data/urn:bench:buildings/unpaged"
# What a keyColumn page of up to 10,000 rows runs before its first byte, so that the next
# page's cursor can go in the headers too: the key at the page's end. Timed by psql itself
# (\timing), as a floor for that page's first byte.
HEADER_PAGE=10000
CURSOR_QUERY="SELECT v.id::text FROM ($VIEW_QUERY) AS v ORDER BY v.id ASC LIMIT 2 OFFSET $((HEADER_PAGE - 1))"
# The SQL units follow the catalog; wait until the view answers.
for _ in $(seq 1 100); do curl -sf -o /dev/null "$URL?limit=1" && break; sleep 0.05; done

ndjson() { curl -sS -f -H 'Accept: application/x-ndjson' "$@"; }
LINES=$(ndjson "$URL" | wc -l)
NDJSON_BYTES=$(ndjson "$URL" | wc -c)
FLOOR_LINES=$(pg -c "\\copy ($FLOOR_QUERY) to stdout" | wc -l)
[ "$LINES" = "$ROWS" ] && [ "$FLOOR_LINES" = "$ROWS" ] || {
  echo "expected $ROWS rows, got $LINES via Civitas and $FLOOR_LINES via psql" >&2
  exit 1
}
[ "$(ndjson "$URL?limit=100" | wc -l)" = 100 ] || { echo "the 100-row page is not 100 rows" >&2; exit 1; }

now() { date +%s%N; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
maximum() { sort -g | tail -1; }
ms() { awk '{printf "%.1f\n", $1 * 1000}'; }

: >"$WORK/floor" >"$WORK/civ" >"$WORK/ratio" >"$WORK/ttfb_full" >"$WORK/ttfb_small" >"$WORK/ttfb_unpaged" >"$WORK/ttfb_header" >"$WORK/cursor"
for round in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first, so neither always meets a warmer cache.
  for who in $([ $((round % 2)) = 1 ] && echo "floor civ" || echo "civ floor"); do
    if [ "$who" = floor ]; then
      t0=$(now)
      pg -c "\\copy ($FLOOR_QUERY) to stdout" >/dev/null
      t1=$(now)
      floor=$(awk -v ns=$((t1 - t0)) -v n=$ROWS 'BEGIN {printf "%.0f", n / (ns / 1e9)}')
      echo "$floor" >>"$WORK/floor"
    else
      t0=$(now)
      ttfb=$(ndjson -o /dev/null -w '%{time_starttransfer}' "$URL")
      t1=$(now)
      civ=$(awk -v ns=$((t1 - t0)) -v n=$ROWS 'BEGIN {printf "%.0f", n / (ns / 1e9)}')
      echo "$civ" >>"$WORK/civ"
      echo "$ttfb" >>"$WORK/ttfb_full"
    fi
  done
  awk -v c="$civ" -v f="$floor" 'BEGIN {printf "%.3f\n", c / f}' >>"$WORK/ratio"
  for _ in $(seq 1 "$SMALL"); do
    ndjson -o /dev/null -w '%{time_starttransfer}\n' "$URL?limit=100" >>"$WORK/ttfb_small"
  done
  ndjson -o /dev/null -w '%{time_starttransfer}\n' "$UNPAGED" >>"$WORK/ttfb_unpaged"
  ndjson -o /dev/null -w '%{time_starttransfer}\n' "$URL?limit=$HEADER_PAGE" >>"$WORK/ttfb_header"
  printf '\\timing on\n%s;\n' "$CURSOR_QUERY" | pg | awk '/^Time:/ {print $2 / 1000}' >>"$WORK/cursor"
  echo "round $round: floor $floor rows/s, Civitas NDJSON $civ rows/s" >&2
done

# Memory: VmRSS sampled every 10 ms while $CONCURRENT clients each fetch the same response.
rss() { awk '/^VmRSS/ {print $2}' "/proc/$NODE_PID/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$NODE_PID/status"; }
peak_during() { # limit-query-suffix: prints the peak VmRSS (KiB) while the requests run
  local pids=() max r
  max=$(rss)
  for _ in $(seq 1 "$CONCURRENT"); do
    ndjson -o /dev/null "$URL$1" &
    pids+=($!)
  done
  while kill -0 "${pids[@]}" 2>/dev/null; do
    r=$(rss)
    [ "$r" -gt "$max" ] && max=$r
    sleep 0.01
  done
  wait "${pids[@]}"
  echo "$max"
}
IDLE=$(rss)
SMALL_PEAK=0
BIG_PEAK=0
for _ in 1 2 3; do
  p=$(peak_during "?limit=$((ROWS / 10))"); [ "$p" -gt "$SMALL_PEAK" ] && SMALL_PEAK=$p
done
HWM_SMALL=$(hwm)
for _ in 1 2 3; do
  p=$(peak_during ""); [ "$p" -gt "$BIG_PEAK" ] && BIG_PEAK=$p
done
HWM_BIG=$(hwm)
AFTER=$(rss)

FLOOR_MED=$(median <"$WORK/floor")
CIV_MED=$(median <"$WORK/civ")
RATIO_MED=$(median <"$WORK/ratio")
TF_MED=$(ms <"$WORK/ttfb_full" | median)
TF_MAX=$(ms <"$WORK/ttfb_full" | maximum)
TS_MED=$(ms <"$WORK/ttfb_small" | median)
TS_MAX=$(ms <"$WORK/ttfb_small" | maximum)
TU_MED=$(ms <"$WORK/ttfb_unpaged" | median)
TH_MED=$(ms <"$WORK/ttfb_header" | median)
TH_MAX=$(ms <"$WORK/ttfb_header" | maximum)
TU_MAX=$(ms <"$WORK/ttfb_unpaged" | maximum)
CUR_MED=$(ms <"$WORK/cursor" | median)
MEM=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)

echo "### SQL view serving — $(date -u +%Y-%m-%d), $(nproc) cores, $MEM, $(uname -r)"
echo
echo "Command: \`bash bench/sql-serve.sh $ROUNDS $SMALL\` (release build; node, PostgreSQL 15 and the clients on the same machine)."
echo "$ROWS rows; \`\\copy\` text $COPY_BYTES bytes ($((COPY_BYTES / ROWS)) a row), NDJSON $NDJSON_BYTES bytes ($((NDJSON_BYTES / ROWS)) a row)."
echo
echo "| measurement | Civitas | peer (same run) | ratio |"
echo "|---|---|---|---|"
echo "| full view, rows/s (median of $ROUNDS rounds) | NDJSON via curl: $CIV_MED ($(tr '\n' ' ' <"$WORK/civ")) | psql \`\\copy (query) to stdout\`: $FLOOR_MED ($(tr '\n' ' ' <"$WORK/floor")) | $RATIO_MED × the floor (per round: $(tr '\n' ' ' <"$WORK/ratio")) |"
echo "| first byte, full view (keyColumn id: cursor at the end, as trailers), ms | median $TF_MED, max $TF_MAX ($ROUNDS requests) | — | goal ≤ 20 |"
echo "| first byte, $HEADER_PAGE-row page (cursor in the headers too), ms | median $TH_MED, max $TH_MAX ($ROUNDS requests) | its cursor query alone in psql (\\timing): median $CUR_MED | goal ≤ 20 |"
echo "| first byte, full view without keyColumn (no cursor), ms | median $TU_MED, max $TU_MAX ($ROUNDS requests) | — | goal ≤ 20 |"
echo "| first byte, 100-row page, ms | median $TS_MED, max $TS_MAX ($((ROUNDS * SMALL)) requests) | — | goal ≤ 20 |"
echo "| node resident memory, KiB | idle $IDLE; peak with $CONCURRENT × $((ROWS / 10)) rows: $SMALL_PEAK (VmHWM $HWM_SMALL); peak with $CONCURRENT × $ROWS rows: $BIG_PEAK (VmHWM $HWM_BIG); after $AFTER | — | 10 × the rows: +$((BIG_PEAK - SMALL_PEAK)) KiB at peak |"
