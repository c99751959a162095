//! The core's conformance suites against PostgreSQL.

use cflogs_core::testing::conformance;

use crate::common::{Probe, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_checkpoint_store_conforms() {
    let db = TestDb::new().await;
    let client = db.client().await;
    conformance::checkpoint_store(&client.checkpoint_store(), "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_analytics_sink_conforms() {
    let db = TestDb::new().await;
    let client = db.client().await;
    conformance::analytics_sink(&client.sink(), &Probe(client.pool().clone()), "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_analytics_sink_conforms_for_every_builtin_schema() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let probe = Probe(client.pool().clone());
    for schema in cflogs_core::testing::samples::builtin_schemas() {
        conformance::analytics_schema(&client.sink(), &probe, "conf", &schema).await;
    }
}
