//! This crate's errors, and their translation into the core's [`Error`] at the port boundary.
//!
//! sqlx errors are classified by what a retry can do: connection losses, timeouts, serialization
//! failures and deadlocks are transient; bad credentials, a missing database or schema, and
//! data PostgreSQL refuses are fatal. Connection failures at start name the setting to fix.

use std::io;

use cflogs_core::{Error, StreamId};

use crate::config::PostgresConfig;

/// What went wrong inside the PostgreSQL adapter. Converted into the core [`Error`] (as its
/// `source`) before it leaves the crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum PgError {
    /// The server cannot be reached (refused, unknown host, timeout).
    #[error(
        "cannot reach PostgreSQL at {endpoint}: {reason}; check {settings}, and that the server is running"
    )]
    Unreachable {
        endpoint: String,
        reason: String,
        settings: &'static str,
    },
    /// The server refused the user or the password.
    #[error("PostgreSQL at {endpoint} rejected user {user:?}: {reason}; check {settings}")]
    BadCredentials {
        endpoint: String,
        user: String,
        reason: String,
        settings: &'static str,
    },
    /// The database does not exist on the server.
    #[error(
        "database {database:?} does not exist on PostgreSQL at {endpoint}; check {setting}, or create it (createdb {database})"
    )]
    MissingDatabase {
        endpoint: String,
        database: String,
        setting: &'static str,
    },
    /// TLS could not be set up.
    #[error(
        "TLS to PostgreSQL at {endpoint} failed: {reason}; check PG_SSLMODE (or sslmode in DATABASE_URL)"
    )]
    Tls { endpoint: String, reason: String },
    /// The server is older than PostgreSQL 13.
    #[error("PostgreSQL {version} is too old: cflogs needs PostgreSQL 13 or later")]
    ServerTooOld { version: String },
    /// TimescaleDB was required but cannot be used.
    #[error("TIMESCALEDB=require, but {reason}")]
    TimescaleRequired { reason: String },
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
    /// A number does not fit PostgreSQL's BIGINT.
    #[error("{what} {value} does not fit in a BIGINT column")]
    OutOfRange { what: &'static str, value: u64 },
}

/// How a sqlx error should be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// Retrying the cycle may help.
    Transient,
    /// It will not go away by itself.
    Fatal,
}

/// SQLSTATE of an error from the server, if it is one.
pub(crate) fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Whether retrying may fix `error`.
pub(crate) fn classify(error: &sqlx::Error) -> Disposition {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Disposition::Transient,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // Connection exceptions, serialization failures and deadlocks, lack of resources,
            // operator intervention (shutdown, crash recovery, statement timeout), lock timeout.
            Some(code)
                if code.starts_with("08")
                    || code.starts_with("40")
                    || code.starts_with("53")
                    || code.starts_with("57")
                    || code == "55P03" =>
            {
                Disposition::Transient
            }
            _ => Disposition::Fatal,
        },
        _ => Disposition::Fatal,
    }
}

impl PgError {
    pub(crate) fn sql(context: &'static str, source: sqlx::Error) -> Self {
        Self::Sql { context, source }
    }

    /// Turns an error from the first connection into one that names the setting to fix.
    pub(crate) fn from_connect(config: &PostgresConfig, error: sqlx::Error) -> Self {
        let endpoint = format!("{}:{}", config.host(), config.port());
        let origin = config.origin();
        let unreachable = |reason: String| Self::Unreachable {
            endpoint: endpoint.clone(),
            reason,
            settings: origin.server_settings(),
        };
        match &error {
            sqlx::Error::Io(e) => unreachable(match e.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                io::ErrorKind::TimedOut => "connection timed out".to_owned(),
                _ => e.to_string(),
            }),
            sqlx::Error::PoolTimedOut => unreachable(format!(
                "no connection within the connect timeout ({} s)",
                config.connect_timeout().as_secs()
            )),
            sqlx::Error::Tls(e) => Self::Tls {
                endpoint,
                reason: e.to_string(),
            },
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // invalid_authorization_specification, invalid_password
                Some(code) if code.starts_with("28") => Self::BadCredentials {
                    endpoint,
                    user: config.user().to_owned(),
                    reason: db.message().to_owned(),
                    settings: origin.credential_settings(),
                },
                // invalid_catalog_name
                Some("3D000") => Self::MissingDatabase {
                    endpoint,
                    database: config.database().to_owned(),
                    setting: origin.database_setting(),
                },
                _ => Self::sql("connecting to PostgreSQL", error),
            },
            _ => Self::sql("connecting to PostgreSQL", error),
        }
    }

    fn context(&self) -> &'static str {
        match self {
            Self::Unreachable { .. }
            | Self::BadCredentials { .. }
            | Self::MissingDatabase { .. }
            | Self::Tls { .. } => "connecting to PostgreSQL",
            Self::ServerTooOld { .. } | Self::TimescaleRequired { .. } | Self::Migrate(_) => {
                "preparing the PostgreSQL schema"
            }
            Self::Sql { context, .. } => context,
            Self::CorruptCheckpoint { .. } => "reading a checkpoint from PostgreSQL",
            Self::OutOfRange { .. } => "writing a checkpoint to PostgreSQL",
        }
    }
}

impl From<PgError> for Error {
    fn from(error: PgError) -> Self {
        let context = error.context().to_owned();
        match &error {
            PgError::Sql { source, .. } if classify(source) == Disposition::Transient => {
                Error::transient(context, error)
            }
            PgError::Migrate(sqlx::migrate::MigrateError::Execute(source))
                if classify(source) == Disposition::Transient =>
            {
                Error::transient(context, error)
            }
            PgError::Unreachable { .. } => Error::transient(context, error),
            _ => Error::fatal(context, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_and_timeouts_are_transient() {
        let io = sqlx::Error::Io(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
        assert_eq!(classify(&io), Disposition::Transient);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Disposition::Transient);
        assert_eq!(classify(&sqlx::Error::RowNotFound), Disposition::Fatal);
        let core: Error = PgError::sql("x", io).into();
        assert!(core.is_transient());
        let core: Error = PgError::ServerTooOld {
            version: "12.1".into(),
        }
        .into();
        assert!(matches!(core, Error::Fatal { .. }));
    }
}
