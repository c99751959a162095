//! # cflogs-s3
//!
//! The Parquet archive of cflogs on S3-compatible object storage (AWS S3, MinIO, Garage,
//! Cloudflare R2), a local directory or memory: [`ParquetArchive`] implements the core's
//! [`ArchiveSink`](cflogs_core::ArchiveSink) port with staged writes, server-side publishing,
//! manifests forming a SHA-256 hash chain, and a sweeper; [`verify`] checks an archive against
//! its manifests (`cflogs verify`).
//!
//! ```no_run
//! # async fn demo() -> cflogs_core::Result<()> {
//! use cflogs_s3::{ArchiveConfig, ParquetArchive};
//!
//! let config = ArchiveConfig::from_url("s3://logs/cflogs")?
//!     .with_endpoint("http://127.0.0.1:3900")?
//!     .with_region("garage");
//! let archive = ParquetArchive::open(&config)?;
//! let stream = cflogs_core::StreamId::new("audit-v1/account/abc")?;
//! let report = archive.verify(&stream, None).await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! The layout, schemas, chain and verification are described in `docs/sinks/archive.md`.

mod config;
mod error;
pub mod layout;
pub mod parquet;
mod read;
mod rehydrate;
mod sink;
mod store;
mod upload;
mod verify;

pub use config::{
    Addressing, ArchiveConfig, Location, LockMode, ObjectLock, ParquetSettings, S3Settings, Secret,
    UploadSettings,
};
pub use parquet::{EncodedObject, arrow_schema, encode_events};
pub use read::{Decoded, decode_object};
pub use rehydrate::RehydrateReport;
pub use sink::{ParquetArchive, RelocateReport};
pub use store::build_store;
pub use verify::{Finding, VerifyReport, verify, verify_streams};

/// The `object_store` crate this archive is built on, for callers that pass their own store.
pub use object_store;
