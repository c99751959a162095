#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the cflogs-postgres tests and
# benchmark, and exports the admin URL they read. Meant to be sourced:
#
#     source scripts/services/postgres.sh    # from scripts/test.sh, or by hand
#     cargo test -p cflogs-postgres
#
# - CFLOGS_TEST_DATABASE_URL already set: that server is used as it is, nothing is started.
# - Otherwise, when nothing answers on 127.0.0.1:5432, the machine's cluster is started with
#   `pg_ctlcluster --skip-systemctl-redirect <version> main start` (Debian's postgresql
#   package), and the script waits until `pg_isready -h 127.0.0.1` succeeds.
# - Then CFLOGS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres is exported: a
#   role that may create databases (each test creates and drops its own `cflogs_test_<random>`).
#
# Idempotent: sourcing it again with the server running only exports the variable again. When
# it started the cluster it exports CFLOGS_STARTED_POSTGRES=<version>, so that scripts/test.sh
# can stop it again at the end.
# Fails (returns 1) with a message saying what to do when PostgreSQL is not installed or does
# not come up.

cflogs_postgres_start() {
  local host=127.0.0.1 port=5432 version i

  if [[ -n "${CFLOGS_TEST_DATABASE_URL:-}" ]]; then
    echo "postgres.sh: using CFLOGS_TEST_DATABASE_URL from the environment" >&2
    return 0
  fi

  if ! command -v pg_isready >/dev/null 2>&1; then
    echo "postgres.sh: PostgreSQL is not installed (pg_isready not found). Install it" \
      "(apt-get install -y postgresql), or set CFLOGS_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB" \
      "to a server where USER may create databases" >&2
    return 1
  fi

  if ! pg_isready -q -h "$host" -p "$port"; then
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | head -1 || true)"
    if [[ -z "$version" ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
      echo "postgres.sh: nothing answers on $host:$port and no Debian cluster was found in" \
        "/etc/postgresql to start. Start PostgreSQL on $host:$port, or set" \
        "CFLOGS_TEST_DATABASE_URL to a server you run" >&2
      return 1
    fi
    echo "postgres.sh: starting PostgreSQL $version (cluster main)" >&2
    if pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2; then
      # scripts/test.sh stops what it started when it ends.
      export CFLOGS_STARTED_POSTGRES="$version"
    else
      echo "postgres.sh: pg_ctlcluster did not start the cluster, waiting for it anyway" >&2
    fi
    for i in $(seq 1 60); do
      pg_isready -q -h "$host" -p "$port" && break
      sleep 0.5
    done
    if ! pg_isready -q -h "$host" -p "$port"; then
      echo "postgres.sh: PostgreSQL $version did not become ready on $host:$port within 30 s;" \
        "see /var/log/postgresql/postgresql-$version-main.log" >&2
      return 1
    fi
  fi

  export CFLOGS_TEST_DATABASE_URL="postgres://postgres@$host:$port/postgres"
  echo "postgres.sh: PostgreSQL ready, CFLOGS_TEST_DATABASE_URL=$CFLOGS_TEST_DATABASE_URL" >&2
}

cflogs_postgres_start
