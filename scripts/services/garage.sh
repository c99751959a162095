#!/usr/bin/env bash
# Starts a local single-node Garage (S3-compatible object store) for the archive tests and
# exports the CFLOGS_TEST_S3_* variables they read. Meant to be sourced:
#
#     source scripts/services/garage.sh      # from scripts/test.sh, or by hand
#     cargo test -p cflogs-s3
#
# Idempotent: sourcing it again reuses the running server, its layout, key and bucket. When it
# starts the server it exports CFLOGS_STARTED_GARAGE=<pid>, so that scripts/test.sh can stop it
# at the end. The key may create buckets: the integration harness makes one per test. It only
# touches its own state directory ($CFLOGS_GARAGE_DIR, default /var/tmp/cflogs-garage) and, if
# Garage is missing, installs it once under /var/tmp/garage-install (about 20 minutes on a
# 2-core machine). Listens on 127.0.0.1 only: S3 API :3900, RPC :3901, admin :3903.
#
# The access key is fixed (imported, not generated) so that every run and every shell sees the
# same credentials; it only exists in this throw-away local server.

cflogs_garage_start() {
  local state="${CFLOGS_GARAGE_DIR:-/var/tmp/cflogs-garage}"
  local root="${CFLOGS_GARAGE_ROOT:-/var/tmp/garage-install}"
  local bucket="cflogs-test"
  local key_name="cflogs-test"
  local key_id="GK0c0f1065000000000000c1a0"
  local key_secret="c1f10650000000000000000000000000000000000000000000000000c0ffee00"
  local garage conf pid i node

  garage="$(command -v garage || true)"
  if [[ -z "$garage" && -x "$root/bin/garage" ]]; then
    garage="$root/bin/garage"
  fi
  if [[ -z "$garage" ]]; then
    echo "garage.sh: Garage not found; building it once into $root (about 20 minutes)" >&2
    CARGO_TARGET_DIR="${CFLOGS_GARAGE_BUILD_DIR:-/var/tmp/garage-build}" \
      cargo install garage --locked --no-default-features --features sqlite,bundled-libs \
      --root "$root" >&2 || { echo "garage.sh: building Garage failed" >&2; return 1; }
    garage="$root/bin/garage"
  fi

  mkdir -p "$state/meta" "$state/data" || return 1
  chmod 700 "$state"
  conf="$state/garage.toml"
  if [[ ! -s "$conf" ]]; then
    local secret admin
    secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    admin="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    local umask_was
    umask_was="$(umask)"
    umask 077
    cat >"$conf" <<TOML
metadata_dir = "$state/meta"
data_dir = "$state/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:3900"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:3903"
admin_token = "$admin"
TOML
    umask "$umask_was"
  fi

  local g=("$garage" -c "$conf")
  pid=""
  [[ -s "$state/garage.pid" ]] && pid="$(cat "$state/garage.pid")"
  if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
    nohup "${g[@]}" server >>"$state/garage.log" 2>&1 </dev/null &
    echo $! >"$state/garage.pid"
    # scripts/test.sh stops what it started when it ends.
    export CFLOGS_STARTED_GARAGE="$!"
    disown 2>/dev/null || true
  fi
  for i in $(seq 1 60); do
    if "${g[@]}" status >/dev/null 2>&1; then break; fi
    if [[ $i -eq 60 ]]; then
      echo "garage.sh: Garage did not answer within 30 s; see $state/garage.log" >&2
      return 1
    fi
    sleep 0.5
  done

  # One-time layout: a single node holding every partition.
  # The status is read whole before grep looks at it: `grep -q` exiting early could fail the
  # pipeline (EPIPE) under `pipefail`.
  local status
  status="$("${g[@]}" status 2>/dev/null || true)"
  if grep -q "NO ROLE ASSIGNED" <<<"$status"; then
    node="$("${g[@]}" node id -q 2>/dev/null | cut -d@ -f1)"
    "${g[@]}" layout assign -z dc1 -c 1G "$node" >/dev/null || return 1
    "${g[@]}" layout apply --version 1 >/dev/null || return 1
  fi
  # Wait until the layout is applied everywhere (writes fail before).
  for i in $(seq 1 60); do
    status="$("${g[@]}" status 2>/dev/null || true)"
    if grep -q "NO ROLE ASSIGNED" <<<"$status"; then sleep 0.5; else break; fi
  done

  if ! "${g[@]}" key info "$key_id" >/dev/null 2>&1; then
    "${g[@]}" key import --yes -n "$key_name" "$key_id" "$key_secret" >/dev/null || return 1
  fi
  if ! "${g[@]}" bucket info "$bucket" >/dev/null 2>&1; then
    "${g[@]}" bucket create "$bucket" >/dev/null || return 1
  fi
  "${g[@]}" bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null || return 1
  # The integration harness creates (and deletes) a bucket per test with this key.
  "${g[@]}" key allow --create-bucket "$key_id" >/dev/null || return 1

  export CFLOGS_TEST_S3_ENDPOINT="http://127.0.0.1:3900"
  export CFLOGS_TEST_S3_BUCKET="$bucket"
  export CFLOGS_TEST_S3_ACCESS_KEY="$key_id"
  export CFLOGS_TEST_S3_SECRET_KEY="$key_secret"
  export CFLOGS_TEST_S3_REGION="garage"
  echo "garage.sh: Garage ready at $CFLOGS_TEST_S3_ENDPOINT, bucket $bucket (state in $state)" >&2
}

cflogs_garage_start
