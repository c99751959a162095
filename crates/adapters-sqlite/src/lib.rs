//! # cflogs-sqlite
//!
//! The SQLite adapters of cflogs, for the zero-setup default and for services that embed
//! cflogs without PostgreSQL: an [`AnalyticsSink`](cflogs_core::AnalyticsSink)
//! ([`SqliteSink`]) and a [`CheckpointStore`](cflogs_core::CheckpointStore)
//! ([`SqliteCheckpointStore`]) on one local file (SQLite is compiled in), in WAL mode with one
//! writer connection.
//!
//! ```no_run
//! # async fn run() -> cflogs_core::Result<()> {
//! use cflogs_sqlite::{SqliteClient, SqliteConfig};
//!
//! let config = SqliteConfig::new("/var/lib/cflogs/cflogs.sqlite3");
//! let client = SqliteClient::open(&config).await?; // creates the file, applies the migrations
//! let analytics = client.sink();
//! let checkpoints = client.checkpoint_store();
//! # let _ = (analytics, checkpoints);
//! # Ok(()) }
//! ```
//!
//! The tables and keys are those of the PostgreSQL adapter (`audit_logs`, `raw_events`,
//! `quarantine`, `cflogs_checkpoints`); `docs/sinks/sqlite.md` describes them.

mod checkpoint;
mod client;
mod config;
mod error;
mod sink;

pub use checkpoint::SqliteCheckpointStore;
pub use client::SqliteClient;
pub use config::{Durability, SqliteConfig};
pub use sink::SqliteSink;
pub use sqlx::SqlitePool;
