//! Errors of the Cloudflare adapter, and their translation into the core's port errors.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to Cloudflare. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid; the message names it and the fix.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Cloudflare rejected the credentials (HTTP 401, or 403 with an authentication error).
    #[error(
        "cloudflare rejected the credentials (HTTP {status}: {message}); check \
         CLOUDFLARE_API_TOKEN (or CLOUDFLARE_API_EMAIL and CLOUDFLARE_API_KEY)"
    )]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// Cloudflare's error codes and messages.
        message: String,
    },
    /// The credentials are valid but lack a permission.
    #[error(
        "the API token may not read {what} (HTTP {status}: {message}); give the token the \
         \"{permission}\" permission for this account, and check the account id"
    )]
    Forbidden {
        /// What was being read.
        what: String,
        /// The permission that is needed.
        permission: &'static str,
        /// The HTTP status.
        status: u16,
        /// Cloudflare's error codes and messages.
        message: String,
    },
    /// Cloudflare refused the request as malformed (HTTP 400).
    #[error("cloudflare answered HTTP 400 for {path}: {message}")]
    BadRequest {
        /// The path asked for (no query, no credentials).
        path: String,
        /// Cloudflare's error codes and messages.
        message: String,
    },
    /// Another HTTP error that retrying does not fix.
    #[error("cloudflare answered HTTP {status} for {path}: {message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The path asked for.
        path: String,
        /// Cloudflare's error codes and messages, or the start of the body.
        message: String,
    },
    /// A 200 answer whose envelope says `success: false`.
    #[error("cloudflare reported an error for {path}: {message}")]
    Api {
        /// The path asked for.
        path: String,
        /// Cloudflare's error codes and messages.
        message: String,
    },
    /// A response larger than the configured bound.
    #[error("the response for {path} exceeds {limit} bytes; lower the page size")]
    BodyTooLarge {
        /// The path asked for.
        path: String,
        /// The bound in bytes.
        limit: usize,
    },
    /// Every retry failed on a transient problem.
    #[error("{path} still failed after {attempts} attempts: {last}")]
    Exhausted {
        /// The path asked for.
        path: String,
        /// Attempts made.
        attempts: u32,
        /// The last problem.
        last: String,
    },
}

impl From<Error> for cflogs_core::Error {
    fn from(e: Error) -> Self {
        match e {
            // 429 and 5xx are retried by the client and arrive here as Exhausted.
            Error::Exhausted { .. } => cflogs_core::Error::transient("cloudflare request", e),
            other => cflogs_core::Error::fatal("cloudflare request", other),
        }
    }
}
