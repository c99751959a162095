//! The harness of the cflogs integration suite: each test gets a PostgreSQL database and an S3
//! bucket of its own, on real servers.
//!
//! Where they come from, in this order:
//!
//! 1. **Services named by environment variables**, which `scripts/test.sh` sets after starting
//!    the machine's PostgreSQL and a local Garage (the path CI takes, where no Docker engine
//!    runs): `CFLOGS_TEST_DATABASE_URL` (a role that may create databases) and
//!    `CFLOGS_TEST_S3_ENDPOINT`, `CFLOGS_TEST_S3_REGION`, `CFLOGS_TEST_S3_ACCESS_KEY`,
//!    `CFLOGS_TEST_S3_SECRET_KEY` (a key that may create buckets).
//! 2. **Containers**, when those variables are unset and a Docker engine is reachable: a
//!    TimescaleDB container ([`TIMESCALEDB_IMAGE`]) and a MinIO container ([`MINIO_IMAGE`]),
//!    started by testcontainers, shared by the tests of one test binary that run at the same
//!    time, and removed when the last of them ends. `CFLOGS_TEST_DOCKER=never` turns this off.
//! 3. Otherwise the test fails with a message saying how to start the services. It never passes
//!    silently.
//!
//! Either way each test creates its own database (`cflogs_test_<random>`) and bucket
//! (`cflogs-test-<random>`) and drops them when it ends, also when it panics.

use std::sync::Arc;
use std::time::Duration;

mod containers;
mod docker;
mod names;
mod postgres;
mod s3;

use docker::docker_reachable;
pub use names::unique_suffix;
pub use postgres::TestDatabase;
pub use s3::TestBucket;

/// The TimescaleDB image the container path starts.
pub const TIMESCALEDB_IMAGE: (&str, &str) = ("timescale/timescaledb", "2.17.2-pg16");
/// The MinIO image the container path starts (MinIO publishes to quay.io, no longer to Docker
/// Hub; the same image as `docker-compose.yml`).
pub const MINIO_IMAGE: (&str, &str) = ("quay.io/minio/minio", "RELEASE.2025-04-22T22-12-26Z");

/// A test's share of a container (none for services named by environment variables). Dropping
/// the last share removes the container, which blocks on a runtime of testcontainers' own, so
/// it is done on a thread of its own: never on a test's Tokio runtime, where that would panic
/// (and abort the binary while a test unwinds).
#[derive(Debug)]
struct Held<T: Send + Sync + 'static>(Option<Arc<T>>);

impl<T: Send + Sync + 'static> Held<T> {
    fn new(shared: Arc<T>) -> Self {
        Self(Some(shared))
    }
}

impl<T: Send + Sync + 'static> Drop for Held<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            // Not `off_runtime`: this may run while a test unwinds, and must not panic again.
            let _ = std::thread::spawn(move || drop(shared)).join();
        }
    }
}

/// An environment variable, if set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the container path may be used: a Docker engine answers and the user did not say
/// `CFLOGS_TEST_DOCKER=never`.
fn containers_allowed() -> bool {
    env("CFLOGS_TEST_DOCKER").as_deref() != Some("never") && docker_reachable()
}

/// Runs `work` on a thread of its own: the blocking container API must not run on a thread
/// that drives a Tokio runtime.
fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(work)
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Runs `cleanup` to completion on a thread and a runtime of its own: `Drop` runs on a test's
/// runtime, which must not block. Never panics (it may run while a test unwinds).
fn clean_up_off_runtime(cleanup: impl Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(cleanup);
        }
    })
    .join();
}

/// How long to keep trying to reach a service: a container's may still be starting; one named
/// by the environment is up or is not.
fn patience<T: Send + Sync + 'static>(container: &Option<Held<T>>) -> Duration {
    if container.is_some() {
        Duration::from_secs(60)
    } else {
        Duration::ZERO
    }
}

/// Retries `attempt` every 500 ms until it succeeds or `within` has passed.
async fn retry<T, E: std::fmt::Display>(
    within: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
