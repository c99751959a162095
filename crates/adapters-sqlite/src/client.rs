//! The database file: one writer connection (SQLite allows one writer at a time; one
//! connection makes that a queue in this process instead of lock contention), a few readers,
//! WAL mode so readers never block the writer, and the embedded migrations.

use cflogs_core::Result;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::checkpoint::SqliteCheckpointStore;
use crate::config::{Durability, SqliteConfig};
use crate::error::SqliteError;
use crate::sink::SqliteSink;

/// The embedded migrations.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// An open cflogs database file, from which the sink and the checkpoint store are made.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteClient {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteClient {
    /// Opens (creating it when missing) the database file, switches it to WAL mode and applies
    /// the migrations.
    ///
    /// # Errors
    /// [`Error::Fatal`](cflogs_core::Error::Fatal) naming `CFLOGS_SQLITE_PATH` when the file
    /// cannot be created or opened or is not a database; a failed migration.
    pub async fn open(config: &SqliteConfig) -> Result<Self> {
        let base = SqliteConnectOptions::new()
            .filename(config.path())
            .busy_timeout(config.busy_timeout())
            .foreign_keys(false);
        let writer_options = base
            .clone()
            .create_if_missing(true)
            // Keeps the indexes of a growing table in memory: SQLite's default is 2 MiB.
            .pragma("cache_size", format!("-{}", config.writer_cache_kib()))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match config.durability() {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            });
        let open_error = |source| SqliteError::Open {
            path: config.path().to_owned(),
            source,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_options)
            .await
            .map_err(open_error)?;
        MIGRATOR.run(&writer).await.map_err(SqliteError::from)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(config.read_connections())
            .connect_with(base)
            .await
            .map_err(open_error)?;
        Ok(Self { writer, readers })
    }

    /// The writer pool (one connection), for services that run their own statements.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The reader pool, for queries.
    pub fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// The analytics sink writing to this file.
    pub fn sink(&self) -> SqliteSink {
        SqliteSink::new(self.writer.clone())
    }

    /// The checkpoint store in this file.
    pub fn checkpoint_store(&self) -> SqliteCheckpointStore {
        SqliteCheckpointStore::new(self.writer.clone(), self.readers.clone())
    }

    /// Closes every connection (checkpointing the WAL into the main file).
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}
