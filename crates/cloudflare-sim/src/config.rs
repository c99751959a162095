//! Simulator configuration: the builder, its validation and the error types.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::clock::SimClock;
use crate::simulator::Simulator;

/// Errors reported by [`SimulatorBuilder::build`] for an invalid configuration.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A probability or fraction is outside `[0, 1]` or not finite.
    #[error("{name} must be a probability in [0, 1], got {value}")]
    InvalidRate {
        /// The builder setting at fault (e.g. `error_rate`).
        name: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// No account was configured.
    #[error("at least one account is required")]
    NoAccounts,
    /// The same account id was configured twice.
    #[error("account {0:?} is configured twice")]
    DuplicateAccount(String),
    /// An account id, token, email or key is empty or contains whitespace / control chars.
    #[error("invalid {what}: {value:?}")]
    InvalidCredential {
        /// What was rejected (`account id`, `token`, `email`, `key`).
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// No credential (token or legacy email/key pair) was configured.
    #[error("at least one token or legacy email/key pair is required")]
    NoCredentials,
    /// A span whose start is not before its end.
    #[error("span start {from} must be before its end {to}")]
    EmptySpan {
        /// Span start.
        from: DateTime<Utc>,
        /// Span end.
        to: DateTime<Utc>,
    },
    /// The live event rate is negative, not finite or absurdly high.
    #[error("live rate must be finite and in [0, 100000] events/s, got {0}")]
    InvalidLiveRate(f64),
    /// Rate limit numbers that cannot work (zero limit or zero window).
    #[error("rate limit needs limit >= 1 and a window of at least 1 s")]
    InvalidRateLimit,
    /// Maximum burst size of 0.
    #[error("burst max size must be at least 1")]
    InvalidBurstSize,
    /// A duration too large to be represented as a calendar delta.
    #[error("{0} is too large")]
    DurationTooLarge(&'static str),
}

/// Errors from starting or stopping a simulator server.
#[derive(Debug, Error)]
pub enum SimError {
    /// Binding or serving failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Task(String),
}

/// How audit logs v2 report the next-page cursor in `result_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CursorStyle {
    /// `result_info.cursors.after` (empty string on the last page).
    #[default]
    After,
    /// `result_info.cursor` (key absent on the last page).
    Cursor,
    /// Alternates page by page: odd pages (1st, 3rd, ...) use `cursors.after`, even pages
    /// use `cursor`.
    Alternate,
}

impl fmt::Display for CursorStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CursorStyle::After => "after",
            CursorStyle::Cursor => "cursor",
            CursorStyle::Alternate => "alternate",
        })
    }
}

impl FromStr for CursorStyle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "after" => Ok(CursorStyle::After),
            "cursor" => Ok(CursorStyle::Cursor),
            "alternate" => Ok(CursorStyle::Alternate),
            other => Err(format!(
                "unknown cursor style {other:?} (expected after, cursor or alternate)"
            )),
        }
    }
}

/// Rate-limit settings: at most `limit` requests per credential in any sliding `window`;
/// the request that exceeds it starts a block of `block` during which every call of that
/// credential gets HTTP 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests allowed in one window.
    pub limit: u32,
    /// Length of the sliding window.
    pub window: Duration,
    /// How long all calls of the credential are refused once the limit is exceeded.
    pub block: Duration,
}

impl Default for RateLimitConfig {
    /// Cloudflare's documented global limit: 1200 requests per 5 minutes, 5 minute block.
    fn default() -> Self {
        Self {
            limit: 1200,
            window: Duration::from_secs(300),
            block: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AccountSpec {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenSpec {
    pub token: String,
    pub audit_read: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct LegacySpec {
    pub email: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanSpec {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub count: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LiveSpec {
    pub rate: f64,
    pub start: Option<DateTime<Utc>>,
}

/// Parameters of event generation shared by span and live mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GenParams {
    pub late_fraction: f64,
    pub max_late: Duration,
    pub malformed_rate: f64,
    pub burst_probability: f64,
    pub burst_max: u32,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct SimConfig {
    pub seed: u64,
    pub accounts: Vec<AccountSpec>,
    pub tokens: Vec<TokenSpec>,
    pub legacy: Vec<LegacySpec>,
    pub spans: Vec<SpanSpec>,
    pub live: Option<LiveSpec>,
    pub generation: GenParams,
    pub error_rate: f64,
    pub cut_body_rate: f64,
    pub page_past_end_400: bool,
    pub cursor_style: CursorStyle,
    pub rate_limit: Option<RateLimitConfig>,
    pub clock: SimClock,
    pub latency: Duration,
}

/// Builder for a [`Simulator`]; obtain it with [`Simulator::builder`].
///
/// Every setting has a default; at least one account and one credential are required.
/// [`build`](Self::build) validates everything and generates the span events.
#[derive(Debug, Clone)]
pub struct SimulatorBuilder {
    seed: u64,
    accounts: Vec<AccountSpec>,
    tokens: Vec<TokenSpec>,
    legacy: Vec<LegacySpec>,
    spans: Vec<SpanSpec>,
    live: Option<LiveSpec>,
    generation: GenParams,
    error_rate: f64,
    cut_body_rate: f64,
    page_past_end_400: bool,
    cursor_style: CursorStyle,
    rate_limit: Option<RateLimitConfig>,
    clock: SimClock,
    latency: Duration,
}

impl Default for SimulatorBuilder {
    fn default() -> Self {
        Self {
            seed: 0,
            accounts: Vec::new(),
            tokens: Vec::new(),
            legacy: Vec::new(),
            spans: Vec::new(),
            live: None,
            generation: GenParams {
                late_fraction: 0.0,
                max_late: Duration::from_secs(120),
                malformed_rate: 0.0,
                burst_probability: 0.02,
                burst_max: 120,
            },
            error_rate: 0.0,
            cut_body_rate: 0.0,
            page_past_end_400: true,
            cursor_style: CursorStyle::After,
            rate_limit: Some(RateLimitConfig::default()),
            clock: SimClock::system(),
            latency: Duration::ZERO,
        }
    }
}

impl SimulatorBuilder {
    /// Seed of every random choice (events, faults). Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Adds an account (its name defaults to `"Account <id>"`).
    pub fn account(self, id: impl Into<String>) -> Self {
        let id = id.into();
        let name = format!("Account {id}");
        self.account_named(id, name)
    }

    /// Adds an account with a display name (served as `account.name` in v2 events).
    pub fn account_named(mut self, id: impl Into<String>, name: impl Into<String>) -> Self {
        self.accounts.push(AccountSpec {
            id: id.into(),
            name: name.into(),
        });
        self
    }

    /// Adds an API token with the "Account Settings Read" permission on every account.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(TokenSpec {
            token: token.into(),
            audit_read: true,
        });
        self
    }

    /// Adds a valid API token that lacks the audit-log permission: it authenticates
    /// (and verifies) but audit log calls answer 403 code 9109.
    pub fn token_without_audit_permission(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(TokenSpec {
            token: token.into(),
            audit_read: false,
        });
        self
    }

    /// Adds a legacy global API key credential (`X-Auth-Email` + `X-Auth-Key`), with full
    /// access. Its rate limit is counted per email.
    pub fn legacy_key(mut self, email: impl Into<String>, key: impl Into<String>) -> Self {
        self.legacy.push(LegacySpec {
            email: email.into(),
            key: key.into(),
        });
        self
    }

    /// Adds `count` events per account spread over `[from, to)`, with bursts of equal
    /// timestamps. May be called several times.
    pub fn span(mut self, from: DateTime<Utc>, to: DateTime<Utc>, count: u64) -> Self {
        self.spans.push(SpanSpec { from, to, count });
        self
    }

    /// Live mode: per account, `events_per_sec` new events (on average) every second of
    /// simulated time, generated lazily up to the clock's "now". They start at the instant
    /// given by [`live_from`](Self::live_from), else at the end of the latest span, else
    /// at the clock's "now" when [`build`](Self::build) runs (rounded down to the second).
    pub fn live(mut self, events_per_sec: f64) -> Self {
        let start = self.live.and_then(|l| l.start);
        self.live = Some(LiveSpec {
            rate: events_per_sec,
            start,
        });
        self
    }

    /// Start instant of live generation (see [`live`](Self::live)); implies live mode
    /// with rate 1/s unless a rate was set.
    pub fn live_from(mut self, start: DateTime<Utc>) -> Self {
        let rate = self.live.map(|l| l.rate).unwrap_or(1.0);
        self.live = Some(LiveSpec {
            rate,
            start: Some(start),
        });
        self
    }

    /// Bursts of equal timestamps: each generated timestamp starts a burst with
    /// `probability`, of a size uniform in `2..=max_size`. Default 0.02 and 120, so ties
    /// straddle page boundaries. `max_size` 1 disables bursts.
    pub fn bursts(mut self, probability: f64, max_size: u32) -> Self {
        self.generation.burst_probability = probability;
        self.generation.burst_max = max_size;
        self
    }

    /// Fraction of events that become visible only some delay after their timestamp
    /// (uniform in `(0, max_late]`). Default 0.
    pub fn late_fraction(mut self, fraction: f64) -> Self {
        self.generation.late_fraction = fraction;
        self
    }

    /// Maximum visibility delay of late events. Default 120 s.
    pub fn max_late(mut self, max: Duration) -> Self {
        self.generation.max_late = max;
        self
    }

    /// Probability that an audit-log request answers a random 500/502/503/504. Default 0.
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = rate;
        self
    }

    /// Probability that a 200 audit-log response body is cut mid-stream. Default 0.
    pub fn cut_body_rate(mut self, rate: f64) -> Self {
        self.cut_body_rate = rate;
        self
    }

    /// Probability that a generated event is malformed (missing id, missing time or an
    /// unparsable time). Default 0.
    pub fn malformed_rate(mut self, rate: f64) -> Self {
        self.generation.malformed_rate = rate;
        self
    }

    /// Whether v1 answers HTTP 400 for a page past the last one. Default true.
    pub fn page_past_end_400(mut self, on: bool) -> Self {
        self.page_past_end_400 = on;
        self
    }

    /// How v2 reports the next cursor. Default [`CursorStyle::After`].
    pub fn cursor_style(mut self, style: CursorStyle) -> Self {
        self.cursor_style = style;
        self
    }

    /// Rate limit: `limit` requests per credential per sliding `window`, then a `block`.
    /// Default 1200 / 300 s / 300 s.
    pub fn rate_limit(mut self, limit: u32, window: Duration, block: Duration) -> Self {
        self.rate_limit = Some(RateLimitConfig {
            limit,
            window,
            block,
        });
        self
    }

    /// How long every audit-log answer (v1 and v2) takes after the request was counted
    /// (Cloudflare's take hundreds of milliseconds). Default 0.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Turns rate limiting off (no 429s, no `Ratelimit` headers).
    pub fn no_rate_limit(mut self) -> Self {
        self.rate_limit = None;
        self
    }

    /// The clock the simulator reads "now" from. Default [`SimClock::system`].
    pub fn clock(mut self, clock: SimClock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the configuration and generates the span events.
    pub fn build(self) -> Result<Simulator, ConfigError> {
        let config = self.validate()?;
        Ok(Simulator::from_config(config))
    }

    fn validate(self) -> Result<SimConfig, ConfigError> {
        fn rate(name: &'static str, value: f64) -> Result<(), ConfigError> {
            if value.is_finite() && (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::InvalidRate { name, value })
            }
        }
        fn credential(what: &'static str, value: &str) -> Result<(), ConfigError> {
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(ConfigError::InvalidCredential {
                    what,
                    value: value.to_owned(),
                })
            } else {
                Ok(())
            }
        }

        rate("late_fraction", self.generation.late_fraction)?;
        rate("malformed_rate", self.generation.malformed_rate)?;
        rate("burst probability", self.generation.burst_probability)?;
        rate("error_rate", self.error_rate)?;
        rate("cut_body_rate", self.cut_body_rate)?;
        if self.generation.burst_max == 0 {
            return Err(ConfigError::InvalidBurstSize);
        }
        if chrono::TimeDelta::from_std(self.generation.max_late).is_err()
            || self.generation.max_late > Duration::from_secs(365 * 86_400)
        {
            return Err(ConfigError::DurationTooLarge("max_late"));
        }
        if self.accounts.is_empty() {
            return Err(ConfigError::NoAccounts);
        }
        for (i, a) in self.accounts.iter().enumerate() {
            credential("account id", &a.id)?;
            if a.id.contains('/') || a.id.contains('?') || a.id.contains('#') {
                return Err(ConfigError::InvalidCredential {
                    what: "account id",
                    value: a.id.clone(),
                });
            }
            if self.accounts[..i].iter().any(|b| b.id == a.id) {
                return Err(ConfigError::DuplicateAccount(a.id.clone()));
            }
        }
        if self.tokens.is_empty() && self.legacy.is_empty() {
            return Err(ConfigError::NoCredentials);
        }
        for t in &self.tokens {
            credential("token", &t.token)?;
        }
        for l in &self.legacy {
            credential("email", &l.email)?;
            credential("key", &l.key)?;
        }
        for s in &self.spans {
            if s.from >= s.to {
                return Err(ConfigError::EmptySpan {
                    from: s.from,
                    to: s.to,
                });
            }
        }
        if let Some(live) = self.live
            && !(live.rate.is_finite() && (0.0..=100_000.0).contains(&live.rate))
        {
            return Err(ConfigError::InvalidLiveRate(live.rate));
        }
        if let Some(rl) = self.rate_limit {
            if rl.limit == 0 || rl.window < Duration::from_secs(1) {
                return Err(ConfigError::InvalidRateLimit);
            }
            if rl.window > Duration::from_secs(30 * 86_400) {
                return Err(ConfigError::DurationTooLarge("rate limit window"));
            }
            if rl.block > Duration::from_secs(30 * 86_400) {
                return Err(ConfigError::DurationTooLarge("rate limit block"));
            }
        }
        Ok(SimConfig {
            seed: self.seed,
            accounts: self.accounts,
            tokens: self.tokens,
            legacy: self.legacy,
            spans: self.spans,
            live: self.live,
            generation: self.generation,
            error_rate: self.error_rate,
            cut_body_rate: self.cut_body_rate,
            page_past_end_400: self.page_past_end_400,
            cursor_style: self.cursor_style,
            rate_limit: self.rate_limit,
            clock: self.clock,
            latency: self.latency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SimulatorBuilder {
        Simulator::builder().account("acc1").token("tok")
    }

    #[test]
    fn rejects_rates_outside_unit_interval() {
        let err = base().error_rate(1.5).build().unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidRate {
                name: "error_rate",
                value: 1.5
            }
        );
        assert!(matches!(
            base().cut_body_rate(-0.1).build().unwrap_err(),
            ConfigError::InvalidRate {
                name: "cut_body_rate",
                ..
            }
        ));
        assert!(matches!(
            base().late_fraction(f64::NAN).build().unwrap_err(),
            ConfigError::InvalidRate {
                name: "late_fraction",
                ..
            }
        ));
        assert!(matches!(
            base().malformed_rate(2.0).build().unwrap_err(),
            ConfigError::InvalidRate {
                name: "malformed_rate",
                ..
            }
        ));
    }

    #[test]
    fn requires_accounts_and_credentials() {
        assert_eq!(
            Simulator::builder().token("t").build().unwrap_err(),
            ConfigError::NoAccounts
        );
        assert_eq!(
            Simulator::builder().account("a").build().unwrap_err(),
            ConfigError::NoCredentials
        );
        assert_eq!(
            base().account("acc1").build().unwrap_err(),
            ConfigError::DuplicateAccount("acc1".into())
        );
        assert!(matches!(
            base().token("has space").build().unwrap_err(),
            ConfigError::InvalidCredential { what: "token", .. }
        ));
        assert!(matches!(
            base().account("a/b").build().unwrap_err(),
            ConfigError::InvalidCredential {
                what: "account id",
                ..
            }
        ));
    }

    #[test]
    fn rejects_bad_span_live_and_rate_limit() {
        let t = Utc::now();
        assert!(matches!(
            base().span(t, t, 10).build().unwrap_err(),
            ConfigError::EmptySpan { .. }
        ));
        assert_eq!(
            base().live(-1.0).build().unwrap_err(),
            ConfigError::InvalidLiveRate(-1.0)
        );
        assert_eq!(
            base()
                .rate_limit(0, Duration::from_secs(1), Duration::ZERO)
                .build()
                .unwrap_err(),
            ConfigError::InvalidRateLimit
        );
        assert_eq!(
            base()
                .rate_limit(5, Duration::from_millis(10), Duration::ZERO)
                .build()
                .unwrap_err(),
            ConfigError::InvalidRateLimit
        );
        assert_eq!(
            base().bursts(0.5, 0).build().unwrap_err(),
            ConfigError::InvalidBurstSize
        );
    }

    #[test]
    fn error_messages_are_clear() {
        let err = base().error_rate(3.0).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "error_rate must be a probability in [0, 1], got 3"
        );
    }

    #[test]
    fn cursor_style_parses() {
        assert_eq!("after".parse::<CursorStyle>(), Ok(CursorStyle::After));
        assert_eq!("CURSOR".parse::<CursorStyle>(), Ok(CursorStyle::Cursor));
        assert_eq!(
            "alternate".parse::<CursorStyle>(),
            Ok(CursorStyle::Alternate)
        );
        assert!("x".parse::<CursorStyle>().is_err());
        assert_eq!(CursorStyle::Alternate.to_string(), "alternate");
    }
}
