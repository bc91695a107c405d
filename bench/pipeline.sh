#!/usr/bin/env bash
# Pipeline benchmark: stage placements per second (100-stage pipelines on a 1,000-site
# continuum, heuristic solver, explanations included), the heuristic's objective gap to the
# exact optimum over a seeded random set (6-12 stages x 20 sites), and parse + check of a
# 1,000-stage .civ file. Everything runs in-process (crates/civitas-pipeline/examples/
# pipeline_bench.rs); the instances come from seeded generators, so every run plans the
# same inputs. Peers are published figures (see docs/BENCHMARKS.md) and, for the gap, the
# exact solver itself.
#
# usage: bash bench/pipeline.sh [PIPELINES] [GAP_INSTANCES]   (defaults 200 and 200)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/civitas/target}"
cargo build --release -q -p civitas-pipeline --example pipeline_bench
echo "# $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$CARGO_TARGET_DIR/release/examples/pipeline_bench" "${1:-200}" "${2:-200}"
