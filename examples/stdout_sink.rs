//! Embedding the core: one of our sources, a sink of your own, exactly once.
//!
//! `cargo run -p cflogs-examples --example stdout_sink` prints each audit event as one line of
//! JSON on stdout and archives the same events as Parquet under a temporary directory. It reads
//! an in-process Cloudflare simulator; point `base_url` and the token at the real API instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cflogs_cloudflare::{AccountId, AuditApi, AuditLogSource, AuditSourceConfig};
use cflogs_cloudflare::{ClientConfig, CloudflareClient, Credentials};
use cflogs_core::testing::MemoryCheckpointStore;
use cflogs_core::{AnalyticsSink, Batch, Pipeline, Policy, Secret, SystemClock};
use cflogs_core::{Result, WriteReport};
use cflogs_s3::{ArchiveConfig, ParquetArchive};

/// Your sink: here, stdout. The pipeline calls it before each commit; it must be idempotent per
/// event id (a retried batch comes again), which printing is not, so a real one upserts.
struct StdoutSink;

#[async_trait]
impl AnalyticsSink for StdoutSink {
    async fn write(&self, batch: &Batch) -> Result<WriteReport> {
        for event in &batch.events {
            println!("{}", String::from_utf8_lossy(&event.raw));
        }
        for record in &batch.quarantined {
            eprintln!(
                "quarantined ({}): {} bytes",
                record.reason,
                record.raw.len()
            );
        }
        Ok(WriteReport {
            inserted: batch.events.len() as u64,
            duplicates: 0,
            quarantined: batch.quarantined.len() as u64,
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = chrono::Utc::now();
    let sim = cflogs_sim::Simulator::builder()
        .account("acc1")
        .token("example-token")
        .span(now - chrono::Duration::hours(1), now, 200)
        .build()?
        .spawn()
        .await?;
    let mut client = ClientConfig::new(Credentials::Token(Secret::new("example-token")));
    client.base_url = sim.base_url();
    let client = Arc::new(CloudflareClient::new(client)?);
    let account = AuditSourceConfig::new(AccountId::new("acc1")?, AuditApi::V1);
    let source = Arc::new(AuditLogSource::new(client, account)).into_event_source();

    let dir = std::env::temp_dir().join(format!("cflogs-example-{}", std::process::id()));
    let archive = Arc::new(ParquetArchive::open(&ArchiveConfig::file(&dir))?);
    let mut policy = Policy::new(now - chrono::Duration::hours(1));
    policy.settle_delay = Duration::ZERO;
    let mut pipeline = Pipeline::new(
        source,
        Arc::new(MemoryCheckpointStore::new()),
        Arc::new(StdoutSink),
        archive,
        Arc::new(SystemClock),
        policy,
    )?;
    // Catch up; a service would call `pipeline.run(shutdown)` instead.
    while pipeline.run_once().await?.has_backlog() {}
    eprintln!("archive: {}", dir.display());
    Ok(())
}
