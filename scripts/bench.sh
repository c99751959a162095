#!/usr/bin/env bash
# Runs a benchmark of the binary (crates/bin/benches) against PostgreSQL and Garage on
# 127.0.0.1, starting them if needed like scripts/test.sh does:
#   bash scripts/bench.sh catch_up                        # 200,000 events
#   BENCH_EVENTS=2000000 bash scripts/bench.sh catch_up   # the issue's long backlog
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cflogs-target}"
export CFLOGS_TEST_DOCKER=never
# shellcheck source=services/postgres.sh
source scripts/services/postgres.sh
# shellcheck source=services/garage.sh
source scripts/services/garage.sh
exec cargo bench --locked -p cflogs --bench "${1:-catch_up}"
