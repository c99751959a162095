//! Connection and schema settings: a URL or the `PG_*` parts users of the Python tool already
//! have, pool size, timeouts and the TimescaleDB policies.
//!
//! The password never appears in `Debug` output, error messages or logs: it is kept in a
//! [`Secret`], and a `DATABASE_URL` is shown with its password replaced by `***`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cflogs_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

pub use cflogs_core::Secret;

/// Where the connection settings came from, so an error can name the setting to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsOrigin {
    /// A connection URL (`DATABASE_URL`).
    Url,
    /// Separate settings (`PG_HOST`, `PG_PORT`, `PG_DATABASE`, `PG_USER`, `PG_PASSWORD`).
    Parts,
}

impl SettingsOrigin {
    /// The settings that choose the server.
    pub(crate) fn server_settings(self) -> &'static str {
        match self {
            Self::Url => "the host and port in DATABASE_URL",
            Self::Parts => "PG_HOST and PG_PORT",
        }
    }

    /// The settings that carry the credentials.
    pub(crate) fn credential_settings(self) -> &'static str {
        match self {
            Self::Url => "the user and password in DATABASE_URL",
            Self::Parts => "PG_USER and PG_PASSWORD",
        }
    }

    /// The setting that names the database.
    pub(crate) fn database_setting(self) -> &'static str {
        match self {
            Self::Url => "the database name in DATABASE_URL",
            Self::Parts => "PG_DATABASE",
        }
    }
}

/// Whether to use TimescaleDB for `audit_logs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimescaleMode {
    /// Use it when the server has the extension (installing it in the database if it is
    /// available but not yet created); plain PostgreSQL otherwise, said once in the log.
    #[default]
    Auto,
    /// Require it: connecting fails when the extension cannot be used.
    Require,
    /// Never use it, even when installed.
    Off,
}

impl FromStr for TimescaleMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "require" | "required" | "on" | "true" | "1" => Ok(Self::Require),
            "off" | "false" | "0" | "no" => Ok(Self::Off),
            other => Err(Error::invalid(
                "TIMESCALEDB",
                format!("{other:?} is not one of auto, require, off"),
            )),
        }
    }
}

/// TimescaleDB settings for the `audit_logs` hypertable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimescaleConfig {
    /// Whether to use the extension.
    pub mode: TimescaleMode,
    /// Chunk interval of the hypertable (1 day).
    pub chunk_interval: Duration,
    /// Drop chunks older than this (`add_retention_policy`); `None` leaves retention alone.
    pub retention: Option<Duration>,
    /// Compress chunks older than this (`add_compression_policy`); `None` leaves compression
    /// alone.
    pub compress_after: Option<Duration>,
}

impl TimescaleConfig {
    const DAY: Duration = Duration::from_secs(86_400);

    /// The policies the seed recommends: 1-day chunks, 90 days of retention, compression after
    /// 30 days.
    pub fn recommended() -> Self {
        Self {
            mode: TimescaleMode::Auto,
            chunk_interval: Self::DAY,
            retention: Some(Self::DAY * 90),
            compress_after: Some(Self::DAY * 30),
        }
    }
}

impl Default for TimescaleConfig {
    /// Auto mode, 1-day chunks, no retention or compression policy (they are opt-in).
    fn default() -> Self {
        Self {
            mode: TimescaleMode::Auto,
            chunk_interval: Self::DAY,
            retention: None,
            compress_after: None,
        }
    }
}

/// Everything needed to connect to PostgreSQL and prepare the schema.
///
/// Build it with [`PostgresConfig::from_url`] or [`PostgresConfig::from_parts`], then adjust it
/// with the `with_*` methods. The adapter reads no environment variable: the `cflogs` binary
/// maps `DATABASE_URL`, `PG_*` and `TIMESCALEDB*` onto these.
#[derive(Clone)]
pub struct PostgresConfig {
    options: PgConnectOptions,
    password_set: bool,
    origin: SettingsOrigin,
    pool_size: u32,
    connect_timeout: Duration,
    migrate_on_start: bool,
    write_parallelism: u32,
    stall_limit: Duration,
    timescale: TimescaleConfig,
}

impl PostgresConfig {
    /// Default pool size.
    pub const DEFAULT_POOL_SIZE: u32 = 5;
    /// Default [`stall_limit`](Self::stall_limit).
    pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(60);
    /// Default connect (and pool acquire) timeout.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default number of concurrent slices a large batch is written in.
    pub const DEFAULT_WRITE_PARALLELISM: u32 = 2;

    /// Settings from a `postgres://user:password@host:port/database?sslmode=…` URL.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `DATABASE_URL` when the URL cannot be parsed (the URL itself
    /// is not repeated: it may hold a password).
    pub fn from_url(url: &Secret) -> Result<Self> {
        let scheme = url.expose().split("://").next().unwrap_or("");
        if !matches!(scheme, "postgres" | "postgresql") {
            return Err(Error::invalid(
                "DATABASE_URL",
                "must start with postgres:// or postgresql://, e.g. postgres://USER:PASSWORD@HOST:5432/DATABASE",
            ));
        }
        let options = PgConnectOptions::from_str(url.expose()).map_err(|e| {
            Error::invalid(
                "DATABASE_URL",
                format!(
                    "not a PostgreSQL URL ({}); expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                    redact_error(&e.to_string(), url.expose())
                ),
            )
        })?;
        let password_set = url_has_password(url.expose());
        Ok(Self::with_options(
            options,
            password_set,
            SettingsOrigin::Url,
        ))
    }

    /// Settings from separate parts, like `PG_HOST`, `PG_PORT`, `PG_DATABASE`, `PG_USER`,
    /// `PG_PASSWORD`.
    pub fn from_parts(
        host: &str,
        port: u16,
        database: &str,
        user: &str,
        password: Option<Secret>,
    ) -> Self {
        // Every part is given here; `new_without_pgpass` skips ~/.pgpass (sqlx still reads a few
        // PG* variables of libpq, such as PGSSLROOTCERT, for what is not set below).
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(host)
            .port(port)
            .database(database)
            .username(user)
            .ssl_mode(PgSslMode::Prefer);
        let password_set = password.is_some();
        if let Some(password) = &password {
            options = options.password(password.expose());
        }
        Self::with_options(options, password_set, SettingsOrigin::Parts)
    }

    fn with_options(options: PgConnectOptions, password_set: bool, origin: SettingsOrigin) -> Self {
        Self {
            options: options.application_name("cflogs"),
            password_set,
            origin,
            pool_size: Self::DEFAULT_POOL_SIZE,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            migrate_on_start: true,
            write_parallelism: Self::DEFAULT_WRITE_PARALLELISM,
            stall_limit: Self::DEFAULT_STALL_LIMIT,
            timescale: TimescaleConfig::default(),
        }
    }

    /// The same settings with another database name (tests use a fresh database each).
    #[must_use]
    pub fn with_database(mut self, database: &str) -> Self {
        self.options = self.options.database(database);
        self
    }

    /// The same settings with another user and password.
    #[must_use]
    pub fn with_credentials(mut self, user: &str, password: Option<Secret>) -> Self {
        self.options = self.options.username(user);
        self.password_set = password.is_some();
        if let Some(password) = password {
            self.options = self.options.password(password.expose());
        }
        self
    }

    /// The same settings with another server.
    #[must_use]
    pub fn with_server(mut self, host: &str, port: u16) -> Self {
        self.options = self.options.host(host).port(port);
        self
    }

    /// The same settings with another TLS mode.
    #[must_use]
    pub fn with_ssl_mode(mut self, mode: PgSslMode) -> Self {
        self.options = self.options.ssl_mode(mode);
        self
    }

    /// The same settings with another limit on how long a transaction of this process may sit
    /// idle (the server's `idle_in_transaction_session_timeout` on every connection; at least
    /// 1 s). A process frozen in the middle of a transaction (stopped, swapped out, a paused
    /// VM) holds its row locks until the server ends its session: this bounds how long it can
    /// block the instance that took its streams over. Set it above the longest pause between
    /// the statements of one batch; the binary uses twice the lease TTL, at least 10 s.
    #[must_use]
    pub fn with_stall_limit(mut self, limit: Duration) -> Self {
        self.stall_limit = limit.max(Duration::from_secs(1));
        self
    }

    /// The same settings with a pool of `size` connections.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `size` is 0.
    pub fn with_pool_size(mut self, size: u32) -> Result<Self> {
        if size == 0 {
            return Err(Error::invalid(
                "PG_POOL_SIZE",
                "the pool needs at least 1 connection",
            ));
        }
        self.pool_size = size;
        Ok(self)
    }

    /// The same settings writing a large batch (2,000 events or more) in up to `slices`
    /// concurrent transactions on as many connections; 1 writes every batch in one
    /// transaction. Capped by the pool size.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `slices` is 0.
    pub fn with_write_parallelism(mut self, slices: u32) -> Result<Self> {
        if slices == 0 {
            return Err(Error::invalid(
                "PG_WRITE_PARALLELISM",
                "at least 1 slice (1 = one transaction per batch)",
            ));
        }
        self.write_parallelism = slices;
        Ok(self)
    }

    /// The same settings with another connect (and pool acquire) timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether connecting also applies the migrations and the TimescaleDB setup (default
    /// `true`; `cflogs migrate` does it explicitly otherwise).
    #[must_use]
    pub fn with_migrate_on_start(mut self, migrate: bool) -> Self {
        self.migrate_on_start = migrate;
        self
    }

    /// The same settings with other TimescaleDB settings.
    #[must_use]
    pub fn with_timescale(mut self, timescale: TimescaleConfig) -> Self {
        self.timescale = timescale;
        self
    }

    /// The server's host.
    pub fn host(&self) -> &str {
        self.options.get_host()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.options.get_port()
    }

    /// The database name (PostgreSQL defaults it to the user name when unset).
    pub fn database(&self) -> &str {
        self.options
            .get_database()
            .unwrap_or_else(|| self.options.get_username())
    }

    /// The user name.
    pub fn user(&self) -> &str {
        self.options.get_username()
    }

    /// Pool size.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    /// Connect (and pool acquire) timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Concurrent slices of a large batch (at most the pool size).
    pub fn write_parallelism(&self) -> u32 {
        self.write_parallelism.min(self.pool_size)
    }

    /// How long a transaction may sit idle before the server ends its session (see
    /// [`with_stall_limit`](Self::with_stall_limit)).
    pub fn stall_limit(&self) -> Duration {
        self.stall_limit
    }

    /// Whether connecting applies the migrations.
    pub fn migrate_on_start(&self) -> bool {
        self.migrate_on_start
    }

    /// TimescaleDB settings.
    pub fn timescale(&self) -> &TimescaleConfig {
        &self.timescale
    }

    /// Where the settings came from.
    pub fn origin(&self) -> SettingsOrigin {
        self.origin
    }

    /// `host:port/database`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}/{}", self.host(), self.port(), self.database())
    }

    pub(crate) fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: `PgConnectOptions`' own `Debug` prints the password.
        f.debug_struct("PostgresConfig")
            .field("host", &self.host())
            .field("port", &self.port())
            .field("database", &self.database())
            .field("user", &self.user())
            .field("password", &self.password_set.then_some(Secret::new("")))
            .field("origin", &self.origin)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("write_parallelism", &self.write_parallelism)
            .field("stall_limit", &self.stall_limit)
            .field("timescale", &self.timescale)
            .finish()
    }
}

/// The byte ranges of the passwords in a PostgreSQL URL: in the user info
/// (`scheme://user:password@…`) and in `password=` query parameters (which libpq and sqlx
/// accept too).
fn password_ranges(url: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let Some(scheme) = url.find("://") else {
        return ranges;
    };
    let start = scheme + 3;
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    if let Some(at) = url[start..end].rfind('@')
        && let Some(colon) = url[start..start + at].find(':')
    {
        ranges.push(start + colon + 1..start + at);
    }
    if let Some(q) = url.find('?') {
        let mut offset = q + 1;
        for param in url[q + 1..].split('&') {
            if let Some((key, _)) = param.split_once('=')
                && key.eq_ignore_ascii_case("password")
            {
                ranges.push(offset + key.len() + 1..offset + param.len());
            }
            offset += param.len() + 1;
        }
    }
    ranges.retain(|r| !r.is_empty());
    ranges
}

/// Whether a URL carries a password.
fn url_has_password(url: &str) -> bool {
    !password_ranges(url).is_empty()
}

/// `url` with every password in it (user info, `password=` parameter) replaced by `***`: for
/// showing a `DATABASE_URL`.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    // From the end, so earlier ranges stay valid.
    for range in password_ranges(url).into_iter().rev() {
        out.replace_range(range, "***");
    }
    out
}

/// `text` with the URL's passwords, if any, replaced by `***` (parser messages may quote them).
fn redact_error(text: &str, url: &str) -> String {
    password_ranges(url)
        .into_iter()
        .fold(text.to_owned(), |text, range| {
            text.replace(&url[range], "***")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_never_appears_in_debug_output() {
        let config = PostgresConfig::from_url(&Secret::new(
            "postgres://app:hunter2-Secret@db.internal:6543/logs",
        ))
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
        assert!(shown.contains("db.internal") && shown.contains("6543") && shown.contains("logs"));

        let config =
            PostgresConfig::from_parts("h", 5432, "d", "u", Some(Secret::new("pa55-w0rd-xyz")));
        let shown = format!("{config:?}");
        assert!(!shown.contains("pa55-w0rd-xyz"), "{shown}");
        assert_eq!(format!("{:?}", Secret::new("abc")), "Secret(***)");
        assert!(!format!("{:#?}", config).contains("pa55"));
    }

    #[test]
    fn parts_and_urls_are_read_with_defaults() {
        let config = PostgresConfig::from_parts("db", 5432, "cflogs", "ingest", None)
            .with_pool_size(9)
            .unwrap();
        assert_eq!(config.host(), "db");
        assert_eq!(config.database(), "cflogs");
        assert_eq!(config.user(), "ingest");
        assert_eq!(config.pool_size(), 9);
        assert_eq!(config.origin(), SettingsOrigin::Parts);
        assert!(config.with_pool_size(0).is_err());
        let url = PostgresConfig::from_url(&Secret::new("postgres://u@h:7/d")).unwrap();
        assert_eq!((url.host(), url.port(), url.database()), ("h", 7, "d"));
        assert_eq!(url.origin(), SettingsOrigin::Url);
        let bad = PostgresConfig::from_url(&Secret::new("mysql://u:topsecret@h/d"))
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("DATABASE_URL") && !bad.contains("topsecret"),
            "{bad}"
        );
        assert!("maybe".parse::<TimescaleMode>().is_err());
        assert_eq!("off".parse::<TimescaleMode>().unwrap(), TimescaleMode::Off);
    }

    #[test]
    fn userinfo_is_found_only_before_the_path() {
        assert!(url_has_password("postgres://u:p@h/d"));
        assert!(!url_has_password("postgres://u@h/d"));
        assert!(!url_has_password("postgres://h/d?x=a:b@c"));
        assert_eq!(
            redact_error("bad p4ss here", "postgres://u:p4ss@h"),
            "bad *** here"
        );
    }

    #[test]
    fn passwords_are_redacted_in_the_user_info_and_the_query() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(
            redact_url("postgres://u@h/d?sslmode=require&password=s3cret"),
            "postgres://u@h/d?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://u:a@h/d?PASSWORD=b&x=1"),
            "postgres://u:***@h/d?PASSWORD=***&x=1"
        );
        assert_eq!(
            redact_url("postgres://h/d?x=a:b@c"),
            "postgres://h/d?x=a:b@c"
        );
        assert!(url_has_password("postgres://u@h/d?password=p"));
        assert_eq!(
            redact_error("no q5 for you", "postgres://h/d?password=q5"),
            "no *** for you"
        );
    }
}
