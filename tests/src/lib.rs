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

pub use docker::docker_reachable;
pub use postgres::TestDatabase;
pub use s3::TestBucket;

/// The TimescaleDB image the container path starts.
pub const TIMESCALEDB_IMAGE: (&str, &str) = ("timescale/timescaledb", "2.17.2-pg16");
/// The MinIO image the container path starts (MinIO publishes to quay.io, no longer to Docker
/// Hub; the same image as `docker-compose.yml`).
pub const MINIO_IMAGE: (&str, &str) = ("quay.io/minio/minio", "RELEASE.2025-04-22T22-12-26Z");

/// Where a test's services come from.
#[derive(Debug)]
enum Origin<T: Send + Sync + 'static> {
    /// A service named by environment variables.
    Environment,
    /// A container shared with the other tests of this binary that run at the same time, held
    /// for its `Drop`: the last test to end removes it.
    Container(#[allow(dead_code)] Held<T>),
}

/// A share of a container. Dropping the last one removes the container, which blocks on a
/// runtime of testcontainers' own, so it is done on a thread of its own: never on a test's
/// Tokio runtime, where that would panic (and abort the binary while a test unwinds).
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

/// Runs `work` on a thread of its own. The blocking container API and async clean-up in `Drop`
/// must not run on a thread that drives a Tokio runtime.
fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(work)
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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
