//! Configuration: the environment variables of the Python tool this replaces (so an existing
//! `.env` keeps working), a `.env` file, and an optional TOML file for many accounts.
//!
//! Precedence: the process environment, then the `.env` file, then the TOML file. The TOML
//! file's top-level keys are the same names in lower case (`poll_interval_seconds = 60`), plus
//! `[[accounts]]` tables; an unknown key is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cflogs_cloudflare::{AccountId, AuditApi, Credentials, PerPage, Secret};
use cflogs_core::Timestamp;

/// Every variable cflogs reads, with what it is for (`cflogs config` and errors print these).
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "CLOUDFLARE_API_TOKEN",
        "API token with Account Settings Read (secret)",
    ),
    (
        "CLOUDFLARE_API_EMAIL",
        "legacy auth: account email (with CLOUDFLARE_API_KEY)",
    ),
    ("CLOUDFLARE_API_KEY", "legacy auth: global API key (secret)"),
    (
        "CLOUDFLARE_ACCOUNT_ID",
        "account id, or several separated by commas",
    ),
    ("CLOUDFLARE_AUDIT_API", "v1 (default) or v2"),
    (
        "CLOUDFLARE_API_BASE_URL",
        "API base URL (proxies, the simulator)",
    ),
    ("CLOUDFLARE_PER_PAGE", "page size, 1 to 1000 (default 1000)"),
    (
        "CLOUDFLARE_DIRECTION",
        "accepted for compatibility; cflogs always reads ascending",
    ),
    (
        "CLOUDFLARE_HIDE_USER_LOGS",
        "true to leave out events by users (v1)",
    ),
    (
        "CLOUDFLARE_SINCE_SAFETY_LAG_SECONDS",
        "lookback before the watermark (default 300)",
    ),
    (
        "CLOUDFLARE_REQUEST_TIMEOUT_SECONDS",
        "timeout of one request (default 30)",
    ),
    (
        "CLOUDFLARE_RATE_LIMIT_PER_5_MIN",
        "request budget of the token (default 1200)",
    ),
    (
        "POLL_INTERVAL_SECONDS",
        "wait between polls once caught up (default 60)",
    ),
    (
        "INITIAL_CHECKPOINT",
        "RFC 3339 start of a new stream (default: now minus the poll interval)",
    ),
    (
        "DATABASE_URL",
        "postgres://… (else the PG_* variables; else SQLite)",
    ),
    ("PG_HOST", "PostgreSQL host"),
    ("PG_PORT", "PostgreSQL port (default 5432)"),
    ("PG_DATABASE", "PostgreSQL database"),
    ("PG_USER", "PostgreSQL user"),
    ("PG_PASSWORD", "PostgreSQL password (secret)"),
    (
        "PG_SSLMODE",
        "disable, prefer, require, verify-ca, verify-full",
    ),
    ("PG_POOL_SIZE", "connections in the pool"),
    ("PG_CONNECT_TIMEOUT_SECONDS", "connect timeout"),
    ("PG_WRITE_PARALLELISM", "parallel COPY slices per batch"),
    ("TIMESCALEDB", "auto (default), require or off"),
    (
        "TIMESCALEDB_RETENTION_DAYS",
        "drop chunks older than this (TimescaleDB)",
    ),
    (
        "TIMESCALEDB_COMPRESS_AFTER_DAYS",
        "compress chunks older than this (TimescaleDB)",
    ),
    (
        "CFLOGS_SQLITE_PATH",
        "SQLite file when no PostgreSQL is configured",
    ),
    ("S3_BUCKET", "archive bucket (else a local directory)"),
    ("S3_PREFIX", "key prefix in the bucket"),
    ("S3_ENDPOINT", "S3 endpoint of MinIO, Garage, R2…"),
    ("S3_REGION", "region"),
    ("S3_ACCESS_KEY", "access key"),
    ("S3_SECRET_KEY", "secret key (secret)"),
    ("S3_SESSION_TOKEN", "session token (secret)"),
    ("S3_PATH_STYLE", "true for path-style addressing"),
    ("S3_OBJECT_LOCK_MODE", "governance or compliance"),
    ("S3_OBJECT_LOCK_DAYS", "Object Lock retention in days"),
    (
        "CFLOGS_ARCHIVE_URL",
        "archive as a URL: s3://bucket/prefix, file:///dir, memory://",
    ),
    (
        "CFLOGS_DATA_DIR",
        "where the embedded defaults live (default ./cflogs-data)",
    ),
    (
        "CFLOGS_BATCH_MAX_EVENTS",
        "events per batch (default 10000)",
    ),
    (
        "CFLOGS_METRICS_ADDR",
        "where `run` serves /metrics, /healthz and /readyz (default 127.0.0.1:9900; off)",
    ),
];

const SECRETS: &[&str] = &[
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_API_KEY",
    "PG_PASSWORD",
    "S3_SECRET_KEY",
    "S3_SESSION_TOKEN",
];

/// Whether `name` is one of cflogs' variables ([`VARIABLES`]).
fn is_declared(name: &str) -> bool {
    VARIABLES.iter().any(|(declared, _)| *declared == name)
}

/// One account to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountStream {
    /// The account.
    pub account: AccountId,
    /// Audit log API version.
    pub api: AuditApi,
}

/// Where the settings come from, merged.
#[derive(Debug, Default)]
pub struct Settings {
    values: BTreeMap<String, (String, &'static str)>,
    accounts: Vec<AccountStream>,
}

fn parse_api(text: &str, var: &str) -> Result<AuditApi> {
    match text.trim().to_ascii_lowercase().as_str() {
        "v1" | "1" => Ok(AuditApi::V1),
        "v2" | "2" => Ok(AuditApi::V2),
        other => bail!("{var} {other:?} is not an audit log API version; use v1 or v2"),
    }
}

impl Settings {
    /// Reads the environment, `dotenv` (if it exists) and `file` (if given).
    ///
    /// # Errors
    /// An unreadable or invalid file, an unknown key in the TOML file.
    pub fn load(dotenv: Option<&Path>, file: Option<&Path>) -> Result<Self> {
        let mut settings = Settings::default();
        if let Some(path) = file {
            settings.read_toml(path)?;
        }
        if let Some(path) = dotenv.filter(|p| p.exists()) {
            for item in dotenvy::from_path_iter(path)
                .with_context(|| format!("cannot read {}", path.display()))?
            {
                let (k, v) =
                    item.with_context(|| format!("{} has a malformed line", path.display()))?;
                // Only cflogs' own variables: a .env shared with docker compose holds others
                // (GRAFANA_ADMIN_PASSWORD…) that `cflogs config` must not print.
                if is_declared(&k) {
                    settings.values.insert(k, (v, ".env"));
                }
            }
        }
        for (k, v) in std::env::vars() {
            if is_declared(&k) {
                settings.values.insert(k, (v, "environment"));
            }
        }
        Ok(settings)
    }

    /// Settings from explicit pairs only (tests, the demo).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Self {
        Settings {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), (v, "given")))
                .collect(),
            ..Settings::default()
        }
    }

    fn read_toml(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        for (key, value) in table {
            if key == "accounts" {
                let list = value.as_array().with_context(|| {
                    format!(
                        "{}: `accounts` must be a list of [[accounts]] tables",
                        path.display()
                    )
                })?;
                for item in list {
                    let t = item.as_table().with_context(|| {
                        format!(
                            "{}: each [[accounts]] entry must be a table",
                            path.display()
                        )
                    })?;
                    for k in t.keys() {
                        if k != "id" && k != "api" {
                            bail!(
                                "{}: unknown key `{k}` in [[accounts]]; known keys: id, api",
                                path.display()
                            );
                        }
                    }
                    let id = t.get("id").and_then(|v| v.as_str()).with_context(|| {
                        format!(
                            "{}: an [[accounts]] entry needs `id = \"<account id>\"`",
                            path.display()
                        )
                    })?;
                    let api = match t.get("api").and_then(|v| v.as_str()) {
                        Some(a) => parse_api(a, "accounts.api")?,
                        None => AuditApi::V1,
                    };
                    self.accounts.push(AccountStream {
                        account: AccountId::new(id)?,
                        api,
                    });
                }
                continue;
            }
            let var = key.to_ascii_uppercase();
            if !VARIABLES.iter().any(|(name, _)| *name == var) {
                bail!(
                    "{}: unknown key `{key}`; known keys are the variable names in lower case \
                     (run `cflogs config --list`) and [[accounts]]",
                    path.display()
                );
            }
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => bail!(
                    "{}: `{key}` must be a string, number or boolean, not {}",
                    path.display(),
                    other.type_str()
                ),
            };
            self.values.insert(var, (text, "config file"));
        }
        Ok(())
    }

    /// A value, trimmed, `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .map(|(v, _)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The lookup function the adapters' `from_env` constructors take.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| self.get(name)
    }

    fn seconds(&self, name: &str, default: u64) -> Result<Duration> {
        match self.get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => v.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                anyhow::anyhow!(
                    "{name} {v:?} is not a whole number of seconds; e.g. {name}={default}"
                )
            }),
        }
    }

    fn flag(&self, name: &str) -> Result<bool> {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => bail!("{name} {v:?} is not a boolean; use true or false"),
        }
    }

    /// The effective settings, one line each, secrets masked.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .values
            .iter()
            .map(|(k, (v, origin))| {
                let shown = if SECRETS.contains(&k.as_str()) {
                    "***".to_owned()
                } else if k == "DATABASE_URL" {
                    cflogs_postgres::redact_url(v)
                } else {
                    v.clone()
                };
                format!("{k}={shown}    # from {origin}")
            })
            .collect();
        for a in &self.accounts {
            lines.push(format!(
                "[[accounts]] id={} api={}    # from config file",
                a.account.as_str(),
                a.api.as_str()
            ));
        }
        lines
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

/// The validated configuration of a run.
#[derive(Debug)]
pub struct Config {
    /// Cloudflare client settings.
    pub client: cflogs_cloudflare::ClientConfig,
    /// The streams to read.
    pub accounts: Vec<AccountStream>,
    /// Page size.
    pub per_page: PerPage,
    /// Hide user events (v1).
    pub hide_user_logs: bool,
    /// Analytics and checkpoints.
    pub analytics: Analytics,
    /// The archive.
    pub archive: cflogs_s3::ArchiveConfig,
    /// Pipeline policy (start, lookback, poll interval, caps).
    pub policy: cflogs_core::Policy,
    /// Where `run` serves metrics and health, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl Config {
    /// Validates `settings`; `now` is the time a new stream starts from by default.
    ///
    /// # Errors
    /// The first invalid or missing setting, naming the variable and the fix.
    pub fn from_settings(settings: &Settings, now: Timestamp) -> Result<Self> {
        let credentials = match (
            settings.get("CLOUDFLARE_API_TOKEN"),
            settings.get("CLOUDFLARE_API_EMAIL"),
            settings.get("CLOUDFLARE_API_KEY"),
        ) {
            (Some(token), _, _) => Credentials::Token(Secret::new(token)),
            (None, Some(email), Some(key)) => Credentials::Legacy {
                email,
                key: Secret::new(key),
            },
            _ => bail!(
                "CLOUDFLARE_API_TOKEN is not set: create an API token with the \"Account \
                 Settings Read\" permission (dashboard → My Profile → API Tokens) and set \
                 CLOUDFLARE_API_TOKEN, or set CLOUDFLARE_API_EMAIL and CLOUDFLARE_API_KEY"
            ),
        };
        let mut client = cflogs_cloudflare::ClientConfig::new(credentials);
        if let Some(url) = settings.get("CLOUDFLARE_API_BASE_URL") {
            client.base_url = url;
        }
        client.request_timeout = settings.seconds("CLOUDFLARE_REQUEST_TIMEOUT_SECONDS", 30)?;
        if let Some(n) = settings.get("CLOUDFLARE_RATE_LIMIT_PER_5_MIN") {
            let n: u32 = n.parse().map_err(|_| {
                anyhow::anyhow!(
                    "CLOUDFLARE_RATE_LIMIT_PER_5_MIN {n:?} is not a number; Cloudflare allows 1200"
                )
            })?;
            client.rate_budget = cflogs_cloudflare::RateBudget::new(n, Duration::from_secs(300))?;
        }
        client.validate()?;

        let api = match settings.get("CLOUDFLARE_AUDIT_API") {
            Some(a) => parse_api(&a, "CLOUDFLARE_AUDIT_API")?,
            None => AuditApi::V1,
        };
        let mut accounts = settings.accounts.clone();
        if let Some(ids) = settings.get("CLOUDFLARE_ACCOUNT_ID") {
            for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                accounts.push(AccountStream {
                    account: AccountId::new(id)?,
                    api,
                });
            }
        }
        if accounts.is_empty() {
            bail!(
                "CLOUDFLARE_ACCOUNT_ID is not set: set it to the account id (dashboard → account \
                 home → Account ID), several separated by commas, or list [[accounts]] in the \
                 config file"
            );
        }
        // The same account twice (in the file and the environment, or listed twice) would be two
        // pipelines on one stream, fencing each other.
        let mut unique: Vec<AccountStream> = Vec::with_capacity(accounts.len());
        for account in accounts {
            if !unique.contains(&account) {
                unique.push(account);
            }
        }
        let accounts = unique;
        let per_page = match settings.get("CLOUDFLARE_PER_PAGE") {
            Some(n) => PerPage::new(n.parse().map_err(|_| {
                anyhow::anyhow!("CLOUDFLARE_PER_PAGE {n:?} is not a number; use 1 to 1000")
            })?)?,
            None => PerPage::default(),
        };
        if let Some(d) = settings.get("CLOUDFLARE_DIRECTION")
            && !d.eq_ignore_ascii_case("asc")
        {
            tracing::warn!(value = %d, "CLOUDFLARE_DIRECTION is ignored: cflogs always reads ascending");
        }

        let poll = settings.seconds("POLL_INTERVAL_SECONDS", 60)?;
        if poll.is_zero() {
            bail!("POLL_INTERVAL_SECONDS must be at least 1");
        }
        let start_at = match settings.get("INITIAL_CHECKPOINT") {
            Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    anyhow::anyhow!(
                        "INITIAL_CHECKPOINT {t:?} is not an RFC 3339 time ({e}); e.g. 2026-11-01T00:00:00Z"
                    )
                })?,
            None => now - chrono::Duration::from_std(poll).unwrap_or_default(),
        };
        let mut policy = cflogs_core::Policy::new(start_at);
        policy.poll_interval = poll;
        policy.lookback = settings.seconds("CLOUDFLARE_SINCE_SAFETY_LAG_SECONDS", 300)?;
        policy.max_span = policy
            .max_span
            .max(policy.lookback + Duration::from_secs(60));
        if let Some(n) = settings.get("CFLOGS_BATCH_MAX_EVENTS") {
            let n: usize = n.parse().map_err(|_| {
                anyhow::anyhow!("CFLOGS_BATCH_MAX_EVENTS {n:?} is not a number; e.g. 10000")
            })?;
            policy.limits = cflogs_core::BatchLimits::new(n, policy.limits.max_bytes())?;
        }
        policy.validate()?;

        let data_dir = PathBuf::from(
            settings
                .get("CFLOGS_DATA_DIR")
                .unwrap_or_else(|| "./cflogs-data".to_owned()),
        );
        // Any PostgreSQL or S3 setting means the user wants that service: a missing piece is an
        // error naming it, never a silent fall back to the embedded default.
        let any = |selects: fn(&str) -> bool| {
            VARIABLES
                .iter()
                .any(|(name, _)| selects(name) && settings.get(name).is_some())
        };
        let analytics =
            if any(|n| n == "DATABASE_URL" || n.starts_with("PG_") || n.starts_with("TIMESCALEDB"))
            {
                Analytics::Postgres(Box::new(cflogs_postgres::PostgresConfig::from_env(
                    settings.lookup(),
                )?))
            } else {
                // Under CFLOGS_DATA_DIR unless CFLOGS_SQLITE_PATH says otherwise.
                Analytics::Sqlite(match settings.get("CFLOGS_SQLITE_PATH") {
                    Some(_) => cflogs_sqlite::SqliteConfig::from_env(settings.lookup())?,
                    None => cflogs_sqlite::SqliteConfig::new(data_dir.join("cflogs.sqlite3")),
                })
            };
        let archive = if let Some(url) = settings.get("CFLOGS_ARCHIVE_URL") {
            cflogs_s3::ArchiveConfig::from_url(&url)?.apply_lookup(settings.lookup())?
        } else if any(|n| n.starts_with("S3_")) {
            cflogs_s3::ArchiveConfig::from_lookup(settings.lookup())?
        } else {
            cflogs_s3::ArchiveConfig::file(data_dir.join("archive"))
        };
        let metrics_addr = match settings.get("CFLOGS_METRICS_ADDR") {
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v.parse().map_err(|_| {
                anyhow::anyhow!(
                    "CFLOGS_METRICS_ADDR {v:?} is not an address; e.g. 0.0.0.0:9900, or off"
                )
            })?),
            None => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9900))),
        };
        Ok(Config {
            metrics_addr,
            client,
            accounts,
            per_page,
            hide_user_logs: settings.flag("CLOUDFLARE_HIDE_USER_LOGS")?,
            analytics,
            archive,
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        chrono::Utc::now()
    }

    fn error(pairs: Vec<(&str, &str)>) -> String {
        let s = Settings::from_pairs(pairs.into_iter().map(|(k, v)| (k, v.to_owned())));
        format!("{:#}", Config::from_settings(&s, now()).unwrap_err())
    }

    #[test]
    fn an_account_listed_twice_is_one_stream() {
        let s = Settings::from_pairs([
            ("CLOUDFLARE_API_TOKEN", "t".to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "a1, a2, a1".to_owned()),
        ]);
        let config = Config::from_settings(&s, now()).unwrap();
        let ids: Vec<&str> = config.accounts.iter().map(|a| a.account.as_str()).collect();
        assert_eq!(ids, ["a1", "a2"]);
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
    fn every_variable_read_is_declared() {
        // Settings::load keeps only declared variables: one read but not declared would be
        // silently ignored when it comes from the environment.
        let source = include_str!("config.rs");
        for part in source.split("get(\"").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            if name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !name.is_empty()
            {
                assert!(
                    VARIABLES.iter().any(|(v, _)| *v == name),
                    "{name} is read but not in VARIABLES"
                );
            }
        }
    }

    #[test]
    fn defaults_are_sqlite_and_a_local_archive() {
        let s = Settings::from_pairs([
            ("CLOUDFLARE_API_TOKEN", "t".to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "a1, a2".to_owned()),
            ("CFLOGS_DATA_DIR", "/tmp/x".to_owned()),
        ]);
        let c = Config::from_settings(&s, now()).unwrap();
        assert_eq!(c.accounts.len(), 2);
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
    fn the_toml_file_rejects_unknown_keys_and_reads_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cflogs.toml");
        std::fs::write(
            &path,
            "poll_interval_seconds = 30\n[[accounts]]\nid = \"a1\"\napi = \"v2\"\n",
        )
        .unwrap();
        let s = Settings::load(None, Some(&path)).unwrap();
        assert_eq!(s.get("POLL_INTERVAL_SECONDS").as_deref(), Some("30"));
        assert_eq!(s.accounts[0].api, AuditApi::V2);
        std::fs::write(&path, "pol_interval = 30\n").unwrap();
        let e = format!("{:#}", Settings::load(None, Some(&path)).unwrap_err());
        assert!(e.contains("unknown key `pol_interval`"), "{e}");
    }
}
