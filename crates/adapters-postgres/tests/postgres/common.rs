//! A fresh database per test from the integration harness (`cflogs-integration`: the server
//! named by `CFLOGS_TEST_DATABASE_URL`, or TimescaleDB in a container), a probe that reads back
//! what the sink stored, and a TCP proxy that cuts a connection at `COMMIT`.

use std::io::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use async_trait::async_trait;
use cflogs_core::testing::conformance::AnalyticsProbe;
use cflogs_core::{DatasetSchema, EventId, Result, StreamId};
use cflogs_integration::TestDatabase;
use cflogs_postgres::{PgPool, PgSslMode, PostgresClient, PostgresConfig, Secret};
use sqlx::postgres::PgConnectOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Writes a line to the real stderr, past the test harness' capture, so it shows in every run.
pub fn report(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// A database created for one test by the integration harness, and dropped when it ends (also
/// on panic), with the adapter's settings for it.
pub struct TestDb {
    pub name: String,
    pub config: PostgresConfig,
    admin: PgConnectOptions,
    _db: TestDatabase,
}

impl TestDb {
    pub async fn new() -> Self {
        let db = TestDatabase::new().await;
        let admin = PgConnectOptions::from_str(db.admin_url()).expect("admin url");
        let config = PostgresConfig::from_url(&Secret::new(db.url())).expect("database url");
        Self {
            name: db.name().to_owned(),
            config,
            admin,
            _db: db,
        }
    }

    pub async fn client(&self) -> PostgresClient {
        PostgresClient::connect(&self.config)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test database: {e:?}"))
    }

    pub fn admin(&self) -> &PgConnectOptions {
        &self.admin
    }
}

/// Reads the sink's tables.
pub struct Probe(pub PgPool);

#[async_trait]
impl AnalyticsProbe for Probe {
    async fn event_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT event_id FROM audit_logs WHERE stream = $1 \
             UNION ALL SELECT event_id FROM raw_events WHERE stream = $1",
        )
        .bind(stream.as_str())
        .fetch_all(&self.0)
        .await
        .map_err(|e| cflogs_core::Error::fatal("probe", e))?;
        rows.into_iter().map(|(id,)| EventId::new(id)).collect()
    }

    async fn rows(
        &self,
        stream: &StreamId,
        schema: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        // The row as one JSON object (to_jsonb: timestamps in ISO 8601, addresses as text,
        // jsonb as documents), so nothing here repeats the sink's column handling.
        let table = schema.table_name()?;
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT event_id, to_jsonb(t)::text FROM \"{table}\" t WHERE stream = $1"
        ))
        .bind(stream.as_str())
        .fetch_all(&self.0)
        .await
        .map_err(|e| cflogs_core::Error::fatal("probe", e))?;
        rows.into_iter()
            .map(|(id, row)| {
                let mut row: serde_json::Value = serde_json::from_str(&row)
                    .map_err(|e| cflogs_core::Error::fatal("probe", e))?;
                let values = schema
                    .columns()
                    .iter()
                    .map(|c| row[c.name()].take())
                    .collect();
                Ok((EventId::new(id)?, values))
            })
            .collect()
    }

    async fn quarantine_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT quarantine_id FROM quarantine WHERE stream = $1")
                .bind(stream.as_str())
                .fetch_all(&self.0)
                .await
                .map_err(|e| cflogs_core::Error::fatal("probe", e))?;
        rows.into_iter().map(|(id,)| EventId::new(id)).collect()
    }
}

/// What the proxy does when it sees the client send `COMMIT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cut {
    /// Pass everything.
    Never = 0,
    /// Forward the COMMIT to the server (it applies), then drop the connection before the
    /// answer reaches the client: the outcome is unknown to the client, and it was applied.
    AfterCommitSent = 1,
    /// Drop the connection instead of forwarding the COMMIT: unknown to the client, and the
    /// server rolls back.
    BeforeCommitSent = 2,
}

/// A TCP proxy in front of the test server (plain TCP: use `sslmode=disable` through it).
pub struct CommitCutter {
    pub port: u16,
    mode: Arc<AtomicU8>,
}

impl CommitCutter {
    pub async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mode = Arc::new(AtomicU8::new(Cut::Never as u8));
        let shared = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)).await else {
                    continue;
                };
                tokio::spawn(pump(client, server, shared.clone()));
            }
        });
        Self { port, mode }
    }

    pub fn arm(&self, cut: Cut) {
        self.mode.store(cut as u8, Ordering::SeqCst);
    }
}

async fn pump(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_down = cut.clone();
    let down = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut_down.load(Ordering::SeqCst) {
                // Drop the answer: the client never learns the outcome.
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let is_commit = chunk.windows(7).any(|w| w == b"COMMIT\0");
        let armed = mode.load(Ordering::SeqCst);
        if is_commit && armed != Cut::Never as u8 {
            mode.store(Cut::Never as u8, Ordering::SeqCst);
            cut.store(true, Ordering::SeqCst);
            if armed == Cut::AfterCommitSent as u8 {
                let _ = server_write.write_all(chunk).await;
                // Let the server apply it before the connection goes.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            break;
        }
        if server_write.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = server_write.shutdown().await;
    drop(server_write);
    let _ = down.await;
}

/// The test server's host and port.
pub fn upstream(db: &TestDb) -> (String, u16) {
    (db.admin().get_host().to_owned(), db.admin().get_port())
}

/// The test database's settings, through the proxy, without TLS.
pub fn through(db: &TestDb, proxy: &CommitCutter) -> PostgresConfig {
    db.config
        .clone()
        .with_server("127.0.0.1", proxy.port)
        .with_ssl_mode(PgSslMode::Disable)
}
