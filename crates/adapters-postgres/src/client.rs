//! The connection pool, and the one place that turns connection failures into messages that
//! name the setting to fix.

use std::sync::Arc;

use cflogs_core::Result;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::checkpoint::PostgresCheckpointStore;
use crate::config::{PostgresConfig, TimescaleConfig};
use crate::error::PgError;
use crate::schema::{self, SchemaReport, TimescaleStatus};
use crate::sink::PostgresSink;

/// A connection pool to one PostgreSQL database, from which the sink and the checkpoint store
/// are made. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PostgresClient {
    pool: PgPool,
    timescale: Arc<TimescaleConfig>,
    write_parallelism: usize,
    schema: Option<SchemaReport>,
}

impl PostgresClient {
    /// Connects, and unless [`PostgresConfig::with_migrate_on_start`] turned it off, applies
    /// the migrations and the TimescaleDB setup.
    ///
    /// One connection is opened first, directly, so that a failure says what to fix.
    ///
    /// # Errors
    /// - [`Error::Transient`](cflogs_core::Error::Transient) when the server cannot be reached
    ///   (naming `PG_HOST`/`PG_PORT` or `DATABASE_URL`);
    /// - [`Error::Fatal`](cflogs_core::Error::Fatal) for rejected credentials (naming
    ///   `PG_USER`/`PG_PASSWORD`), a missing database (naming `PG_DATABASE`), a server older
    ///   than PostgreSQL 13, a failed migration, or `TIMESCALEDB=require` without the extension.
    pub async fn connect(config: &PostgresConfig) -> Result<Self> {
        let options = config.connect_options().clone();
        let first = tokio::time::timeout(config.connect_timeout(), options.connect())
            .await
            .map_err(|_| PgError::from_connect(config, sqlx::Error::PoolTimedOut))?
            .map_err(|e| PgError::from_connect(config, e))?;
        let _ = PgConnection::close(first).await;

        let stall_ms = config.stall_limit().as_millis();
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size())
            .acquire_timeout(config.connect_timeout())
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Room for a batch in the session's staging table, so it is not written to
                    // temporary files (the default is 8 MB; settable only before first use).
                    conn.execute("SET temp_buffers = '32MB'").await?;
                    // A frozen process's transaction ends after this, and its locks with it.
                    conn.execute(
                        format!("SET idle_in_transaction_session_timeout = {stall_ms}").as_str(),
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let mut client = Self {
            pool,
            timescale: Arc::new(config.timescale().clone()),
            write_parallelism: config.write_parallelism() as usize,
            schema: None,
        };
        if config.migrate_on_start() {
            client.schema = Some(client.migrate().await?);
        }
        Ok(client)
    }

    /// Applies the embedded migrations (idempotent; concurrent callers wait on an advisory
    /// lock) and the TimescaleDB setup: what `cflogs migrate` runs.
    ///
    /// # Errors
    /// See [`PostgresClient::connect`].
    pub async fn migrate(&self) -> Result<SchemaReport> {
        Ok(schema::prepare(&self.pool, &self.timescale).await?)
    }

    /// What the migration at connect found, when it ran.
    pub fn schema(&self) -> Option<&SchemaReport> {
        self.schema.as_ref()
    }

    /// The pool, for services that run their own queries.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The analytics sink writing to this database, with the configured write parallelism;
    /// the tables it creates are hypertables when the migration at connect found TimescaleDB
    /// usable.
    pub fn sink(&self) -> PostgresSink {
        let sink = PostgresSink::new(self.pool.clone()).with_parallelism(self.write_parallelism);
        match self.schema.as_ref().map(|s| &s.timescale) {
            Some(TimescaleStatus::Enabled { .. }) => sink.with_timescale(self.timescale.clone()),
            _ => sink,
        }
    }

    /// The checkpoint store in this database.
    pub fn checkpoint_store(&self) -> PostgresCheckpointStore {
        PostgresCheckpointStore::new(self.pool.clone())
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
