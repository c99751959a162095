//! Settings of the Cloudflare client and sources. Each type validates at construction.

use std::time::Duration;

use crate::error::{Error, Result};

pub use cflogs_core::Secret;

/// How requests authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// An API token, sent as `Authorization: Bearer …` (recommended).
    Token(Secret),
    /// The legacy global API key, sent as `X-Auth-Email` and `X-Auth-Key`.
    Legacy {
        /// The account email.
        email: String,
        /// The global API key.
        key: Secret,
    },
}

/// Requests allowed per period for one token. Cloudflare allows 1200 per 5 minutes; one more
/// blocks *every* call of the token for 5 minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateBudget {
    requests: u32,
    per: Duration,
}

impl RateBudget {
    /// `requests` per `per`.
    ///
    /// # Errors
    /// [`Error::Config`] when either is zero.
    pub fn new(requests: u32, per: Duration) -> Result<Self> {
        if requests == 0 || per.is_zero() {
            return Err(Error::Config(
                "the rate budget needs at least 1 request per non-zero period".into(),
            ));
        }
        Ok(Self { requests, per })
    }

    /// Requests per period.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The period.
    pub fn per(&self) -> Duration {
        self.per
    }
}

impl Default for RateBudget {
    /// Cloudflare's limit: 1200 requests per 5 minutes.
    fn default() -> Self {
        Self {
            requests: 1200,
            per: Duration::from_secs(300),
        }
    }
}

/// Settings of a [`CloudflareClient`](crate::CloudflareClient).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// API base URL, `https://api.cloudflare.com/client/v4` unless a proxy or simulator is
    /// used (`CLOUDFLARE_API_BASE_URL`).
    pub base_url: String,
    /// How requests authenticate.
    pub credentials: Credentials,
    /// Time allowed for one request, body included (`CLOUDFLARE_REQUEST_TIMEOUT_SECONDS`).
    pub request_timeout: Duration,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Retries of one request after transient failures (5xx, 429, connection errors, cut
    /// bodies), before the cycle fails and is retried by the pipeline.
    pub max_retries: u32,
    /// First retry delay; it doubles up to `retry_max_delay`, with full jitter.
    pub retry_initial_delay: Duration,
    /// Longest retry delay (a `Retry-After` from Cloudflare is honoured even when longer).
    pub retry_max_delay: Duration,
    /// The token's request budget, shared by every stream using this client.
    pub rate_budget: RateBudget,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
    /// Allows a plain `http://` base URL to a host that is not loopback (the token would
    /// cross the network unencrypted); `http://` to 127.0.0.0/8, `::1` or `localhost` is always
    /// allowed (the simulator, a local proxy).
    pub allow_http: bool,
}

/// `raw` (a URL, or what was meant as one) with any user information (`user:password@`,
/// `user@`, `:password@`, a password holding `@`) replaced by `***@`, for messages and
/// `cflogs config`. Everything up to the last `@` before the path, query or fragment goes; if
/// the path holds an `@` too, more is hidden than needed, never less.
pub fn redact_userinfo(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return raw.to_owned();
    };
    let rest = &raw[scheme_end + 3..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}://***@{}", &raw[..scheme_end], &rest[at + 1..]),
        None => raw.to_owned(),
    }
}

/// Whether `url`'s host is a loopback address (`127.0.0.0/8`, `::1`) or `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl ClientConfig {
    /// The defaults for `credentials`: Cloudflare's API, 30 s request timeout, 10 s connect
    /// timeout, 8 retries from 500 ms to 60 s, 1200 requests per 5 minutes, 64 MiB bodies.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            base_url: "https://api.cloudflare.com/client/v4".to_owned(),
            credentials,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 8,
            retry_initial_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(60),
            rate_budget: RateBudget::default(),
            max_body_bytes: 64 << 20,
            allow_http: false,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: a base URL that is not `http(s)://…`, empty
    /// credentials, zero timeouts or body bound.
    pub fn validate(&self) -> Result<()> {
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| {
            Error::Config(format!(
                "CLOUDFLARE_API_BASE_URL {:?} is not a URL ({e}); use e.g. https://api.cloudflare.com/client/v4",
                redact_userinfo(&self.base_url)
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::Config(format!(
                "CLOUDFLARE_API_BASE_URL {:?} must be an http:// or https:// URL with a host",
                redact_userinfo(&self.base_url)
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::Config(
                "CLOUDFLARE_API_BASE_URL must not carry credentials (user:password@); the token \
                 goes in CLOUDFLARE_API_TOKEN"
                    .into(),
            ));
        }
        if url.scheme() == "http" && !self.allow_http && !is_loopback(&url) {
            return Err(Error::Config(format!(
                "CLOUDFLARE_API_BASE_URL {:?} is plain http:// to a host that is not loopback: \
                 the API token would cross the network unencrypted. Use https://, or set \
                 CLOUDFLARE_API_ALLOW_HTTP=true for a network you trust (the Compose demo's \
                 simulator)",
                self.base_url
            )));
        }

        match &self.credentials {
            Credentials::Token(t) if t.expose().trim().is_empty() => {
                return Err(Error::Config(
                    "CLOUDFLARE_API_TOKEN is empty; create a token with the \"Account Settings Read\" permission".into(),
                ));
            }
            Credentials::Legacy { email, key }
                if email.trim().is_empty() || key.expose().trim().is_empty() =>
            {
                return Err(Error::Config(
                    "the legacy key needs both CLOUDFLARE_API_EMAIL and CLOUDFLARE_API_KEY".into(),
                ));
            }
            _ => {}
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "CLOUDFLARE_REQUEST_TIMEOUT_SECONDS must be at least 1".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(Error::Config(
                "the response body bound must be at least 1 KiB".into(),
            ));
        }
        if self.retry_initial_delay.is_zero() || self.retry_max_delay < self.retry_initial_delay {
            return Err(Error::Config(
                "the first retry delay must be positive and at most the longest".into(),
            ));
        }
        Ok(())
    }
}

/// A Cloudflare account id (`CLOUDFLARE_ACCOUNT_ID`): 1 to 64 ASCII letters, digits, `-`, `_`
/// (real ids are 32 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// Validates an account id.
    ///
    /// # Errors
    /// [`Error::Config`] naming `CLOUDFLARE_ACCOUNT_ID`.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let ok = (1..=64).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(id))
        } else {
            Err(Error::Config(format!(
                "CLOUDFLARE_ACCOUNT_ID {id:?} is not an account id; copy the 32-character id \
                 from the dashboard's account overview"
            )))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Page size of audit log requests (`CLOUDFLARE_PER_PAGE`): 1 to 1000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerPage(u32);

impl PerPage {
    /// Cloudflare's largest page.
    pub const MAX: PerPage = PerPage(1000);

    /// Validates a page size.
    ///
    /// # Errors
    /// [`Error::Config`] unless `1 <= n <= 1000`.
    pub fn new(n: u32) -> Result<Self> {
        if (1..=1000).contains(&n) {
            Ok(Self(n))
        } else {
            Err(Error::Config(format!(
                "CLOUDFLARE_PER_PAGE {n} is out of range; Cloudflare allows 1 to 1000"
            )))
        }
    }

    /// The size.
    pub fn get(&self) -> u32 {
        self.0
    }
}

impl Default for PerPage {
    fn default() -> Self {
        Self::MAX
    }
}

/// Which audit log API a source reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditApi {
    /// `GET /accounts/{id}/audit_logs` (page numbers).
    V1,
    /// `GET /accounts/{id}/logs/audit` (cursors).
    V2,
}

impl AuditApi {
    /// `"v1"` or `"v2"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditApi::V1 => "v1",
            AuditApi::V2 => "v2",
        }
    }
}

/// Settings of one [`AuditLogSource`](crate::AuditLogSource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSourceConfig {
    /// The account.
    pub account: AccountId,
    /// The API version.
    pub api: AuditApi,
    /// Page size.
    pub per_page: PerPage,
    /// Pages of one window asked at once (v1, whose pages are numbered; v2 pages by cursor,
    /// one at a time). Default 4: enough to spend the request budget when a page takes up to
    /// a second to answer.
    pub page_concurrency: std::num::NonZeroU32,
    /// Leave out events by users (`CLOUDFLARE_HIDE_USER_LOGS`, v1 only).
    pub hide_user_logs: bool,
    /// Plan windows on Cloudflare's clock: the pipeline's "now" plus the skew the client
    /// measures from the API's `Date` header (see
    /// [`AuditLogSource`](crate::AuditLogSource)'s `clock_offset`). Default off, because the
    /// skew is measured against the system clock, and a pipeline driven by another clock (a
    /// test's manual clock) would be moved by it; the `cflogs` binary turns it on.
    pub plan_on_source_clock: bool,
}

impl AuditSourceConfig {
    /// Pages of one window asked at once unless configured.
    pub const DEFAULT_PAGE_CONCURRENCY: std::num::NonZeroU32 =
        std::num::NonZeroU32::new(4).expect("4 is not zero");

    /// The defaults for `account` and `api`: pages of 1000, 4 at once, user events included.
    pub fn new(account: AccountId, api: AuditApi) -> Self {
        Self {
            account,
            api,
            per_page: PerPage::default(),
            page_concurrency: Self::DEFAULT_PAGE_CONCURRENCY,
            hide_user_logs: false,
            plan_on_source_clock: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let config = ClientConfig::new(Credentials::Legacy {
            email: "a@example.com".into(),
            key: Secret::new("very-secret-key"),
        });
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-key"), "{debug}");
        assert!(debug.contains("Secret(***)"));
        assert_eq!(Secret::new("x").to_string(), "***");
    }

    #[test]
    fn settings_are_validated_with_the_variable_named() {
        let mut c = ClientConfig::new(Credentials::Token(Secret::new("t")));
        c.validate().unwrap();
        c.base_url = "ftp://x".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("CLOUDFLARE_API_BASE_URL")
        );
        c.base_url = "not a url".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("CLOUDFLARE_API_BASE_URL")
        );
        let c = ClientConfig::new(Credentials::Token(Secret::new(" ")));
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("CLOUDFLARE_API_TOKEN")
        );
        assert!(
            PerPage::new(1001)
                .unwrap_err()
                .to_string()
                .contains("CLOUDFLARE_PER_PAGE")
        );
        assert!(PerPage::new(0).is_err());
        assert_eq!(PerPage::new(1000).unwrap().get(), 1000);
        assert!(
            AccountId::new("")
                .unwrap_err()
                .to_string()
                .contains("CLOUDFLARE_ACCOUNT_ID")
        );
        assert!(AccountId::new("a/b").is_err());
        assert!(RateBudget::new(0, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn every_form_of_user_information_is_redacted() {
        for (raw, shown) in [
            ("https://u:p@host/x", "https://***@host/x"),
            ("https://u@host", "https://***@host"),
            ("https://:p@host:8443/a?b=c", "https://***@host:8443/a?b=c"),
            ("https://u:p%40ss@host/", "https://***@host/"),
            ("https://u:p@ss@host/", "https://***@host/"),
            ("http://u:p@[::1]:80/", "http://***@[::1]:80/"),
            ("https://host/path?q=a@b", "https://host/path?q=a@b"),
            ("https://host/x", "https://host/x"),
            ("not a url", "not a url"),
            ("h://tok@", "h://***@"),
        ] {
            assert_eq!(redact_userinfo(raw), shown, "{raw}");
        }
        for raw in ["https://sekrit@host/p@th", "https://u:sekrit@host/p@th"] {
            assert!(!redact_userinfo(raw).contains("sekrit"), "{raw}");
        }
    }

    #[test]
    fn plain_http_is_refused_but_on_loopback_and_no_base_url_carries_credentials() {
        let mut c = ClientConfig::new(Credentials::Token(Secret::new("t")));
        let check = |c: &ClientConfig, url: &str| {
            let mut c = c.clone();
            c.base_url = url.into();
            c.validate().map_err(|e| e.to_string())
        };
        for ok in [
            "https://api.cloudflare.com/client/v4",
            "https://proxy.internal:8443/cf",
            "http://127.0.0.1:8787/client/v4",
            "http://127.9.9.9/",
            "http://[::1]:8787/",
            "http://LOCALHOST:80/",
        ] {
            assert_eq!(check(&c, ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://api.cloudflare.com/client/v4",
            "http://10.0.0.8:8787/",
            "http://[2001:db8::1]/",
            "http://localhost.evil.example/",
            "http://127.0.0.1.nip.io/",
        ] {
            let e = check(&c, refused).unwrap_err();
            assert!(
                e.contains("plain http://") && e.contains("CLOUDFLARE_API_ALLOW_HTTP"),
                "{refused}: {e}"
            );
        }
        for userinfo in [
            "https://user:s3cr3t@api.cloudflare.com/",
            "https://s3cr3t@api.cloudflare.com/",
            "https://:s3cr3t@api.cloudflare.com/",
            "http://user:s3cr3t@127.0.0.1/",
            "http://user:s3cr3t@10.0.0.8/",
        ] {
            let e = check(&c, userinfo).unwrap_err();
            assert!(e.contains("must not carry credentials"), "{userinfo}: {e}");
            assert!(!e.contains("s3cr3t"), "the secret is not repeated: {e}");
        }
        c.allow_http = true;
        assert_eq!(check(&c, "http://cflogs-sim:8787/client/v4"), Ok(()));
    }
}
