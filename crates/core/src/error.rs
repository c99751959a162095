//! The error type shared by the ports and the pipeline.
//!
//! The variants are the ones the algorithm branches on: a [`Error::Conflict`] means another
//! instance holds the stream (this one is a zombie and must stop), a [`Error::Transient`] means
//! the cycle can be retried, a [`Error::Fatal`] needs an operator. Adapters translate their own
//! errors into these at the boundary.

use crate::domain::StreamId;

/// A boxed error from an adapter, kept as the `source` of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the core [`Error`] as its default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a port call or in the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value failed validation when it was constructed (a stream id, a window, a policy…).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The kind of value, e.g. `"stream id"`.
        what: &'static str,
        /// Why it was rejected, naming the fix where there is one.
        reason: String,
    },
    /// A compare-and-set failed: the stored `(seq, epoch)` is not the expected one. Another
    /// instance holds the stream's lease or has committed in between; this instance must stop.
    #[error("conflict on stream {stream}: {detail}")]
    Conflict {
        /// The stream whose checkpoint moved.
        stream: StreamId,
        /// What was expected and what was found.
        detail: String,
    },
    /// A failure that may succeed if the cycle is retried (network, timeout, 5xx, a COMMIT whose
    /// outcome is unknown). The pipeline reloads its state before the next attempt.
    #[error("transient failure in {context}")]
    Transient {
        /// Where it happened, e.g. `"analytics write"`.
        context: String,
        /// The adapter's error.
        #[source]
        source: BoxError,
    },
    /// A failure retrying cannot fix (bad credentials, missing permission, corrupted state, a
    /// broken adapter contract). The stream stops and says why.
    #[error("fatal failure in {context}")]
    Fatal {
        /// Where it happened.
        context: String,
        /// The adapter's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A validation error for `what`, with a reason that names the fix.
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// A transient error in `context`, wrapping `source`.
    pub fn transient(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Transient {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A fatal error in `context`, wrapping `source`.
    pub fn fatal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Fatal {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A conflict on `stream`.
    pub fn conflict(stream: &StreamId, detail: impl Into<String>) -> Self {
        Self::Conflict {
            stream: stream.clone(),
            detail: detail.into(),
        }
    }

    /// Whether retrying the cycle may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// Whether this instance has been fenced off its stream.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

/// An error and all its sources on one line, `outer: inner: innermost`: how logs and the
/// binary show errors, so the cause is never cut off.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
