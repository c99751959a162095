# syntax=docker/dockerfile:1
#
# cflogs and cflogs-sim (the Cloudflare API simulator) in one image.
#
#   docker build -t cflogs:local .
#   docker run --rm --env-file .env cflogs:local doctor
#   docker run --rm cflogs:local config --list
#
# The image runs `cflogs run` as user cflogs (uid 10001) in /var/lib/cflogs, serving /metrics,
# /healthz and /readyz on 0.0.0.0:9900. docs/deploy.md describes the Compose stack around it.

# --- build -------------------------------------------------------------------------------------
# The cargo registry and the target directory live in BuildKit cache mounts: kept between
# builds, never in a layer. The binaries are copied out of the cache mount to /out.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p cflogs -p cflogs-sim --features cflogs-sim/cli \
 && install -D -m 0755 -t /out target/release/cflogs target/release/cflogs-sim

# --- runtime -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="cflogs" \
      org.opencontainers.image.description="Moves Cloudflare audit logs into PostgreSQL/TimescaleDB and a Parquet archive on S3, exactly once" \
      org.opencontainers.image.source="https://github.com/cflogs/cflogs" \
      org.opencontainers.image.licenses="Apache-2.0"

# ca-certificates for TLS to Cloudflare, PostgreSQL and S3; curl for the health check (the
# binary has no health-check subcommand).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 cflogs \
 && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init \
        --home-dir /var/lib/cflogs --shell /usr/sbin/nologin cflogs \
 && install -d -o cflogs -g cflogs -m 0750 /var/lib/cflogs

COPY --from=builder /out/cflogs /out/cflogs-sim /usr/local/bin/

USER cflogs
WORKDIR /var/lib/cflogs

# `run` serves /metrics, /healthz and /readyz here; the default (127.0.0.1:9900) would not be
# reachable from other containers.
ENV CFLOGS_METRICS_ADDR=0.0.0.0:9900
EXPOSE 9900

# /healthz answers 200 while the process serves. It needs CFLOGS_METRICS_ADDR on port 9900: with
# another port, or `off`, override the health check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9900/healthz"]

# cflogs stops cleanly on SIGTERM (docker stop) with status 0.
ENTRYPOINT ["cflogs"]
CMD ["run"]
