//! TimescaleDB and MinIO in containers, for machines with a Docker engine and no services
//! named by environment variables.
//!
//! One container of each kind serves the tests of a test binary that run at the same time: the
//! first test to need one starts it, each test holds an `Arc`, and the last to end removes it
//! (testcontainers removes a container when it is dropped). Tests that run one after another
//! may each start their own, which is slower but just as correct.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, ContainerRequest, GenericImage, ImageExt};

use crate::{MINIO_IMAGE, TIMESCALEDB_IMAGE};

/// The label every container of the harness carries, so a crashed run's leftovers can be found:
/// `docker ps -a --filter label=org.cflogs.test`.
pub(crate) const LABEL: &str = "org.cflogs.test";

/// The MinIO root credentials: only ever used inside a throw-away container.
pub(crate) const MINIO_USER: &str = "cflogs-test";
pub(crate) const MINIO_PASSWORD: &str = "cflogs-test-secret";

/// A running TimescaleDB container.
pub(crate) struct PostgresContainer {
    _container: Container<GenericImage>,
    pub(crate) admin_url: String,
}

/// A running MinIO container.
pub(crate) struct MinioContainer {
    _container: Container<GenericImage>,
    pub(crate) endpoint: String,
}

impl std::fmt::Debug for PostgresContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresContainer")
            .field("id", &self._container.id())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MinioContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MinioContainer")
            .field("id", &self._container.id())
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// The host to reach a published port on: `localhost` (a local engine) becomes 127.0.0.1,
/// because the port is the IPv4 one and `localhost` may resolve to `::1` first, where Docker can
/// publish a different port.
fn loopback(host: url::Host) -> String {
    match host {
        url::Host::Domain(d) if d == "localhost" => "127.0.0.1".to_owned(),
        other => other.to_string(),
    }
}

/// Returns the live container in `slot`, or starts one with `start`.
fn shared<T>(slot: &Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(live) = slot.upgrade() {
        return live;
    }
    let fresh = Arc::new(start());
    *slot = Arc::downgrade(&fresh);
    fresh
}

/// Starts `request`, the image `what` (labelled, three minutes to start), and returns it with
/// the `host:port` its `port` is published on.
fn start(
    what: &str,
    request: ContainerRequest<GenericImage>,
    port: u16,
) -> (Container<GenericImage>, String) {
    let container = request
        .with_label(LABEL, what)
        .with_startup_timeout(Duration::from_secs(180))
        .start()
        .unwrap_or_else(|e| panic!("starting the {what} container: {e}"));
    let published = container
        .get_host_port_ipv4(port.tcp())
        .unwrap_or_else(|e| panic!("{what} container port: {e}"));
    let host = container
        .get_host()
        .unwrap_or_else(|e| panic!("{what} container host: {e}"));
    (container, format!("{}:{published}", loopback(host)))
}

/// The TimescaleDB container (call off any Tokio runtime).
pub(crate) fn postgres() -> Arc<PostgresContainer> {
    static SLOT: Mutex<Weak<PostgresContainer>> = Mutex::new(Weak::new());
    shared(&SLOT, || {
        let (name, tag) = TIMESCALEDB_IMAGE;
        let request = GenericImage::new(name, tag)
            .with_exposed_port(5432.tcp())
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            ))
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust");
        let (container, address) = start(&format!("{name}:{tag}"), request, 5432);
        PostgresContainer {
            _container: container,
            admin_url: format!("postgres://postgres@{address}/postgres?sslmode=disable"),
        }
    })
}

/// The MinIO container (call off any Tokio runtime).
pub(crate) fn minio() -> Arc<MinioContainer> {
    static SLOT: Mutex<Weak<MinioContainer>> = Mutex::new(Weak::new());
    shared(&SLOT, || {
        let (name, tag) = MINIO_IMAGE;
        let request = GenericImage::new(name, tag)
            .with_exposed_port(9000.tcp())
            // MinIO logs its start-up banner on stderr in recent releases, stdout in older ones.
            .with_wait_for(WaitFor::message_on_either_std("API:"))
            .with_cmd(["server", "/data"])
            .with_env_var("MINIO_ROOT_USER", MINIO_USER)
            .with_env_var("MINIO_ROOT_PASSWORD", MINIO_PASSWORD);
        let (container, address) = start(&format!("{name}:{tag}"), request, 9000);
        MinioContainer {
            _container: container,
            endpoint: format!("http://{address}"),
        }
    })
}
