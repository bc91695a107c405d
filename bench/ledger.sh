#!/usr/bin/env bash
# Ledger benchmark. Embedded (examples/ledger_bench.rs): batched durable appends, single
# appends under concurrency, inclusion proof generation + verification at SIZE entries,
# reopen with full verification. Over HTTP: single appends through the ledger API under
# concurrency (wrk), via `civitas serve`.
# Peers measured in the same run on the same disk: `sha256sum` throughput and one-at-a-time
# O_DSYNC 4 KiB writes (`dd`), so the figures read as ratios. Prints a Markdown block for
# docs/BENCHMARKS.md.
#
# usage: bash bench/ledger.sh [SIZE] [DURATION_SECONDS]     (SIZE defaults to 10,000,000;
#        the 10 M run takes a few minutes and ~2.5 GB of disk in $BENCH_DIR or /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE="${1:-10000000}"
DURATION="${2:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/civitas/target}"

source bench/common.sh
need wrk wrk
need python3 python3

cargo build --release -q -p civitas-ledger --example ledger_bench
cargo build --release -q -p civitas
WORK="$(mktemp -d -p "${BENCH_DIR:-/tmp}" civitas-ledger-bench.XXXXXX)"
PORT=17172
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- peers ---
echo "## peers: sha256sum and O_DSYNC writes" >&2
head -c $((256 << 20)) /dev/urandom >"$WORK/peer.bin"
S=$(date +%s.%N); sha256sum "$WORK/peer.bin" >/dev/null; E=$(date +%s.%N)
SHA_MB_S=$(python3 -c "print(round(256/($E-$S)))")
rm -f "$WORK/peer.bin"
SYNC_N=1000
S=$(date +%s.%N)
dd if=/dev/zero of="$WORK/dsync.test" bs=4k count=$SYNC_N oflag=dsync status=none
E=$(date +%s.%N)
SYNC_RATE=$(python3 -c "print(round($SYNC_N/($E-$S)))")
rm -f "$WORK/dsync.test"

# --- embedded ---
echo "## embedded: $SIZE entries (progress below)" >&2
"$CARGO_TARGET_DIR/release/examples/ledger_bench" --size "$SIZE" --dir "$WORK/embedded" | tee "$WORK/embedded.txt" >&2
rm -rf "$WORK/embedded"
r() { awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' "$WORK/embedded.txt"; }
fmt() { python3 -c "print(f'{float(\"$1\"):,.${2:-0}f}')"; }

# --- HTTP ---
CIVITAS="$CARGO_TARGET_DIR/release/civitas"
HTTP_VIA="civitas serve (full node router)"
"$CIVITAS" serve --data-dir "$WORK/http" --listen "127.0.0.1:$PORT" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/ledger" >/dev/null && break; sleep 0.1; done
cat >"$WORK/post.lua" <<'LUA'
local counter = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"kind":"deal","data":{"deal":"%d-%d","requester":"urn:civitas:app:click-redirector","provider":"urn:civitas:site:vienna-edge-3","priceMicros":%d}}',
    tid, counter, counter * 37 % 100000)
  return wrk.format("POST", "/api/v1/ledger/entries", {["Content-Type"] = "application/json"}, body)
end
LUA
echo "## HTTP: single appends, wrk -t2 -c64 -d${DURATION}s via $HTTP_VIA" >&2
read -r H_RPS H_P50 H_P99 H_BAD <<<"$(wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT" | wrk_fields)"
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""

BATCHED=$(r batched_append_entries_per_s)
BATCHED1=$(r batched_append_single_appender_entries_per_s)
SINGLE=$(r single_append_entries_per_s)
PEER_FSYNC=$(r peer_fsync_per_s)
PROOF_N=$(r proof_size_entries)
cat <<MD
### Ledger — $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(df -h "$WORK" | awk 'NR==2 {print $1}')

Command: \`bash bench/ledger.sh $SIZE $DURATION\` (release build; entries of $(fmt "$(r entry_bytes)") bytes of canonical JSON; every append durable: acknowledged after the fdatasync of its group commit).

| measurement | Civitas | peer (same run, same disk) | ratio |
|---|---|---|---|
| batched appends, 4 appenders × batches of 1,000, entries/s | $(fmt "$BATCHED") | one-at-a-time O_DSYNC 4 KiB writes: $(fmt "$SYNC_RATE")/s (in-process fdatasync: $(fmt "$PEER_FSYNC")/s) | $(python3 -c "print(f'{$BATCHED/$SYNC_RATE:,.0f}')") entries per disk sync |
| batched appends, 1 appender × batches of 1,000, entries/s | $(fmt "$BATCHED1") | — | — |
| single appends, 256 concurrent tasks (embedded), entries/s | $(fmt "$SINGLE") (p50 $(fmt "$(r single_append_p50_ms)" 2) ms, p99 $(fmt "$(r single_append_p99_ms)" 2) ms) | O_DSYNC writes: $(fmt "$SYNC_RATE")/s | $(python3 -c "print(f'{$SINGLE/$SYNC_RATE:,.1f}')") × (group commit) |
| single appends over HTTP, wrk -t2 -c64, req/s | $(fmt "$H_RPS") (p50 $H_P50, p99 $H_P99, non-2xx $H_BAD) via $HTTP_VIA | O_DSYNC writes: $(fmt "$SYNC_RATE")/s | $(python3 -c "print(f'{$H_RPS/$SYNC_RATE:,.1f}')") × |
| inclusion proof generation + verification at $(fmt "$PROOF_N") entries, µs | mean $(fmt "$(r proof_gen_verify_mean_us)" 1), p50 $(fmt "$(r proof_gen_verify_p50_us)" 1), p99 $(fmt "$(r proof_gen_verify_p99_us)" 1) | sha256sum: $(fmt "$SHA_MB_S") MB/s (in-process SHA-256: $(fmt "$(r peer_sha256_mb_per_s)") MB/s) | — |
| reopen with full verification of $(fmt "$PROOF_N") entries, s | $(fmt "$(r reopen_verify_s)" 1) | hashing the same bytes with sha256sum alone: $(python3 -c "print(f'{$(r disk_bytes_per_entry)*$PROOF_N/1e6/$SHA_MB_S:,.1f}')") s | — |
| disk per entry, bytes | $(fmt "$(r disk_bytes_per_entry)" 1) (entry + 32-byte record header + 8-byte offset + ~63 bytes of stored hashes) | — | — |
MD
