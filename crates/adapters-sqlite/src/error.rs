//! This crate's errors, and their translation into the core's [`Error`] at the port boundary.
//!
//! A busy or locked database (another process holds the write lock past the busy timeout) and
//! I/O errors are transient; a file that cannot be opened, is read-only, is not a database or
//! is corrupt is fatal. Failing to open it names `CFLOGS_SQLITE_PATH`; a later failure names
//! the statement's context.

use std::path::PathBuf;

use cflogs_core::{Error, StreamId};

/// What went wrong inside the SQLite adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SqliteError {
    /// The file cannot be opened or is not a usable database.
    #[error(
        "cannot use the SQLite database {path}: {source}; check CFLOGS_SQLITE_PATH (the directory must exist and be writable)"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("schema migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("{context}: {source}")]
    Sql {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored checkpoint cannot be read back.
    #[error("stored checkpoint of {stream} is unreadable: {reason}")]
    CorruptCheckpoint { stream: StreamId, reason: String },
    /// A number does not fit SQLite's 64-bit integers.
    #[error("{what} {value} does not fit in a 64-bit signed integer")]
    OutOfRange { what: &'static str, value: u64 },
}

/// The primary SQLite result code of `error`, if it is one.
fn primary_code(error: &sqlx::Error) -> Option<i64> {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff),
        _ => None,
    }
}

/// Whether retrying may fix `error`.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_PROTOCOL
        _ => matches!(primary_code(error), Some(5 | 6 | 10 | 13 | 15)),
    }
}

impl SqliteError {
    pub(crate) fn sql(context: &'static str, source: sqlx::Error) -> Self {
        Self::Sql { context, source }
    }

    fn context(&self) -> &'static str {
        match self {
            Self::Open { .. } | Self::Migrate(_) => "opening the SQLite database",
            Self::Sql { context, .. } => context,
            Self::CorruptCheckpoint { .. } => "reading a checkpoint from SQLite",
            Self::OutOfRange { .. } => "writing a checkpoint to SQLite",
        }
    }
}

impl From<SqliteError> for Error {
    fn from(error: SqliteError) -> Self {
        let context = error.context().to_owned();
        let transient = match &error {
            SqliteError::Sql { source, .. } => is_transient(source),
            SqliteError::Migrate(sqlx::migrate::MigrateError::Execute(source)) => {
                is_transient(source)
            }
            _ => false,
        };
        if transient {
            Error::transient(context, error)
        } else {
            Error::fatal(context, error)
        }
    }
}
