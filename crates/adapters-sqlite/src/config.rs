//! Where the database file is and how it is opened.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How hard each commit waits for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: a commit is on disk when it returns, as the `AnalyticsSink` and
    /// `CheckpointStore` contracts require.
    #[default]
    Full,
    /// `synchronous = NORMAL`: in WAL mode the database stays consistent, but the last commits
    /// may be lost on a power failure. Faster; for throwaway runs only.
    Normal,
}

/// Settings of the SQLite adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteConfig {
    path: PathBuf,
    busy_timeout: Duration,
    read_connections: u32,
    durability: Durability,
    writer_cache_kib: u32,
}

impl SqliteConfig {
    /// The database in the file at `path` (created when missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            busy_timeout: Duration::from_secs(5),
            read_connections: 2,
            durability: Durability::Full,
            writer_cache_kib: 64 * 1024,
        }
    }

    /// How long a writer waits for another process' lock before the write fails as transient
    /// (default 5 s).
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Connections for reads (`load`), besides the one writer (default 2, at least 1).
    #[must_use]
    pub fn with_read_connections(mut self, connections: u32) -> Self {
        self.read_connections = connections.max(1);
        self
    }

    /// How commits wait for the disk (default [`Durability::Full`]).
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Page cache of the writer connection, in KiB (default 64 MiB; SQLite's own default is
    /// 2 MiB, which makes index updates read from disk once the table outgrows it).
    #[must_use]
    pub fn with_writer_cache_kib(mut self, kib: u32) -> Self {
        self.writer_cache_kib = kib.max(1024);
        self
    }

    /// Page cache of the writer connection, in KiB.
    pub fn writer_cache_kib(&self) -> u32 {
        self.writer_cache_kib
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The busy timeout.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// Read connections.
    pub fn read_connections(&self) -> u32 {
        self.read_connections
    }

    /// Commit durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_keeps_the_path_and_the_settings() {
        let config = SqliteConfig::new("/tmp/x.db")
            .with_busy_timeout(Duration::from_secs(9))
            .with_read_connections(3);
        assert_eq!(config.path(), Path::new("/tmp/x.db"));
        assert_eq!(config.busy_timeout(), Duration::from_secs(9));
        assert_eq!(config.read_connections(), 3);
    }
}
