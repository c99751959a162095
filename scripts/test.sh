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

step "services for the integration tests"
# Stops, when the script ends, the services this run started (CFLOGS_KEEP_SERVICES=1 keeps them
# for the next run). Test databases and buckets are dropped by each test itself.
# What the caller's shell may have exported (from sourcing a service script by hand) is not
# this run's to stop.
unset CFLOGS_STARTED_GARAGE CFLOGS_STARTED_POSTGRES
cleanup() {
  if [[ "${CFLOGS_KEEP_SERVICES:-0}" == 1 ]]; then return; fi
  if [[ -n "${CFLOGS_STARTED_GARAGE:-}" ]] &&
      grep -q garage "/proc/$CFLOGS_STARTED_GARAGE/cmdline" 2>/dev/null; then
    echo "test.sh: stopping the Garage this run started (pid $CFLOGS_STARTED_GARAGE)" >&2
    kill "$CFLOGS_STARTED_GARAGE" 2>/dev/null || true
  fi
  if [[ -n "${CFLOGS_STARTED_POSTGRES:-}" ]]; then
    echo "test.sh: stopping the PostgreSQL this run started" >&2
    pg_ctlcluster --skip-systemctl-redirect "$CFLOGS_STARTED_POSTGRES" main stop >&2 || true
  fi
}
trap cleanup EXIT

# With a Docker engine and no services named, the harness (tests/src) starts TimescaleDB and
# MinIO with testcontainers. Without one (this project's CI machines), PostgreSQL and Garage run
# natively on 127.0.0.1: each script starts its service if it is not running (building Garage
# once if missing) and exports the CFLOGS_TEST_* variables the harness reads.
docker_engine() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }
# The harness (and testcontainers) find the engine through DOCKER_HOST or the default socket;
# `docker info` also follows the client's context (rootless Docker, Docker Desktop).
if [[ -z "${DOCKER_HOST:-}" ]] && command -v docker >/dev/null 2>&1; then
  context_host="$(docker context inspect -f '{{.Endpoints.docker.Host}}' 2>/dev/null || true)"
  if [[ -n "$context_host" && "$context_host" != unix:///var/run/docker.sock ]]; then
    export DOCKER_HOST="$context_host"
  fi
fi
if [[ -z "${CFLOGS_TEST_DATABASE_URL:-}${CFLOGS_TEST_S3_ENDPOINT:-}" ]] && docker_engine \
    && [[ "${CFLOGS_TEST_DOCKER:-}" != never ]]; then
  echo "test.sh: Docker engine found: the tests start TimescaleDB and MinIO in containers"
else
  echo "test.sh: no Docker engine (or CFLOGS_TEST_* set): using PostgreSQL and Garage on 127.0.0.1"
  export CFLOGS_TEST_DOCKER=never
  # shellcheck source=services/postgres.sh
  source scripts/services/postgres.sh
  # shellcheck source=services/garage.sh
  source scripts/services/garage.sh
fi

# The compose test validates docker-compose.yml with a Compose v2 tool (the client is enough).
# shellcheck source=services/compose.sh
source scripts/services/compose.sh || true

step "tests (unit, property, conformance, integration)"
cargo test --workspace --locked --no-fail-fast
