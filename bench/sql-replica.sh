#!/usr/bin/env bash
# SQL replicas (issue 8), crates/civitas-sql/examples/replica_bench.rs against the two
# PostgreSQL 15 clusters of scripts/services.sh, in databases of their own
# (`civitas_replica_bench`, made here; clean-up sweeps a whole database):
#   (a) initial copy of a 158,000-row buildings table by `Replicator::copy` (COPY binary,
#       one snapshot, one target transaction) vs `pg_dump -t … | psql` of the same table
#       into the same target, alternating, ROUNDS rounds; medians and their ratio;
#   (b) streaming lag at RATE row changes/s for SECONDS s: p50/p95/max sampled by
#       `Replicator::refresh` every 150 ms and by polling a marker row at the target.
# Prints a Markdown block for docs/BENCHMARKS.md.
#
# usage: bash bench/sql-replica.sh [ROUNDS] [RATE] [SECONDS]     (defaults 5 1000 30)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-5}"
RATE="${2:-1000}"
SECONDS_STREAM="${3:-30}"
ROWS="${CIVITAS_BENCH_ROWS:-158000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/civitas/target}"

eval "$(bash scripts/services.sh start | grep '^CIVITAS_TEST_PG_')"
DB=civitas_replica_bench
for url in "$CIVITAS_TEST_PG_ORIGIN" "$CIVITAS_TEST_PG_TARGET"; do
  psql -X -q -d "$url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
    || psql -X -q -d "$url" -c "CREATE DATABASE $DB" >/dev/null
done
ORIGIN="${CIVITAS_TEST_PG_ORIGIN%/*}/$DB"
TARGET="${CIVITAS_TEST_PG_TARGET%/*}/$DB"

cargo build --release -q -p civitas-sql --example replica_bench
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
"$CARGO_TARGET_DIR/release/examples/replica_bench" --origin "$ORIGIN" --target "$TARGET" \
  --rows "$ROWS" --rounds "$ROUNDS" --rate "$RATE" --seconds "$SECONDS_STREAM" | tee "$OUT" >&2
r() { awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' "$OUT"; }

cat <<MD

### SQL replicas — $(date -u +%Y-%m-%d), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)

Command: \`bash bench/sql-replica.sh $ROUNDS $RATE $SECONDS_STREAM\` (release build; origin and target are two PostgreSQL 15 clusters on the same machine, loopback; table of $(r rows) rows, $(r table_mib) MiB with its index).

| measurement | Civitas | peer (same run) | ratio |
|---|---|---|---|
| initial copy of the table, median of $ROUNDS, s | $(r copy_s_median) (all: $(r copy_s_all); $(r copy_rows_per_s) rows/s) | \`pg_dump -t … \| psql\`: $(r pgdump_s_median) (all: $(r pgdump_s_all)) | $(r copy_speedup_vs_pgdump) × faster |
| streaming lag at $(r stream_changes_per_s) row changes/s, by \`refresh\` every 150 ms ($(r lag_refresh_samples) samples) | p50 $(r lag_refresh_p50_s) s, p95 $(r lag_refresh_p95_s) s, max $(r lag_refresh_max_s) s | — | — |
| streaming lag, by a marker row polled at the target every 20 ms ($(r lag_marker_samples) samples) | p50 $(r lag_marker_p50_s) s, p95 $(r lag_marker_p95_s) s, max $(r lag_marker_max_s) s | — | — |
MD
