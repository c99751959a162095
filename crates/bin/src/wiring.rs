//! Builds the adapters a configuration names and injects them into pipelines: the one place
//! that knows concrete adapter types. Commands see streams as `Arc<dyn EventSource>`.

use std::sync::Arc;

use anyhow::{Context, Result};
use cflogs_cloudflare::{AuditLogSource, CloudflareClient};
use cflogs_core::{
    AnalyticsSink, ArchiveSink, CheckpointStore, Claim, Clock, EventSource, Pipeline, Policy,
    StreamId, SystemClock,
};
use cflogs_s3::ParquetArchive;
use tracing::info;

use crate::config::{Analytics, Config, SourceConfig, StreamConfig};

/// One configured stream: its source and its policy.
#[derive(Clone)]
pub struct Stream {
    /// The source, behind the port.
    pub source: Arc<dyn EventSource>,
    /// The stream's policy.
    pub policy: Policy,
}

impl Stream {
    /// The stream's id.
    pub fn id(&self) -> &StreamId {
        self.source.stream()
    }
}

/// The source a stream's configuration names (the registry of source kinds).
fn source(config: &StreamConfig, cloudflare: &Arc<CloudflareClient>) -> Arc<dyn EventSource> {
    match &config.source {
        SourceConfig::Audit(audit) => {
            Arc::new(AuditLogSource::new(cloudflare.clone(), audit.clone())).into_event_source()
        }
    }
}

/// The stores of one process: what `verify` and `rehydrate` need, and no more.
pub struct Storage {
    /// Checkpoints and leases.
    pub store: Arc<dyn CheckpointStore>,
    /// The queryable store.
    pub analytics: Arc<dyn AnalyticsSink>,
    /// The archive.
    pub archive: Arc<ParquetArchive>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The SQLite database, when it is the embedded default.
    pub sqlite: Option<cflogs_sqlite::SqliteClient>,
}

impl Storage {
    /// Connects to the database and the archive `config` names; applies migrations. Needs
    /// no Cloudflare settings.
    ///
    /// # Errors
    /// The first adapter that cannot be built or reached, saying what to fix.
    pub async fn connect(config: &Config) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (store, analytics, sqlite): (Arc<dyn CheckpointStore>, Arc<dyn AnalyticsSink>, _) =
            match &config.analytics {
                Analytics::Postgres(pg) => {
                    let client = cflogs_postgres::PostgresClient::connect(pg)
                        .await
                        .context("cannot use PostgreSQL")?;
                    info!(endpoint = %pg.endpoint(), "analytics and checkpoints: PostgreSQL");
                    (
                        Arc::new(client.checkpoint_store()),
                        Arc::new(client.sink()),
                        None,
                    )
                }
                Analytics::Sqlite(lite) => {
                    let client = open_sqlite(lite).await?;
                    info!(path = %lite.path().display(), "analytics and checkpoints: SQLite (embedded default; set DATABASE_URL for PostgreSQL)");
                    (
                        Arc::new(client.checkpoint_store()),
                        Arc::new(client.sink()),
                        Some(client),
                    )
                }
            };
        let archive = ParquetArchive::open(&config.archive)
            .context("cannot open the archive")?
            .with_clock(clock.clone());
        info!(archive = %config.archive.describe(), "archive");
        Ok(Self {
            store,
            analytics,
            archive: Arc::new(archive),
            clock,
            sqlite,
        })
    }

    /// Every stream of `configured` and every stream the archive holds, configured or not
    /// (a stream dropped from the configuration keeps its history), sorted, each once.
    ///
    /// # Errors
    /// The archive cannot be listed.
    pub async fn all_streams(&self, configured: &[StreamId]) -> Result<Vec<StreamId>> {
        all_streams(&self.archive, configured).await
    }

    /// The archive check of each of `streams`, against the chain head of its checkpoint,
    /// listing the archive once.
    ///
    /// # Errors
    /// The store or the archive cannot be read.
    pub async fn verify(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<(StreamId, cflogs_s3::VerifyReport)>> {
        let mut heads = Vec::with_capacity(streams.len());
        for stream in streams {
            let head = self.store.load(stream).await?.map(|cp| cp.chain_head);
            heads.push((stream.clone(), head));
        }
        let reports = self.archive.verify_streams(&heads).await?;
        Ok(streams.iter().cloned().zip(reports).collect())
    }
}

/// The adapters of one process, shared by its streams.
pub struct Wired {
    /// The database and the archive.
    pub storage: Storage,
    /// The Cloudflare client (one token), shared by every Cloudflare stream.
    pub client: Arc<CloudflareClient>,
    /// Every configured stream.
    pub streams: Vec<Stream>,
}

impl Wired {
    /// Connects to everything `config` names; applies migrations.
    ///
    /// # Errors
    /// A Cloudflare setting missing or invalid, or the first adapter that cannot be built
    /// or reached, saying what to fix.
    pub async fn connect(config: &Config) -> Result<Self> {
        let cloudflare = config.cloudflare()?;
        let storage = Storage::connect(config).await?;
        let client = Arc::new(CloudflareClient::new(cloudflare.client.clone())?);
        let streams = cloudflare
            .streams
            .iter()
            .map(|s| Stream {
                source: source(s, &client),
                policy: s.policy.clone(),
            })
            .collect();
        Ok(Self {
            storage,
            client,
            streams,
        })
    }

    /// A pipeline for `stream` with `policy`, taking the stream with `claim`.
    ///
    /// # Errors
    /// An invalid policy.
    pub fn pipeline(&self, stream: &Stream, policy: Policy, claim: Claim) -> Result<Pipeline> {
        Ok(Pipeline::new(
            stream.source.clone(),
            self.storage.store.clone(),
            self.storage.analytics.clone(),
            self.storage.archive.clone() as Arc<dyn ArchiveSink>,
            self.storage.clock.clone(),
            policy,
        )?
        .with_claim(claim))
    }
}

/// Every stream of `configured` and every stream `archive` holds, sorted, each once.
///
/// # Errors
/// The archive cannot be listed.
pub async fn all_streams(
    archive: &ParquetArchive,
    configured: &[StreamId],
) -> Result<Vec<StreamId>> {
    let mut streams = archive.streams().await?;
    streams.extend(configured.iter().cloned());
    streams.sort();
    streams.dedup();
    Ok(streams)
}

/// Opens (creating it and its directory if missing) the SQLite file of `lite`: the embedded
/// default lives under `CFLOGS_DATA_DIR`, which need not exist yet.
pub async fn open_sqlite(
    lite: &cflogs_sqlite::SqliteConfig,
) -> Result<cflogs_sqlite::SqliteClient> {
    if let Some(dir) = lite.path().parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    cflogs_sqlite::SqliteClient::open(lite)
        .await
        .with_context(|| format!("cannot open SQLite at {}", lite.path().display()))
}
