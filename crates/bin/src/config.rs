//! Configuration: the environment variables of the Python tool this replaces (so an existing
//! `.env` keeps working), a `.env` file, and an optional TOML file with `[[streams]]`.
//!
//! The layers are merged by figment, later ones winning: the TOML file, then the `.env` file,
//! then the process environment. The TOML file's top-level keys are the variable names in lower
//! case (`poll_interval_seconds = 60`), plus `[[streams]]` (and the older `[[accounts]]`)
//! tables; an unknown key is an error. Only here is configuration read: the library crates take
//! the typed values this module builds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cflogs_cloudflare::{
    AccountId, AuditApi, AuditSourceConfig, Credentials, PerPage, Secret, audit_stream_id,
};
use cflogs_core::{BatchLimits, Policy, StreamId, Timestamp};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;

/// Declares every variable once: its field in `Raw` (the lower-case name, which is also its
/// key in the TOML file), its type and what it is for (`cflogs config --list`, errors).
macro_rules! variables {
    ($($field:ident: $ty:ty => $what:literal,)*) => {
        /// Every variable cflogs reads (lower-case names; the variable is the upper-case name),
        /// with what it is for.
        const DECLARED: &[(&str, &str)] = &[$((stringify!($field), $what),)*];

        /// The settings as the layers say them, before validation. No `Debug`: it holds
        /// secrets.
        #[derive(Default, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Raw {
            $($field: Option<$ty>,)*
            accounts: Vec<AccountEntry>,
            streams: Vec<StreamEntry>,
        }
    };
}

variables! {
    cloudflare_api_token: String => "API token with Account Settings Read (secret)",
    cloudflare_api_email: String => "legacy auth: account email (with CLOUDFLARE_API_KEY)",
    cloudflare_api_key: String => "legacy auth: global API key (secret)",
    cloudflare_account_id: String => "account id, or several separated by commas",
    cloudflare_audit_api: String => "v1 (default) or v2",
    cloudflare_api_base_url: String => "API base URL (proxies, the simulator)",
    cloudflare_api_allow_http: bool => "true to allow a plain http:// base URL to a host that is not loopback (default false)",
    cloudflare_per_page: u32 => "page size, 1 to 1000 (default 1000)",
    cloudflare_page_concurrency: u32 => "pages of one window asked at once, 1 to 16 (default 4; v1)",
    cloudflare_direction: String => "accepted for compatibility; cflogs always reads ascending",
    cloudflare_hide_user_logs: bool => "true to leave out events by users (v1)",
    cloudflare_since_safety_lag_seconds: u64 => "lookback before the watermark (default 300)",
    cloudflare_request_timeout_seconds: u64 => "timeout of one request (default 30)",
    cloudflare_rate_limit_per_5_min: u32 => "request budget of the token (default 1200)",
    poll_interval_seconds: u64 => "wait between polls once caught up (default 60)",
    initial_checkpoint: String => "RFC 3339 start of a new stream (default: now minus the poll interval)",
    database_url: String => "postgres://… (else the PG_* variables; else SQLite)",
    pg_host: String => "PostgreSQL host",
    pg_port: u16 => "PostgreSQL port (default 5432)",
    pg_database: String => "PostgreSQL database",
    pg_user: String => "PostgreSQL user",
    pg_password: String => "PostgreSQL password (secret)",
    pg_sslmode: String => "disable, prefer, require, verify-ca, verify-full",
    pg_pool_size: u32 => "connections in the pool",
    pg_connect_timeout_seconds: u64 => "connect timeout",
    pg_write_parallelism: u32 => "parallel COPY slices per batch",
    timescaledb: String => "auto (default), require or off",
    timescaledb_retention_days: u32 => "drop chunks older than this (TimescaleDB)",
    timescaledb_compress_after_days: u32 => "compress chunks older than this (TimescaleDB)",
    cflogs_sqlite_path: PathBuf => "SQLite file when no PostgreSQL is configured",
    s3_bucket: String => "archive bucket (else a local directory)",
    s3_prefix: String => "key prefix in the bucket",
    s3_endpoint: String => "S3 endpoint of MinIO, Garage, R2…",
    s3_region: String => "region",
    s3_access_key: String => "access key",
    s3_secret_key: String => "secret key (secret)",
    s3_session_token: String => "session token (secret)",
    s3_path_style: bool => "true for path-style addressing",
    s3_object_lock_mode: String => "governance or compliance",
    s3_object_lock_days: u32 => "Object Lock retention in days",
    cflogs_archive_url: String => "archive as a URL: s3://bucket/prefix, file:///dir, memory://",
    cflogs_data_dir: PathBuf => "where the embedded defaults live (default ./cflogs-data)",
    cflogs_batch_max_events: usize => "events per batch (default 10000)",
    cflogs_metrics_addr: String => "where `run` serves /metrics, /healthz and /readyz (default 127.0.0.1:9900; off)",
    cflogs_instance_id: String => "this instance's name in stream leases; stable and unique per instance, e.g. the pod name (default host:pid)",
    cflogs_lease_ttl_seconds: u64 => "how long a stream's lease outlives its holder's last renewal, 3 to 3600 (default 30)",
}

/// The machine's name, for the default instance id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "cflogs".to_owned())
}

/// Every variable cflogs reads, upper case, with what it is for.
pub fn variables() -> impl Iterator<Item = (String, &'static str)> {
    DECLARED
        .iter()
        .map(|(field, what)| (field.to_ascii_uppercase(), *what))
}

/// What the variable `name` (any case) is for, if it is one of cflogs'.
fn described(name: &str) -> Option<&'static str> {
    DECLARED
        .iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, what)| *what)
}

/// The variables whose values are never shown (`cflogs config`, errors).
const SECRETS: &[&str] = &[
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_API_KEY",
    "PG_PASSWORD",
    "S3_SECRET_KEY",
    "S3_SESSION_TOKEN",
];

/// Whether `name` is one of cflogs' variables.
fn is_declared(name: &str) -> bool {
    described(name).is_some()
}

/// One layer of settings for figment: name → value pairs (the environment, a `.env` file, the
/// demo's), each a string as the user wrote it, or a parsed TOML file.
struct Layer {
    name: String,
    dict: Dict,
}

impl Layer {
    /// Declared variables only, by their lower-case key; empty values are unset. A `.env`
    /// shared with docker compose holds others (GRAFANA_ADMIN_PASSWORD…) that must not leak
    /// into `cflogs config`.
    fn vars(name: &str, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let dict = pairs
            .into_iter()
            .filter(|(k, v)| is_declared(k) && !v.trim().is_empty())
            .map(|(k, v)| (k.to_ascii_lowercase(), Value::from(v.trim().to_owned())))
            .collect();
        Self {
            name: name.to_owned(),
            dict,
        }
    }

    fn toml(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let dict = figment::providers::Serialized::defaults(datetimes_as_text(table))
            .data()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?
            .remove(&Profile::Default)
            .unwrap_or_default();
        Ok(Self {
            name: format!("config file {}", path.display()),
            dict,
        })
    }
}

/// TOML date-times (`initial_checkpoint = 2026-11-01T00:00:00Z`, unquoted) as the RFC 3339
/// text the settings parse.
fn datetimes_as_text(table: toml::Table) -> toml::Table {
    fn convert(value: toml::Value) -> toml::Value {
        match value {
            toml::Value::Datetime(d) => toml::Value::String(d.to_string()),
            toml::Value::Array(items) => {
                toml::Value::Array(items.into_iter().map(convert).collect())
            }
            toml::Value::Table(t) => toml::Value::Table(datetimes_as_text(t)),
            other => other,
        }
    }
    table.into_iter().map(|(k, v)| (k, convert(v))).collect()
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        Ok(Map::from([(Profile::Default, self.dict.clone())]))
    }
}

/// Where the settings come from, merged (see the module docs).
pub struct Settings {
    figment: Figment,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Settings { .. }")
    }
}

impl Settings {
    /// Reads `file` (if given), `dotenv` (if it exists) and the environment.
    ///
    /// # Errors
    /// An unreadable or invalid file.
    pub fn load(dotenv: Option<&Path>, file: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            figment = figment.merge(Layer::toml(path)?);
        }
        if let Some(path) = dotenv.filter(|p| p.exists()) {
            let mut pairs = Vec::new();
            for item in dotenvy::from_path_iter(path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                pairs.push(
                    item.with_context(|| format!("{} has a malformed line", path.display()))?,
                );
            }
            figment = figment.merge(Layer::vars(".env", pairs));
        }
        figment = figment.merge(Layer::vars("environment", std::env::vars()));
        Ok(Self { figment })
    }

    /// Settings from explicit pairs only (tests, the demo).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        let pairs = pairs.into_iter().map(|(k, v)| (k.to_owned(), v));
        Self {
            figment: Figment::new().merge(Layer::vars("given", pairs)),
        }
    }

    /// The keys some layer sets (lower case).
    fn keys(&self) -> Vec<String> {
        let data = self.figment.data().unwrap_or_default();
        data.get(&Profile::Default)
            .map(|dict| dict.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn raw(&self) -> Result<Raw> {
        self.figment.extract_lossy().map_err(explain)
    }

    /// The effective settings, one line each, secrets masked.
    pub fn describe(&self) -> Vec<String> {
        let Ok(data) = self.figment.data() else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        for (key, value) in data.get(&Profile::Default).into_iter().flatten() {
            let origin = self
                .figment
                .find_metadata(key)
                .map_or_else(|| "settings".to_owned(), |m| m.name.to_string());
            let var = key.to_ascii_uppercase();
            let shown = if SECRETS.contains(&var.as_str()) {
                "***".to_owned()
            } else if let Some(text) = value.as_str() {
                if var == "DATABASE_URL" {
                    cflogs_postgres::redact_url(text)
                } else if var.ends_with("_URL") || var.ends_with("_ENDPOINT") {
                    cflogs_cloudflare::redact_userinfo(text)
                } else {
                    text.to_owned()
                }
            } else if is_declared(&var) {
                toml_text(value)
            } else {
                // [[streams]] and [[accounts]]: one line per entry.
                for (n, entry) in value.as_array().into_iter().flatten().enumerate() {
                    lines.push(format!(
                        "[[{key}]] #{} {}    # from {origin}",
                        n + 1,
                        toml_text(entry)
                    ));
                }
                continue;
            };
            lines.push(format!("{var}={shown}    # from {origin}"));
        }
        lines
    }
}

/// A figment value as compact text (streams and accounts hold no secrets).
fn toml_text(value: &Value) -> String {
    match value {
        Value::String(_, s) => s.clone(),
        Value::Dict(_, dict) => dict
            .iter()
            .map(|(k, v)| format!("{k}={}", toml_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(_, items) => items.iter().map(toml_text).collect::<Vec<_>>().join(","),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|n| n.to_string())
            .or_else(|| n.to_i128().map(|n| n.to_string()))
            .or_else(|| n.to_f64().map(|n| n.to_string()))
            .unwrap_or_default(),
        Value::Char(_, c) => c.to_string(),
        Value::Empty(..) => String::new(),
    }
}

/// A figment error, in the words of the variable it is about.
fn explain(errors: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = errors.into_iter().map(|e| explain_one(&e)).collect();
    anyhow!(lines.join("\n"))
}

fn explain_one(e: &figment::Error) -> String {
    use figment::error::Kind;
    let origin = e
        .metadata
        .as_ref()
        .map_or_else(|| "settings".to_owned(), |m| m.name.to_string());
    let place = match e.path.as_slice() {
        [] => origin.clone(),
        [table, n, ..] if n.parse::<usize>().is_ok() => format!(
            "{origin}, [[{table}]] #{}",
            n.parse::<usize>().unwrap_or(0) + 1
        ),
        [key, ..] => {
            let var = key.to_ascii_uppercase();
            if is_declared(&var) {
                format!("{var} (from {origin})")
            } else {
                format!("`{key}` (from {origin})")
            }
        }
    };
    let secret = e
        .path
        .first()
        .is_some_and(|k| SECRETS.contains(&k.to_ascii_uppercase().as_str()));
    let expected = |what: &str| match what {
        "u8" => "a whole number from 0 to 255".to_owned(),
        "u16" => "a whole number from 0 to 65535".to_owned(),
        "u32" => "a whole number from 0 to 4294967295".to_owned(),
        "u64" | "usize" => "a whole number".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        other => other.to_owned(),
    };
    let hint = e
        .path
        .first()
        .and_then(|k| described(k))
        .map(|what| format!(": {what}"))
        .unwrap_or_default();
    match &e.kind {
        Kind::UnknownField(field, _) if e.path.is_empty() => {
            format!(
                "{origin}: unknown key `{field}`; known keys are the variable names in lower case \
                 (run `cflogs config --list`), [[streams]] and [[accounts]]"
            )
        }
        Kind::UnknownField(field, known) => {
            format!(
                "{place}: unknown key `{field}`; known keys: {}",
                known.join(", ")
            )
        }
        Kind::UnknownVariant(value, known) => {
            let later = if e.path.last().is_some_and(|k| k == "kind") {
                " (this release reads audit streams; logpull, logpush and ingest streams are \
                 added by later releases)"
            } else {
                ""
            };
            format!(
                "{place}: `{value}` is not one of {}{later}",
                known.join(", ")
            )
        }
        Kind::MissingField(field) => format!("{place}: `{field}` is required"),
        Kind::InvalidType(actual, what) if secret => {
            format!("{place} must be {}", expected(what))
        }
        Kind::InvalidType(actual, what) => {
            format!("{place}: {actual} is not {}{hint}", expected(what))
        }
        Kind::InvalidValue(actual, what) => {
            format!("{place}: {actual} is not {}{hint}", expected(what))
        }
        other => format!("{place}: {other}{hint}"),
    }
}

/// `[[accounts]]`: an audit stream (the older spelling of `[[streams]] kind = "audit"`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    id: String,
    api: Option<String>,
}

/// The kinds of `[[streams]]` this release reads.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum StreamKind {
    /// Account audit logs (v1 or v2).
    Audit,
}

/// `[[streams]]`: one stream with its own policy; unset fields take the global settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamEntry {
    kind: StreamKind,
    account: Option<String>,
    api: Option<String>,
    per_page: Option<u32>,
    page_concurrency: Option<u32>,
    hide_user_logs: Option<bool>,
    poll_interval_seconds: Option<u64>,
    settle_delay_seconds: Option<u64>,
    lookback_seconds: Option<u64>,
    max_span_seconds: Option<u64>,
    batch_max_events: Option<usize>,
    batch_max_bytes: Option<usize>,
    initial_checkpoint: Option<String>,
}

fn parse_api(text: &str, var: &str) -> Result<AuditApi> {
    match text.trim().to_ascii_lowercase().as_str() {
        "v1" | "1" => Ok(AuditApi::V1),
        "v2" | "2" => Ok(AuditApi::V2),
        other => bail!("{var} {other:?} is not an audit log API version; use v1 or v2"),
    }
}

fn parse_time(text: &str, var: &str) -> Result<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            anyhow!("{var} {text:?} is not an RFC 3339 time ({e}); e.g. 2026-11-01T00:00:00Z")
        })
}

/// Whether a layer sets a key that `select` picks (any PostgreSQL or S3 setting selects that
/// service: a missing piece is then an error naming it, never a silent fall back to the
/// embedded default).
type Given<'a> = &'a dyn Fn(fn(&str) -> bool) -> bool;

/// Pages asked at once: 1 to 16 (more would only queue behind the token's budget).
fn page_concurrency(n: u32) -> Result<std::num::NonZeroU32> {
    std::num::NonZeroU32::new(n)
        .filter(|n| n.get() <= 16)
        .with_context(|| format!("{n} is out of range: give 1 to 16"))
}

/// An adapter's error about `var`, with the variable named first.
fn named(var: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{var}: {e}")
}

/// What a stream reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    /// An account's audit logs.
    Audit(AuditSourceConfig),
}

/// One stream: what it reads and its policy.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamConfig {
    /// The source.
    pub source: SourceConfig,
    /// How its pipeline plans windows and batches.
    pub policy: Policy,
}

impl StreamConfig {
    /// The stream's id (where its checkpoint and archive chain live).
    pub fn id(&self) -> StreamId {
        match &self.source {
            SourceConfig::Audit(c) => audit_stream_id(&c.account, c.api),
        }
    }
}

/// Where analytics and checkpoints go.
#[derive(Debug)]
pub enum Analytics {
    /// PostgreSQL/TimescaleDB.
    Postgres(Box<cflogs_postgres::PostgresConfig>),
    /// The embedded default.
    Sqlite(cflogs_sqlite::SqliteConfig),
}

/// What reading from Cloudflare needs: the client and the streams.
#[derive(Debug)]
pub struct Cloudflare {
    /// Cloudflare client settings.
    pub client: cflogs_cloudflare::ClientConfig,
    /// The streams to read, each with its policy.
    pub streams: Vec<StreamConfig>,
}

/// The validated configuration of a run.
///
/// The Cloudflare part is validated apart from the rest: commands that only touch the
/// database and the archive (`verify`, `rehydrate`, `migrate`, `doctor --archive`) run
/// without Cloudflare settings, and the others fail with the first missing or invalid one.
#[derive(Debug)]
pub struct Config {
    /// The client and the streams, or the first missing or invalid Cloudflare or stream
    /// setting (naming the variable and the fix).
    cloudflare: std::result::Result<Cloudflare, String>,
    /// Analytics and checkpoints.
    pub analytics: Analytics,
    /// The archive.
    pub archive: cflogs_s3::ArchiveConfig,
    /// Where `run` serves metrics and health, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// This instance's name in stream leases (`CFLOGS_INSTANCE_ID`).
    pub instance_id: String,
    /// How long a lease outlives its holder's last renewal (`CFLOGS_LEASE_TTL_SECONDS`).
    pub lease_ttl: Duration,
}

impl Config {
    /// Validates `settings`; `now` is the time a new stream starts from by default.
    ///
    /// # Errors
    /// The first invalid or missing setting, naming the variable and the fix.
    pub fn from_settings(settings: &Settings, now: Timestamp) -> Result<Self> {
        let raw = settings.raw()?;
        let cloudflare = (|| {
            let client = client(&raw)?;
            let policy = global_policy(&raw, now)?;
            let streams = streams(&raw, &policy)?;
            anyhow::Ok(Cloudflare { client, streams })
        })()
        .map_err(|e| format!("{e:#}"));
        let data_dir = raw
            .cflogs_data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./cflogs-data"));
        let keys = settings.keys();
        let given = |select: fn(&str) -> bool| keys.iter().any(|k| select(k));
        let lease_ttl = Duration::from_secs(raw.cflogs_lease_ttl_seconds.unwrap_or(30));
        if !(Duration::from_secs(3)..=Duration::from_secs(3600)).contains(&lease_ttl) {
            bail!(
                "CFLOGS_LEASE_TTL_SECONDS must be 3 to 3600 (seconds a stream's lease outlives its \
                 holder; default 30)"
            );
        }
        let analytics = analytics(&raw, &given, &data_dir, lease_ttl)?;
        let archive = archive(&raw, &given, &data_dir)?;
        let metrics_addr = match raw.cflogs_metrics_addr.as_deref() {
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v.parse().map_err(|_| {
                anyhow!("CFLOGS_METRICS_ADDR {v:?} is not an address; e.g. 0.0.0.0:9900, or off")
            })?),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9900))),
        };
        let instance_id = match raw.cflogs_instance_id.as_deref().map(str::trim) {
            Some("") => {
                bail!("CFLOGS_INSTANCE_ID is empty; unset it (host:pid) or name this instance")
            }
            Some(id) => id.to_owned(),
            None => format!("{}:{}", host_name(), std::process::id()),
        };
        Ok(Config {
            cloudflare,
            analytics,
            archive,
            metrics_addr,
            instance_id,
            lease_ttl,
        })
    }

    /// The Cloudflare client and the streams.
    ///
    /// # Errors
    /// The first Cloudflare or stream setting that is missing or invalid, naming the
    /// variable and the fix.
    pub fn cloudflare(&self) -> Result<&Cloudflare> {
        self.cloudflare.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// The configured streams; none when the Cloudflare settings are missing or invalid.
    pub fn streams(&self) -> &[StreamConfig] {
        self.cloudflare.as_ref().map_or(&[], |c| &c.streams)
    }
}

fn client(raw: &Raw) -> Result<cflogs_cloudflare::ClientConfig> {
    let credentials = match (
        &raw.cloudflare_api_token,
        &raw.cloudflare_api_email,
        &raw.cloudflare_api_key,
    ) {
        (Some(token), _, _) => Credentials::Token(Secret::new(token.clone())),
        (None, Some(email), Some(key)) => Credentials::Legacy {
            email: email.clone(),
            key: Secret::new(key.clone()),
        },
        _ => bail!(
            "CLOUDFLARE_API_TOKEN is not set: create an API token with the \"Account \
             Settings Read\" permission (dashboard → My Profile → API Tokens) and set \
             CLOUDFLARE_API_TOKEN, or set CLOUDFLARE_API_EMAIL and CLOUDFLARE_API_KEY"
        ),
    };
    let mut client = cflogs_cloudflare::ClientConfig::new(credentials);
    client.allow_http = raw.cloudflare_api_allow_http.unwrap_or(false);
    if let Some(url) = &raw.cloudflare_api_base_url {
        client.base_url = url.clone();
    }
    if let Some(secs) = raw.cloudflare_request_timeout_seconds {
        client.request_timeout = Duration::from_secs(secs);
    }
    if let Some(n) = raw.cloudflare_rate_limit_per_5_min {
        client.rate_budget = cflogs_cloudflare::RateBudget::new(n, Duration::from_secs(300))
            .map_err(|e| named("CLOUDFLARE_RATE_LIMIT_PER_5_MIN", e))?;
    }
    client.validate()?;
    Ok(client)
}

fn global_policy(raw: &Raw, now: Timestamp) -> Result<Policy> {
    let poll = Duration::from_secs(raw.poll_interval_seconds.unwrap_or(60));
    if poll.is_zero() {
        bail!("POLL_INTERVAL_SECONDS must be at least 1");
    }
    let start_at = match &raw.initial_checkpoint {
        Some(t) => parse_time(t, "INITIAL_CHECKPOINT")?,
        None => now - chrono::Duration::from_std(poll).unwrap_or_default(),
    };
    let mut policy = Policy::new(start_at);
    policy.poll_interval = poll;
    policy.lookback = Duration::from_secs(raw.cloudflare_since_safety_lag_seconds.unwrap_or(300));
    policy.max_span = policy
        .max_span
        .max(policy.lookback + Duration::from_secs(60));
    if let Some(n) = raw.cflogs_batch_max_events {
        policy.limits = BatchLimits::new(n, policy.limits.max_bytes())
            .map_err(|e| named("CFLOGS_BATCH_MAX_EVENTS", e))?;
    }
    policy.validate()?;
    Ok(policy)
}

/// Every stream: `[[streams]]`, `[[accounts]]`, then `CLOUDFLARE_ACCOUNT_ID` (one audit stream
/// per account). The same stream given twice alike is one stream; given twice with different
/// settings it is an error (two pipelines on one stream would fence each other).
fn streams(raw: &Raw, policy: &Policy) -> Result<Vec<StreamConfig>> {
    let per_page = match raw.cloudflare_per_page {
        Some(n) => PerPage::new(n).map_err(|e| named("CLOUDFLARE_PER_PAGE", e))?,
        None => PerPage::default(),
    };
    if let Some(d) = &raw.cloudflare_direction
        && !d.eq_ignore_ascii_case("asc")
    {
        tracing::warn!(value = %d, "CLOUDFLARE_DIRECTION is ignored: cflogs always reads ascending");
    }
    let hide_user_logs = raw.cloudflare_hide_user_logs.unwrap_or(false);
    let page_concurrency = match raw.cloudflare_page_concurrency {
        Some(n) => page_concurrency(n).map_err(|e| named("CLOUDFLARE_PAGE_CONCURRENCY", e))?,
        None => AuditSourceConfig::DEFAULT_PAGE_CONCURRENCY,
    };
    let audit = |account: &str, api: AuditApi| -> Result<AuditSourceConfig> {
        let mut c = AuditSourceConfig::new(AccountId::new(account)?, api);
        c.per_page = per_page;
        c.page_concurrency = page_concurrency;
        c.hide_user_logs = hide_user_logs;
        // Windows end a settle delay before Cloudflare's now, not ours: a skewed clock loses nothing.
        c.plan_on_source_clock = true;
        Ok(c)
    };
    let mut all = Vec::new();
    for (n, entry) in raw.streams.iter().enumerate() {
        let place = format!("[[streams]] #{}", n + 1);
        all.push(stream_entry(entry, policy, &audit).map_err(|e| anyhow!("{place}: {e:#}"))?);
    }
    for entry in &raw.accounts {
        let api = match &entry.api {
            Some(a) => parse_api(a, "[[accounts]] api")?,
            None => AuditApi::V1,
        };
        all.push(StreamConfig {
            source: SourceConfig::Audit(audit(&entry.id, api)?),
            policy: policy.clone(),
        });
    }
    let api = match &raw.cloudflare_audit_api {
        Some(a) => parse_api(a, "CLOUDFLARE_AUDIT_API")?,
        None => AuditApi::V1,
    };
    for id in raw
        .cloudflare_account_id
        .iter()
        .flat_map(|ids| ids.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        all.push(StreamConfig {
            source: SourceConfig::Audit(audit(id, api)?),
            policy: policy.clone(),
        });
    }
    if all.is_empty() {
        bail!(
            "CLOUDFLARE_ACCOUNT_ID is not set: set it to the account id (dashboard → account \
             home → Account ID), several separated by commas, or list [[streams]] in the \
             config file"
        );
    }
    let mut unique: Vec<StreamConfig> = Vec::with_capacity(all.len());
    for stream in all {
        match unique.iter().find(|s| s.id() == stream.id()) {
            Some(same) if *same == stream => {}
            Some(_) => bail!(
                "stream {} is configured twice with different settings: keep one entry",
                stream.id()
            ),
            None => unique.push(stream),
        }
    }
    Ok(unique)
}

fn stream_entry(
    entry: &StreamEntry,
    global: &Policy,
    audit: &dyn Fn(&str, AuditApi) -> Result<AuditSourceConfig>,
) -> Result<StreamConfig> {
    let mut policy = global.clone();
    if let Some(t) = &entry.initial_checkpoint {
        policy.start_at = parse_time(t, "initial_checkpoint")?;
    }
    let secs = Duration::from_secs;
    if let Some(s) = entry.poll_interval_seconds {
        policy.poll_interval = secs(s);
    }
    if let Some(s) = entry.settle_delay_seconds {
        policy.settle_delay = secs(s);
    }
    if let Some(s) = entry.lookback_seconds {
        policy.lookback = secs(s);
        policy.max_span = policy.max_span.max(policy.lookback + secs(60));
    }
    if let Some(s) = entry.max_span_seconds {
        policy.max_span = secs(s);
    }
    if entry.batch_max_events.is_some() || entry.batch_max_bytes.is_some() {
        policy.limits = BatchLimits::new(
            entry.batch_max_events.unwrap_or(policy.limits.max_events()),
            entry.batch_max_bytes.unwrap_or(policy.limits.max_bytes()),
        )?;
    }
    policy.validate()?;
    let source = match entry.kind {
        StreamKind::Audit => {
            let account = entry
                .account
                .as_deref()
                .context("`account = \"<account id>\"` is required for kind = \"audit\"")?;
            let api = match &entry.api {
                Some(a) => parse_api(a, "api")?,
                None => AuditApi::V1,
            };
            let mut c = audit(account, api)?;
            if let Some(n) = entry.per_page {
                c.per_page = PerPage::new(n)?;
            }
            if let Some(n) = entry.page_concurrency {
                c.page_concurrency = page_concurrency(n).context("page_concurrency")?;
            }
            if let Some(h) = entry.hide_user_logs {
                c.hide_user_logs = h;
            }
            SourceConfig::Audit(c)
        }
    };
    Ok(StreamConfig { source, policy })
}

/// PostgreSQL when any of its settings is given (a missing piece is then an error naming it,
/// never a silent fall back to the embedded default); else SQLite under `data_dir`.
fn analytics(
    raw: &Raw,
    given: Given<'_>,
    data_dir: &Path,
    lease_ttl: Duration,
) -> Result<Analytics> {
    use cflogs_postgres::{PgSslMode, PostgresConfig, TimescaleConfig, TimescaleMode};
    let any_pg =
        given(|k| k == "database_url" || k.starts_with("pg_") || k.starts_with("timescaledb"));
    if !any_pg {
        let path = raw
            .cflogs_sqlite_path
            .clone()
            .unwrap_or_else(|| data_dir.join("cflogs.sqlite3"));
        return Ok(Analytics::Sqlite(cflogs_sqlite::SqliteConfig::new(path)));
    }
    let mut pg = if let Some(url) = &raw.database_url {
        PostgresConfig::from_url(&Secret::new(url.clone()))?
    } else {
        let Some(host) = &raw.pg_host else {
            bail!(
                "neither DATABASE_URL nor PG_HOST is set: set \
                 DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/DATABASE, or PG_HOST, PG_PORT, \
                 PG_DATABASE, PG_USER and PG_PASSWORD"
            );
        };
        let database = raw.pg_database.as_deref().context(
            "PG_DATABASE is not set: set it to the database name, e.g. PG_DATABASE=cflogs",
        )?;
        let user = raw
            .pg_user
            .as_deref()
            .context("PG_USER is not set: set it to the PostgreSQL role to connect as")?;
        PostgresConfig::from_parts(
            host,
            raw.pg_port.unwrap_or(5432),
            database,
            user,
            raw.pg_password.clone().map(Secret::new),
        )
    };
    if let Some(mode) = &raw.pg_sslmode {
        let mode = PgSslMode::from_str(mode).map_err(|_| {
            anyhow!(
                "PG_SSLMODE {mode:?} is not one of disable, allow, prefer, require, verify-ca, \
                 verify-full"
            )
        })?;
        pg = pg.with_ssl_mode(mode);
    }
    if let Some(n) = raw.pg_pool_size {
        pg = pg.with_pool_size(n).map_err(|e| named("PG_POOL_SIZE", e))?;
    }
    if let Some(secs) = raw.pg_connect_timeout_seconds {
        if secs == 0 {
            bail!("PG_CONNECT_TIMEOUT_SECONDS must be at least 1");
        }
        pg = pg.with_connect_timeout(Duration::from_secs(secs));
    }
    if let Some(n) = raw.pg_write_parallelism {
        pg = pg
            .with_write_parallelism(n)
            .map_err(|e| named("PG_WRITE_PARALLELISM", e))?;
    }
    // A frozen instance's transaction (and its row locks) ends within two lease TTLs, so that
    // the instance that took its streams is not blocked behind it for longer.
    pg = pg.with_stall_limit((lease_ttl * 2).max(Duration::from_secs(10)));
    let mut timescale = TimescaleConfig::default();
    if let Some(mode) = &raw.timescaledb {
        timescale.mode = TimescaleMode::from_str(mode)?;
    }
    let days = |name: &str, days: Option<u32>| -> Result<Option<Duration>> {
        match days {
            None => Ok(None),
            Some(0) => bail!("{name} must be at least 1 day"),
            Some(d) => Ok(Some(Duration::from_secs(86_400 * u64::from(d)))),
        }
    };
    timescale.retention = days("TIMESCALEDB_RETENTION_DAYS", raw.timescaledb_retention_days)?;
    timescale.compress_after = days(
        "TIMESCALEDB_COMPRESS_AFTER_DAYS",
        raw.timescaledb_compress_after_days,
    )?;
    Ok(Analytics::Postgres(Box::new(pg.with_timescale(timescale))))
}

/// `CFLOGS_ARCHIVE_URL`, else S3 when any `S3_*` setting is given, else a directory under
/// `data_dir`.
fn archive(raw: &Raw, given: Given<'_>, data_dir: &Path) -> Result<cflogs_s3::ArchiveConfig> {
    use cflogs_s3::{Addressing, ArchiveConfig, LockMode, ObjectLock};
    let any_s3 = given(|k| k.starts_with("s3_"));
    let mut config = if let Some(url) = &raw.cflogs_archive_url {
        ArchiveConfig::from_url(url).map_err(|e| named("CFLOGS_ARCHIVE_URL", e))?
    } else if any_s3 {
        let bucket = raw
            .s3_bucket
            .as_deref()
            .context("S3_BUCKET is not set: set it to the archive bucket's name")?;
        ArchiveConfig::s3(bucket, raw.s3_prefix.as_deref().unwrap_or(""))
            .map_err(|e| named("S3_BUCKET or S3_PREFIX", e))?
    } else {
        return Ok(ArchiveConfig::file(data_dir.join("archive")));
    };
    if let Some(endpoint) = &raw.s3_endpoint {
        config = config
            .with_endpoint(endpoint)
            .map_err(|e| named("S3_ENDPOINT", e))?;
    }
    if let Some(region) = &raw.s3_region {
        config = config.with_region(region.clone());
    }
    match (&raw.s3_access_key, &raw.s3_secret_key) {
        (Some(key), Some(secret)) => {
            config = config.with_credentials(key.clone(), Secret::new(secret.clone()));
        }
        (None, None) => {}
        (Some(_), None) => bail!(
            "S3_ACCESS_KEY is set but S3_SECRET_KEY is not: set both, or neither to use the AWS \
             default credential chain"
        ),
        (None, Some(_)) => bail!(
            "S3_SECRET_KEY is set but S3_ACCESS_KEY is not: set both, or neither to use the AWS \
             default credential chain"
        ),
    }
    if let Some(token) = &raw.s3_session_token {
        config.s3.session_token = Some(Secret::new(token.clone()));
    }
    if let Some(path_style) = raw.s3_path_style {
        config = config.with_addressing(if path_style {
            Addressing::Path
        } else {
            Addressing::VirtualHosted
        });
    }
    match (&raw.s3_object_lock_mode, raw.s3_object_lock_days) {
        (None, None) => {}
        (Some(mode), Some(days)) => {
            let mode = match mode.to_ascii_lowercase().as_str() {
                "governance" => LockMode::Governance,
                "compliance" => LockMode::Compliance,
                _ => bail!(
                    "S3_OBJECT_LOCK_MODE {mode:?} is not a mode: set governance or compliance"
                ),
            };
            if days == 0 {
                bail!("S3_OBJECT_LOCK_DAYS must be at least 1");
            }
            config = config.with_object_lock(Some(ObjectLock {
                mode,
                retain_for: Duration::from_secs(86_400 * u64::from(days)),
            }));
        }
        _ => bail!(
            "S3_OBJECT_LOCK_MODE and S3_OBJECT_LOCK_DAYS go together: set both, or neither for \
             no Object Lock retention"
        ),
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        chrono::Utc::now()
    }

    /// The first error of `pairs`: a setting of any service, else a Cloudflare one.
    fn error(pairs: Vec<(&str, &str)>) -> String {
        first_error(&Settings::from_pairs(
            pairs.into_iter().map(|(k, v)| (k, v.to_owned())),
        ))
    }

    fn first_error(s: &Settings) -> String {
        match Config::from_settings(s, now()) {
            Err(e) => format!("{e:#}"),
            Ok(c) => format!("{:#}", c.cloudflare().unwrap_err()),
        }
    }

    #[test]
    fn storage_commands_need_no_cloudflare_settings() {
        let s = Settings::from_pairs([("DATABASE_URL", "postgres://127.0.0.1/x".to_owned())]);
        let config = Config::from_settings(&s, now()).unwrap();
        assert!(matches!(config.analytics, Analytics::Postgres(_)));
        assert!(config.streams().is_empty());
        let e = format!("{:#}", config.cloudflare().unwrap_err());
        assert!(e.contains("CLOUDFLARE_API_TOKEN is not set"), "{e}");
        // A bad database setting is still an error of the whole configuration, at once.
        let half = Settings::from_pairs([("PG_POOL_SIZE", "4".to_owned())]);
        let e = format!("{:#}", Config::from_settings(&half, now()).unwrap_err());
        assert!(e.contains("PG_"), "{e}");
    }

    #[test]
    fn an_account_listed_twice_is_one_stream() {
        let s = Settings::from_pairs([
            ("CLOUDFLARE_API_TOKEN", "t".to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "a1, a2, a1".to_owned()),
        ]);
        let config = Config::from_settings(&s, now()).unwrap();
        let ids: Vec<String> = config
            .streams()
            .iter()
            .map(|s| s.id().to_string())
            .collect();
        assert_eq!(ids, ["audit-v1/account/a1", "audit-v1/account/a2"]);
    }

    #[test]
    fn any_postgresql_or_s3_setting_selects_that_service() {
        let base = [
            ("CLOUDFLARE_API_TOKEN", "t"),
            ("CLOUDFLARE_ACCOUNT_ID", "abc"),
        ];
        // A setting of the service alone, without what it needs: an error naming what is
        // missing, never the embedded default.
        for only in [
            "PG_POOL_SIZE",
            "TIMESCALEDB",
            "S3_REGION",
            "S3_SESSION_TOKEN",
        ] {
            let mut pairs = base.to_vec();
            pairs.push((only, if only == "TIMESCALEDB" { "auto" } else { "4" }));
            let message = error(pairs);
            assert!(
                message.contains("PG_") || message.contains("S3_BUCKET"),
                "{only} alone: {message}"
            );
        }
    }

    #[test]
    fn missing_and_bad_settings_name_the_variable_and_the_fix() {
        assert!(error(vec![]).contains("CLOUDFLARE_API_TOKEN is not set"));
        assert!(
            error(vec![("CLOUDFLARE_API_TOKEN", "t")]).contains("CLOUDFLARE_ACCOUNT_ID is not set")
        );
        let base = [
            ("CLOUDFLARE_API_TOKEN", "t"),
            ("CLOUDFLARE_ACCOUNT_ID", "abc"),
        ];
        let with = |k, v| {
            let mut p: Vec<(&str, &str)> = base.to_vec();
            p.push((k, v));
            error(p)
        };
        assert!(with("POLL_INTERVAL_SECONDS", "ten").contains("POLL_INTERVAL_SECONDS"));
        assert!(with("CLOUDFLARE_PER_PAGE", "5000").contains("CLOUDFLARE_PER_PAGE"));
        for n in ["0", "17"] {
            let e = with("CLOUDFLARE_PAGE_CONCURRENCY", n);
            assert!(
                e.contains("CLOUDFLARE_PAGE_CONCURRENCY") && e.contains("1 to 16"),
                "{e}"
            );
        }
        assert!(with("CLOUDFLARE_API_BASE_URL", "not a url").contains("CLOUDFLARE_API_BASE_URL"));
        assert!(with("INITIAL_CHECKPOINT", "yesterday").contains("INITIAL_CHECKPOINT"));
        assert!(with("CLOUDFLARE_AUDIT_API", "v3").contains("CLOUDFLARE_AUDIT_API"));
        assert!(
            with("PG_PASSWORD", "pw").contains("PG_HOST"),
            "PostgreSQL half-configured"
        );
        assert!(
            with("S3_ENDPOINT", "http://127.0.0.1:9000").contains("S3_BUCKET"),
            "S3 half-configured"
        );
    }

    #[test]
    fn every_variable_the_operations_page_names_exists() {
        // Variables are declared once (the `variables!` macro gives the field and the list),
        // so what can drift is the documentation: a variable it names must be one cflogs reads.
        let page = include_str!("../../../docs/operations.md");
        let known = |name: &str| {
            described(name).is_some() || crate::PROCESS_VARIABLES.iter().any(|(v, _)| *v == name)
        };
        let mut named = 0;
        for line in page.lines().filter(|l| l.starts_with("| `")) {
            for name in line.split('`').skip(1).step_by(2) {
                let variable = name.len() > 3
                    && name.contains('_')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if variable {
                    named += 1;
                    assert!(
                        known(name),
                        "docs/operations.md names {name}, which cflogs does not read"
                    );
                }
            }
        }
        assert!(
            named >= 30,
            "the configuration table was not found ({named} names)"
        );
    }

    #[test]
    fn defaults_are_sqlite_and_a_local_archive() {
        let s = Settings::from_pairs([
            ("CLOUDFLARE_API_TOKEN", "t".to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "a1, a2".to_owned()),
            ("CFLOGS_DATA_DIR", "/tmp/x".to_owned()),
        ]);
        let c = Config::from_settings(&s, now()).unwrap();
        assert_eq!(c.streams().len(), 2);
        assert!(matches!(c.analytics, Analytics::Sqlite(_)));
        assert!(
            c.archive.describe().contains("/tmp/x/archive"),
            "{}",
            c.archive.describe()
        );
    }

    #[test]
    fn secrets_are_masked_in_the_description() {
        let s = Settings::from_pairs([
            ("CLOUDFLARE_API_TOKEN", "tok-secret".to_owned()),
            ("DATABASE_URL", "postgres://u:pw-secret@h/db".to_owned()),
            ("S3_SECRET_KEY", "s3-secret".to_owned()),
        ]);
        let text = s.describe().join("\n");
        for secret in ["tok-secret", "pw-secret", "s3-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("postgres://u:***@h/db"));
    }

    #[test]
    fn the_toml_file_rejects_unknown_keys_and_reads_streams_with_their_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cflogs.toml");
        std::fs::write(
            &path,
            "cloudflare_api_token = \"t\"\npoll_interval_seconds = 30\n\
             [[accounts]]\nid = \"a1\"\napi = \"v2\"\n\
             [[streams]]\nkind = \"audit\"\naccount = \"a2\"\npoll_interval_seconds = 5\n\
             lookback_seconds = 900\nbatch_max_events = 500\n\
             initial_checkpoint = \"2026-11-01T00:00:00Z\"\n",
        )
        .unwrap();
        let s = Settings::load(None, Some(&path)).unwrap();
        let c = Config::from_settings(&s, now()).unwrap();
        let ids: Vec<String> = c.streams().iter().map(|s| s.id().to_string()).collect();
        assert_eq!(ids, ["audit-v1/account/a2", "audit-v2/account/a1"]);
        let (own, global) = (&c.streams()[0].policy, &c.streams()[1].policy);
        assert_eq!(own.poll_interval, Duration::from_secs(5));
        assert_eq!(own.lookback, Duration::from_secs(900));
        assert!(own.max_span > own.lookback);
        assert_eq!(own.limits.max_events(), 500);
        assert_eq!(own.start_at.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(global.poll_interval, Duration::from_secs(30));
        assert_eq!(global.lookback, Duration::from_secs(300));

        let error = |text: &str| {
            std::fs::write(&path, format!("cloudflare_api_token = \"t\"\n{text}")).unwrap();
            first_error(&Settings::load(None, Some(&path)).unwrap())
        };
        let e = error("pol_interval = 30\n");
        assert!(e.contains("unknown key `pol_interval`"), "{e}");
        assert!(e.contains("cflogs.toml"), "{e}");
        let e = error("[[streams]]\nkind = \"audit\"\naccount = \"a\"\npoll = 3\n");
        assert!(
            e.contains("[[streams]] #1") && e.contains("unknown key `poll`"),
            "{e}"
        );
        let e = error("[[streams]]\nkind = \"logpull\"\n");
        assert!(
            e.contains("`logpull` is not one of") && e.contains("audit"),
            "{e}"
        );
        let e = error("[[streams]]\nkind = \"audit\"\n");
        assert!(e.contains("[[streams]] #1") && e.contains("account"), "{e}");
        let e = error("[[streams]]\nkind = \"audit\"\naccount = \"a\"\nlookback_seconds = \"x\"\n");
        assert!(
            e.contains("[[streams]] #1") && e.contains("whole number"),
            "{e}"
        );
        let e = error(
            "[[streams]]\nkind = \"audit\"\naccount = \"a\"\n\
             [[streams]]\nkind = \"audit\"\naccount = \"a\"\npoll_interval_seconds = 9\n",
        );
        assert!(e.contains("configured twice"), "{e}");
    }

    #[test]
    fn a_mistyped_secret_is_named_but_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cflogs.toml");
        std::fs::write(&path, "pg_password = 123456789\n").unwrap();
        let s = Settings::load(None, Some(&path)).unwrap();
        let e = format!("{:#}", Config::from_settings(&s, now()).unwrap_err());
        assert!(e.contains("PG_PASSWORD"), "{e}");
        assert!(!e.contains("123456789"), "{e}");
    }

    #[test]
    fn the_environment_overrides_the_file_and_bad_numbers_name_their_variable() {
        let s = Settings::from_pairs([
            ("CLOUDFLARE_API_TOKEN", "t".to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "abc".to_owned()),
            ("PG_PORT", "70000".to_owned()),
            ("PG_HOST", "127.0.0.1".to_owned()),
        ]);
        let e = format!("{:#}", Config::from_settings(&s, now()).unwrap_err());
        assert!(e.contains("PG_PORT"), "{e}");
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let mut all = vec![
            ("CLOUDFLARE_API_TOKEN", "t".to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "abc".to_owned()),
        ];
        all.extend(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Settings::from_pairs(all)
    }

    #[test]
    fn s3_and_postgresql_variables_map_onto_the_adapters() {
        use cflogs_s3::{Addressing, LockMode, ObjectLock};
        let c = Config::from_settings(
            &settings(&[
                ("S3_BUCKET", "b"),
                ("S3_PREFIX", "/p/q/"),
                ("S3_ENDPOINT", "http://127.0.0.1:3900"),
                ("S3_REGION", "garage"),
                ("S3_ACCESS_KEY", "GK1"),
                ("S3_SECRET_KEY", "s3cr3t-value"),
                ("S3_OBJECT_LOCK_MODE", "Compliance"),
                ("S3_OBJECT_LOCK_DAYS", "30"),
                ("PG_HOST", "db"),
                ("PG_DATABASE", "cflogs"),
                ("PG_USER", "ingest"),
                ("PG_POOL_SIZE", "9"),
                ("TIMESCALEDB", "off"),
                ("TIMESCALEDB_RETENTION_DAYS", "90"),
            ]),
            now(),
        )
        .unwrap();
        let a = &c.archive;
        assert_eq!(a.prefix, "p/q");
        assert_eq!(a.s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(a.s3.region.as_deref(), Some("garage"));
        assert_eq!(a.s3.addressing, Addressing::Path);
        assert_eq!(
            a.s3.secret_access_key.as_ref().map(|s| s.expose()),
            Some("s3cr3t-value")
        );
        assert_eq!(
            a.object_lock,
            Some(ObjectLock {
                mode: LockMode::Compliance,
                retain_for: Duration::from_secs(30 * 86_400)
            })
        );
        let Analytics::Postgres(pg) = &c.analytics else {
            panic!("PG_HOST selects PostgreSQL");
        };
        assert_eq!(
            (pg.host(), pg.port(), pg.database()),
            ("db", 5432, "cflogs")
        );
        assert_eq!(pg.pool_size(), 9);
        assert_eq!(pg.timescale().mode, cflogs_postgres::TimescaleMode::Off);
        assert_eq!(
            pg.timescale().retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        let vh = Config::from_settings(
            &settings(&[("S3_BUCKET", "b"), ("S3_PATH_STYLE", "false")]),
            now(),
        )
        .unwrap();
        assert_eq!(vh.archive.s3.addressing, Addressing::VirtualHosted);
        let url = Config::from_settings(
            &settings(&[
                ("DATABASE_URL", "postgres://u@h:7/d"),
                ("PG_HOST", "ignored"),
            ]),
            now(),
        )
        .unwrap();
        let Analytics::Postgres(pg) = &url.analytics else {
            panic!("DATABASE_URL selects PostgreSQL");
        };
        assert_eq!((pg.host(), pg.port(), pg.database()), ("h", 7, "d"));
    }

    #[test]
    fn s3_and_postgresql_errors_name_the_variable_and_the_fix() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("S3_ACCESS_KEY", "k")], "S3_BUCKET is not set"),
            (
                &[("S3_BUCKET", "b"), ("S3_ACCESS_KEY", "k")],
                "S3_SECRET_KEY is not",
            ),
            (
                &[("S3_BUCKET", "b"), ("S3_SECRET_KEY", "k")],
                "S3_ACCESS_KEY is not",
            ),
            (
                &[("S3_BUCKET", "b"), ("S3_ENDPOINT", "ftp://x")],
                "S3_ENDPOINT",
            ),
            (
                &[("S3_BUCKET", "b"), ("S3_PATH_STYLE", "maybe")],
                "S3_PATH_STYLE",
            ),
            (&[("S3_BUCKET", "b"), ("S3_PREFIX", "a//b")], "S3_PREFIX"),
            (
                &[
                    ("S3_BUCKET", "b"),
                    ("S3_OBJECT_LOCK_MODE", "strict"),
                    ("S3_OBJECT_LOCK_DAYS", "1"),
                ],
                "governance or compliance",
            ),
            (
                &[("S3_BUCKET", "b"), ("S3_OBJECT_LOCK_DAYS", "1")],
                "go together",
            ),
            (&[("CFLOGS_ARCHIVE_URL", "gs://b")], "CFLOGS_ARCHIVE_URL"),
            (&[("PG_USER", "u")], "PG_HOST"),
            (&[("PG_HOST", "h"), ("PG_USER", "u")], "PG_DATABASE"),
            (&[("PG_HOST", "h"), ("PG_DATABASE", "d")], "PG_USER"),
            (&[("PG_HOST", "h"), ("PG_PORT", "54x")], "PG_PORT"),
            (
                &[("DATABASE_URL", "postgres://u@h/d"), ("PG_POOL_SIZE", "0")],
                "PG_POOL_SIZE",
            ),
            (
                &[
                    ("DATABASE_URL", "postgres://u@h/d"),
                    ("TIMESCALEDB", "maybe"),
                ],
                "TIMESCALEDB",
            ),
            (
                &[("DATABASE_URL", "postgres://u@h/d"), ("PG_SSLMODE", "x")],
                "PG_SSLMODE",
            ),
            (
                &[("DATABASE_URL", "mysql://u:topsecret@h/d")],
                "DATABASE_URL",
            ),
            (&[("CFLOGS_METRICS_ADDR", "here")], "CFLOGS_METRICS_ADDR"),
            (
                &[("CLOUDFLARE_API_BASE_URL", "http://10.1.2.3:8787/client/v4")],
                "CLOUDFLARE_API_ALLOW_HTTP",
            ),
            (
                &[(
                    "CLOUDFLARE_API_BASE_URL",
                    "https://me:s3cr3t@proxy.example/v4",
                )],
                "must not carry credentials",
            ),
            (
                &[("CLOUDFLARE_API_ALLOW_HTTP", "sometimes")],
                "CLOUDFLARE_API_ALLOW_HTTP",
            ),
            (
                &[("CLOUDFLARE_RATE_LIMIT_PER_5_MIN", "many")],
                "CLOUDFLARE_RATE_LIMIT_PER_5_MIN",
            ),
        ];
        for (pairs, want) in cases {
            let got = first_error(&settings(pairs));
            assert!(
                got.contains(want),
                "{pairs:?}: {got:?} does not say {want:?}"
            );
            assert!(
                !got.contains("topsecret") && !got.contains("s3cr3t"),
                "{got}"
            );
        }
    }
}
