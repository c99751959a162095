#!/usr/bin/env bash
# The one command that runs every check and every test of the workspace (README, `.ci/run`).
#
# Safe to run twice; runs as root or as a user. Builds go to a persistent target directory
# outside the clone (override with CARGO_TARGET_DIR) because builds are slow on small machines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cflogs-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step() { printf '\n==> %s\n' "$*"; }

step "formatting (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy --workspace --all-targets -- -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the core stays pure (no HTTP, SQL, object store, Parquet or Arrow crate)"
if cargo tree -p cflogs-core -e normal --locked --prefix none \
    | grep -E '^(reqwest|hyper|sqlx[a-z-]*|object_store|parquet|arrow[a-z-]*) '; then
  echo "cflogs-core depends on an adapter crate (listed above): move that code to an adapter" >&2
  exit 1
fi
echo "ok: cflogs-core depends on none of reqwest, hyper, sqlx, object_store, parquet, arrow"

step "docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "services on 127.0.0.1 (PostgreSQL, and Garage for the S3 archive tests)"
# Each script starts its service if it is not running (building Garage once if missing) and
# exports the CFLOGS_TEST_* variables the integration tests read.
# shellcheck source=services/postgres.sh
source scripts/services/postgres.sh
# shellcheck source=services/garage.sh
source scripts/services/garage.sh

step "tests (unit, property, conformance, integration)"
cargo test --workspace --locked --no-fail-fast
