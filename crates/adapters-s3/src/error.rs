//! The crate's own errors, translated into the core [`Error`] at the port boundary.
//!
//! Object-store "not found" and "precondition" outcomes are not errors of the archive: the sink
//! handles them where they carry meaning (a staged object already published, a final object
//! missing). What remains is classified here: network failures and server errors are worth a
//! retry ([`Error::Transient`]); bad credentials, missing permissions, an unsupported store or a
//! broken encoder are not ([`Error::Fatal`]).

use cflogs_core::Error;

/// What went wrong inside the archive adapter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ArchiveError {
    /// An object-store call failed.
    #[error("object store {op} {key}")]
    Store {
        /// The operation, e.g. `"put"`.
        op: &'static str,
        /// The key it was about.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// Encoding Parquet failed (a bug or an impossible value, never the network).
    #[error("parquet encoding")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building Arrow arrays failed.
    #[error("arrow encoding")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Something the archive refuses to write or read.
    #[error("{0}")]
    Refused(String),
}

impl ArchiveError {
    pub(crate) fn store(
        op: &'static str,
        key: impl Into<String>,
        source: object_store::Error,
    ) -> Self {
        Self::Store {
            op,
            key: key.into(),
            source,
        }
    }

    /// Whether a retry may help.
    fn is_transient(&self) -> bool {
        match self {
            Self::Store { source, .. } => is_transient(source),
            Self::Parquet(_) | Self::Arrow(_) | Self::Refused(_) => false,
        }
    }

    /// The core error for a failure in `context`.
    pub(crate) fn into_core(self, context: &str) -> Error {
        if self.is_transient() {
            Error::transient(context, self)
        } else {
            Error::fatal(context, self)
        }
    }
}

/// Network errors, timeouts, 5xx and throttling (after the store's own retries) are transient;
/// authentication, permissions, invalid paths and unsupported operations are not.
pub(crate) fn is_transient(error: &object_store::Error) -> bool {
    use object_store::Error as E;
    match error {
        E::Generic { .. } | E::JoinError { .. } => true,
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. } => false,
        // NotFound, AlreadyExists, Precondition, NotModified reach here only where the caller
        // did not expect them: the state changed under us, a retry after reloading may help.
        _ => true,
    }
}

pub(crate) type Result<T, E = ArchiveError> = std::result::Result<T, E>;
