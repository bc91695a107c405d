#!/usr/bin/env bash
# The one test command: formatting, lints, then the whole test suite.
# Used by the README and by CI (.ci/run). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outside the clone so CI and fresh clones reuse one target directory.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/civitas/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

echo "==> services (scripts/services.sh)"
bash scripts/services.sh
export CIVITAS_TEST_LDAP_URL="${CIVITAS_TEST_LDAP_URL:-ldap://127.0.0.1:${CIVITAS_SLAPD_PORT:-3890}}"
export CIVITAS_TEST_PG_ORIGIN="${CIVITAS_TEST_PG_ORIGIN:-postgres://civitas@127.0.0.1:${CIVITAS_PG_ORIGIN_PORT:-55432}/civitas}"
export CIVITAS_TEST_PG_TARGET="${CIVITAS_TEST_PG_TARGET:-postgres://civitas@127.0.0.1:${CIVITAS_PG_TARGET_PORT:-55433}/civitas}"

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked --no-fail-fast
