//! # cflogs-core
//!
//! The pure heart of cflogs: domain types, the four ports every adapter implements, the cursor
//! kinds that give each kind of source its position ([`cursors`]), and the exactly-once commit
//! algorithm that moves events from an [`EventSource`] into an
//! [`AnalyticsSink`] and an [`ArchiveSink`], with progress kept in a [`CheckpointStore`].
//!
//! This crate knows no adapter: it depends on no HTTP, SQL, object-store or Parquet crate, so a
//! Rust service can embed it with its own sinks. Adapter crates (`cflogs-cloudflare`,
//! `cflogs-postgres`, `cflogs-s3`, …) depend on it, never the other way round.
//!
//! The algorithm and the proof sketch of its guarantee are in `docs/architecture.md`; the short
//! version is in the documentation of [`Pipeline`].
//!
//! With the `testing` feature the crate also ships in-memory implementations of every port,
//! fault-injecting wrappers, and one conformance suite per port that real adapters run against
//! themselves (see the `testing` module).

pub mod cursors;
pub mod domain;
mod error;
pub mod pipeline;
pub mod ports;
pub use domain::schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use cursors::{
    ObjectChunk, ObjectLedger, ObjectRef, ObjectSource, OverlappingWindows, SettledWindows,
    WindowSource,
};
pub use domain::{
    Batch, BatchLimits, Checkpoint, CommitGuard, Cursor, Dataset, Digest, Epoch, Event, EventId,
    FetchRequest, Fetched, Manifest, ManifestObject, Position, Quarantined, Read, ReadRequest,
    RecentId, Secret, StreamId, Timestamp, Window, fresh_lease,
};
pub use error::{BoxError, Error, Result, error_chain};
pub use pipeline::{
    CycleObserver, CycleOutcome, CycleReport, Pipeline, PipelineFactory, Policy, Progress,
    StreamHealth, StreamMonitor, Supervisor, reconcile, restore_checkpoint,
};
pub use ports::{
    AnalyticsSink, ArchiveSink, CheckpointStore, Claim, Clock, EventSource, StageRequest,
    SystemClock, WriteReport, lease_held, lease_renewed,
};
pub use schema::{
    BUILTIN_DATASETS, Column, ColumnType, Context, DatasetSchema, IdRule, JsonPath, TimeFormat,
};
