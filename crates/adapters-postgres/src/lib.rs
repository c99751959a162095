//! # cflogs-postgres
//!
//! The PostgreSQL/TimescaleDB adapters of cflogs: an [`AnalyticsSink`](cflogs_core::AnalyticsSink)
//! ([`PostgresSink`]) that bulk-writes batches with `COPY`, and a
//! [`CheckpointStore`](cflogs_core::CheckpointStore) ([`PostgresCheckpointStore`]) with
//! compare-and-set commits and fenced leases.
//!
//! ```no_run
//! # async fn run() -> cflogs_core::Result<()> {
//! use cflogs_postgres::{PostgresClient, PostgresConfig};
//!
//! let url = cflogs_postgres::Secret::new("postgres://cflogs@127.0.0.1:5432/cflogs");
//! let config = PostgresConfig::from_url(&url)?.with_pool_size(4)?;
//! let client = PostgresClient::connect(&config).await?; // applies the migrations
//! let analytics = client.sink();
//! let checkpoints = client.checkpoint_store();
//! # let _ = (analytics, checkpoints);
//! # Ok(()) }
//! ```
//!
//! The schema (`audit_logs`, `raw_events`, `quarantine`, `cflogs_checkpoints`) is embedded as
//! migrations. When the server has TimescaleDB, `audit_logs` becomes a hypertable with 1-day
//! chunks and the configured retention and compression policies; otherwise it stays a plain
//! table on PostgreSQL 13 or later. `docs/sinks/postgres.md` describes the schema, the queries it
//! serves, the settings and the failure modes.

mod checkpoint;
mod client;
mod config;
mod error;
mod mapping;
mod schema;
mod sink;
mod tables;

pub use checkpoint::PostgresCheckpointStore;
pub use client::PostgresClient;
pub use config::{
    PostgresConfig, Secret, SettingsOrigin, TimescaleConfig, TimescaleMode, redact_url,
};
pub use schema::{SchemaReport, TimescaleStatus};
pub use sink::PostgresSink;
pub use sqlx::postgres::{PgPool, PgSslMode};
