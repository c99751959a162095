//! The HTTP client: one per API token, shared by every stream of that token.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::warn;

use crate::budget::SlidingWindow;
use crate::config::{ClientConfig, Credentials};
use crate::error::{Error, Result};

/// Counters of one client since it was built, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// HTTP requests sent.
    pub requests: u64,
    /// Requests repeated after a transient failure.
    pub retries: u64,
    /// Answers with HTTP 429.
    pub rate_limited: u64,
    /// Answers with HTTP 5xx.
    pub server_errors: u64,
    /// 200 answers whose body was cut or was not JSON.
    pub broken_bodies: u64,
    /// Times a request waited for the rate budget (or a 429's `Retry-After` pause).
    pub budget_waits: u64,
    /// Total time spent waiting for the rate budget, in milliseconds.
    pub budget_wait_ms: u64,
    /// Requests the budget lets start now (0 while requests wait for it).
    pub budget_remaining: u64,
    /// The budget: requests per window.
    pub budget_limit: u64,
    /// Requests other tools made on the same token, seen in the server's remaining count and
    /// taken out of this budget.
    pub budget_foreign: u64,
    /// Cloudflare's clock minus ours, in milliseconds, from the latest answer's `Date` header
    /// (whole seconds, so ±1 s); `None` before any answer carried one.
    pub clock_skew_ms: Option<i64>,
}

/// The skew above which the client warns: windows end a settle delay (60 s) before now and
/// reach a lookback (5 min) back, so a skew of this size already eats into both.
pub const SKEW_WARNING: Duration = Duration::from_secs(30);

/// Cloudflare's clock minus ours, from a `Date` header (RFC 7231, whole seconds) on an answer
/// received at `local`: the header's second is taken at its middle.
fn skew_from_date(headers: &HeaderMap, local: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    let value = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let server = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let server = server.with_timezone(&chrono::Utc) + chrono::TimeDelta::milliseconds(500);
    Some((server - local).num_milliseconds())
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    broken_bodies: AtomicU64,
    budget_waits: AtomicU64,
    budget_wait_ms: AtomicU64,
    /// The latest skew in ms; meaningful once `skew_known`.
    clock_skew_ms: std::sync::atomic::AtomicI64,
    skew_known: std::sync::atomic::AtomicBool,
    /// Whether the skew is beyond [`SKEW_WARNING`] (to warn once per crossing).
    skewed: std::sync::atomic::AtomicBool,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One page of a listing: each item's exact bytes, and the next cursor if any.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) items: Vec<Bytes>,
    pub(crate) next_cursor: Option<String>,
}

/// What one attempt ended with, when it did not succeed.
#[derive(Debug)]
enum AttemptError {
    /// Worth another attempt, after `retry_after` if Cloudflare said so.
    Retry {
        problem: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help.
    Fail(Error),
}

impl AttemptError {
    fn retry(problem: impl Into<String>) -> Self {
        Self::Retry {
            problem: problem.into(),
            retry_after: None,
        }
    }
}

/// A Cloudflare API client with a rate budget, retries and bounded bodies.
pub struct CloudflareClient {
    http: reqwest::Client,
    base: reqwest::Url,
    config: ClientConfig,
    budget: SlidingWindow,
    paused_until: Mutex<Option<Instant>>,
    counters: Counters,
}

impl std::fmt::Debug for CloudflareClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudflareClient")
            .field("base", &self.base.as_str())
            .field("credentials", &self.config.credentials)
            .field("rate_budget", &self.config.rate_budget)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: serde_json::Value,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    cursors: Option<Cursors>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

/// The codes and messages of an error envelope, or the start of a body that is not one.
fn describe_errors(body: &[u8]) -> (String, Vec<i64>) {
    match serde_json::from_slice::<Envelope<'_>>(body) {
        Ok(env) if !env.errors.is_empty() => {
            let codes = env.errors.iter().filter_map(|e| e.code.as_i64()).collect();
            let text = env
                .errors
                .iter()
                .map(|e| format!("{} {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            (text, codes)
        }
        _ => {
            let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            (format!("body: {start:?}"), Vec::new())
        }
    }
}

/// Parses a listing envelope: `result` must be an array; items keep their exact bytes.
fn parse_listing(body: &Bytes) -> std::result::Result<(bool, Page, Vec<ApiMessage>), String> {
    let env: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a JSON envelope: {e}"))?;
    if !env.success {
        return Ok((
            false,
            Page {
                items: Vec::new(),
                next_cursor: None,
            },
            env.errors,
        ));
    }
    let result = env.result.ok_or("the envelope has no result")?;
    let raws: Vec<&RawValue> = serde_json::from_str(result.get())
        .map_err(|e| format!("the result is not a JSON array: {e}"))?;
    let items = raws
        .into_iter()
        .map(|r| body.slice_ref(r.get().as_bytes()))
        .collect();
    let next_cursor = env
        .result_info
        .and_then(|info| info.cursors.and_then(|c| c.after).or(info.cursor))
        .filter(|c| !c.is_empty());
    Ok((true, Page { items, next_cursor }, Vec::new()))
}

/// What a `Ratelimit: "default";r=5;t=30` (or `X-RateLimit-Remaining: 5`) header says:
/// requests left in the server's window. Its reset (`t`, whole seconds) is not used: the budget
/// holds each slot until a window after its answer, never shorter than the server does.
fn header_quota(headers: &HeaderMap) -> Option<u64> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(value) = text("ratelimit") {
        return value
            .split(';')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(k, _)| k.trim() == "r")
            .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    }
    text("x-ratelimit-remaining").and_then(|r| r.trim().parse::<u64>().ok())
}

/// The longest wait a `Retry-After` may impose. Cloudflare's block lasts 5 minutes; a header
/// asking for more (a huge number, a date years ahead) is bounded so that no answer can freeze
/// a stream, or overflow a deadline.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// `Retry-After` as seconds or as an HTTP date, at most [`MAX_RETRY_AFTER`]; `None` when absent
/// or unparsable (negative, fractional, garbage), so the caller's default applies.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    if wait > MAX_RETRY_AFTER {
        warn!(
            retry_after = value,
            bounded_to_s = MAX_RETRY_AFTER.as_secs(),
            "Retry-After beyond any Cloudflare block, bounded"
        );
    }
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A uniformly random delay in `[0, step]`: "full jitter".
fn full_jitter(step: Duration) -> Duration {
    step.mul_f64(rand::rng().random_range(0.0..=1.0))
}

impl CloudflareClient {
    /// Builds a client.
    ///
    /// # Errors
    /// [`Error::Config`] when the settings are invalid or the HTTP client cannot be built.
    pub fn new(config: ClientConfig) -> Result<Self> {
        config.validate()?;
        // reqwest is built without a TLS provider of its own: use ring, unless the process
        // already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut base = reqwest::Url::parse(&config.base_url)
            .map_err(|e| Error::Config(format!("CLOUDFLARE_API_BASE_URL is not a URL: {e}")))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("cflogs/", env!("CARGO_PKG_VERSION")))
            // The API never redirects; following one would carry the token (or the legacy
            // key, which no client strips) to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        // Cloudflare's rule: at most N requests in any window. Each slot is held from the
        // request's start until a window after its answer, which covers the time requests take
        // to arrive whatever it is (a fixed margin, 1% of the window before, cost the first
        // seconds of every window a backlog waited for).
        let budget = SlidingWindow::new(config.rate_budget.requests(), config.rate_budget.per());
        Ok(Self {
            http,
            base,
            budget,
            paused_until: Mutex::new(None),
            counters: Counters::default(),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> ClientStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientStats {
            requests: get(&c.requests),
            retries: get(&c.retries),
            rate_limited: get(&c.rate_limited),
            server_errors: get(&c.server_errors),
            broken_bodies: get(&c.broken_bodies),
            budget_waits: get(&c.budget_waits),
            budget_wait_ms: get(&c.budget_wait_ms),
            budget_remaining: self.budget.remaining(),
            budget_limit: self.budget.limit(),
            budget_foreign: self.budget.foreign(),
            clock_skew_ms: self.clock_skew().map(|s| s.num_milliseconds()),
        }
    }

    /// Checks the credentials with `GET /user/tokens/verify` (API tokens only).
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for a bad token; transient failures after the retries.
    pub async fn verify_token(&self) -> Result<()> {
        if matches!(self.config.credentials, Credentials::Legacy { .. }) {
            return Ok(());
        }
        self.request("user/tokens/verify", &[], "the token status", &|body| {
            let env: Envelope<'_> =
                serde_json::from_slice(body).map_err(|e| format!("not a JSON envelope: {e}"))?;
            Ok(env.success)
        })
        .await
        .and_then(|success| {
            if success {
                Ok(())
            } else {
                Err(Error::Api {
                    path: "user/tokens/verify".into(),
                    message: "the token is not active".into(),
                })
            }
        })
    }

    /// One page of a listing at `path` (relative to the base URL).
    pub(crate) async fn listing(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Page> {
        let (success, page, errors) = self.request(path, query, what, &parse_listing).await?;
        if success {
            Ok(page)
        } else {
            Err(Error::Api {
                path: path.to_owned(),
                message: errors
                    .iter()
                    .map(|e| format!("{} {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
    }

    /// Sends a GET with retries; `parse` runs inside the retry loop, so a 200 whose body does
    /// not parse (cut mid-stream) is retried.
    async fn request<T>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
        parse: &(dyn Fn(&Bytes) -> std::result::Result<T, String> + Sync),
    ) -> Result<T> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| Error::Config(format!("bad API path {path:?}: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_initial_delay)
            .with_max_delay(self.config.retry_max_delay)
            .with_max_times(self.config.max_retries as usize);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let result = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            self.attempt(&url, path, what, parse).await
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e| matches!(e, AttemptError::Retry { .. }))
        .adjust(|e, step| {
            // `None` means the retries are used up: keep it so.
            let step = step?;
            match e {
                AttemptError::Retry {
                    retry_after: Some(wait),
                    ..
                } => Some(*wait),
                _ => Some(full_jitter(step)),
            }
        })
        .notify(|e, wait| {
            bump(&self.counters.retries);
            if let AttemptError::Retry { problem, .. } = e {
                warn!(path, retry_in_ms = wait.as_millis() as u64, problem = %problem, "cloudflare request failed, retrying");
            }
        })
        .await;
        result.map_err(|e| match e {
            AttemptError::Fail(e) => e,
            AttemptError::Retry { problem, .. } => Error::Exhausted {
                path: path.to_owned(),
                attempts: attempts.load(Ordering::Relaxed),
                last: problem,
            },
        })
    }

    /// Waits for the pause and the budget; returns the instant the budget admitted the
    /// request.
    async fn wait_for_budget(&self) -> Instant {
        let started = Instant::now();
        let pause = *self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(until) = pause {
            tokio::time::sleep_until(until).await;
        }
        let admitted = self.budget.acquire().await;
        let waited = started.elapsed();
        if waited >= Duration::from_millis(1) {
            bump(&self.counters.budget_waits);
            self.counters
                .budget_wait_ms
                .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
        }
        admitted
    }

    /// Cloudflare's clock minus ours, from the latest answer's `Date` header (±1 s); `None`
    /// before any answer carried one.
    pub fn clock_skew(&self) -> Option<chrono::TimeDelta> {
        let c = &self.counters;
        c.skew_known
            .load(Ordering::Relaxed)
            .then(|| chrono::TimeDelta::milliseconds(c.clock_skew_ms.load(Ordering::Relaxed)))
    }

    /// Records Cloudflare's clock minus ours; warns when it crosses [`SKEW_WARNING`].
    fn note_skew(&self, skew_ms: i64) {
        let c = &self.counters;
        c.clock_skew_ms.store(skew_ms, Ordering::Relaxed);
        c.skew_known.store(true, Ordering::Relaxed);
        let beyond = skew_ms.unsigned_abs() > SKEW_WARNING.as_millis() as u64;
        if c.skewed.swap(beyond, Ordering::Relaxed) != beyond {
            if beyond {
                warn!(
                    skew_s = skew_ms as f64 / 1000.0,
                    "this machine's clock and Cloudflare's (its Date header) differ by more than \
                     30 s: windows are planned on this clock, so events may look late or early; \
                     synchronise the clock (NTP)"
                );
            } else {
                tracing::info!(
                    skew_s = skew_ms as f64 / 1000.0,
                    "clock back in step with Cloudflare's"
                );
            }
        }
    }

    fn pause_for(&self, wait: Duration) {
        let now = Instant::now();
        let until = now.checked_add(wait).unwrap_or(now + MAX_RETRY_AFTER);
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    async fn attempt<T>(
        &self,
        url: &reqwest::Url,
        path: &str,
        what: &str,
        parse: &(dyn Fn(&Bytes) -> std::result::Result<T, String> + Sync),
    ) -> std::result::Result<T, AttemptError> {
        let admitted = self.wait_for_budget().await;
        bump(&self.counters.requests);
        let request = match &self.config.credentials {
            Credentials::Token(token) => self.http.get(url.clone()).bearer_auth(token.expose()),
            Credentials::Legacy { email, key } => self
                .http
                .get(url.clone())
                .header("X-Auth-Email", email)
                .header("X-Auth-Key", key.expose()),
        };
        let mut response = request.send().await.map_err(|e| {
            AttemptError::retry(format!(
                "request failed: {}",
                cflogs_core::error_chain(&e.without_url())
            ))
        })?;
        // The slot is held until a window after this answer (the server counted the request
        // before it answered), which also makes the `Ratelimit` reset, in whole seconds, moot.
        self.budget.answered(admitted);
        let status = response.status();
        let headers = response.headers();
        if let Some(skew) = skew_from_date(headers, chrono::Utc::now()) {
            self.note_skew(skew);
        }
        if let Some(remaining) = header_quota(headers) {
            // The server's count includes other tools on the same token: never exceed it.
            self.budget.observe(admitted, remaining);
        }
        if status.as_u16() == 429 {
            bump(&self.counters.rate_limited);
            let wait = retry_after(headers).unwrap_or(Duration::from_secs(60));
            self.pause_for(wait);
            return Err(AttemptError::Retry {
                problem: "rate limited (HTTP 429)".into(),
                retry_after: Some(wait),
            });
        }
        if status.is_server_error() {
            bump(&self.counters.server_errors);
            return Err(AttemptError::Retry {
                problem: format!("HTTP {status}"),
                retry_after: retry_after(headers),
            });
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(crate::config::redact_userinfo);
        let limit = self.config.max_body_bytes;
        let mut body = BytesMut::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(AttemptError::Fail(Error::BodyTooLarge {
                            path: path.to_owned(),
                            limit,
                        }));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    bump(&self.counters.broken_bodies);
                    return Err(AttemptError::retry(format!(
                        "the response body was cut: {}",
                        cflogs_core::error_chain(&e.without_url())
                    )));
                }
            }
        }
        let body = body.freeze();
        if !status.is_success() {
            let (message, codes) = describe_errors(&body);
            let code = status.as_u16();
            return Err(AttemptError::Fail(match code {
                401 => Error::Unauthorized {
                    status: code,
                    message,
                },
                403 if codes.contains(&10000) => Error::Unauthorized {
                    status: code,
                    message,
                },
                403 => Error::Forbidden {
                    what: what.to_owned(),
                    permission: "Account Settings Read",
                    status: code,
                    message,
                },
                400 => Error::BadRequest {
                    path: path.to_owned(),
                    message,
                },
                300..=399 => Error::Http {
                    status: code,
                    path: path.to_owned(),
                    message: format!(
                        "a redirect{}; cflogs follows none, so that credentials never travel \
                         to another host: set CLOUDFLARE_API_BASE_URL to the API itself",
                        location
                            .as_deref()
                            .map_or_else(String::new, |l| format!(" to {l:?}"))
                    ),
                },
                _ => Error::Http {
                    status: code,
                    path: path.to_owned(),
                    message,
                },
            }));
        }
        parse(&body).map_err(|problem| {
            bump(&self.counters.broken_bodies);
            AttemptError::retry(problem)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use reqwest::header::HeaderValue;

    #[test]
    fn listings_keep_each_item_exactly() {
        let body = Bytes::from_static(
            br#"{"success":true,"errors":[],"messages":[],"result":[{"id":"a", "x" : 1},{"id":"b\u2028"}],"result_info":{"cursors":{"after":"c2"}}}"#,
        );
        let (ok, page, _) = parse_listing(&body).unwrap();
        assert!(ok);
        assert_eq!(page.items[0], Bytes::from_static(br#"{"id":"a", "x" : 1}"#));
        assert_eq!(page.items[1], Bytes::from_static(br#"{"id":"b\u2028"}"#));
        assert_eq!(page.next_cursor.as_deref(), Some("c2"));
        let body =
            Bytes::from_static(br#"{"success":true,"result":[],"result_info":{"cursor":""}}"#);
        assert_eq!(parse_listing(&body).unwrap().1.next_cursor, None);
        let body =
            Bytes::from_static(br#"{"success":true,"result":[],"result_info":{"cursor":"n"}}"#);
        assert_eq!(
            parse_listing(&body).unwrap().1.next_cursor.as_deref(),
            Some("n")
        );
        assert!(
            parse_listing(&Bytes::from_static(br#"{"success":true,"result":[{"id":"#)).is_err()
        );
    }

    #[test]
    fn the_date_header_gives_the_skew_and_garbage_gives_none() {
        let local = chrono::Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let at = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(reqwest::header::DATE, HeaderValue::from_str(v).unwrap());
            skew_from_date(&h, local)
        };
        assert_eq!(at("Fri, 04 Dec 2026 10:00:00 GMT"), Some(500));
        assert_eq!(at("Fri, 04 Dec 2026 10:05:00 GMT"), Some(300_500));
        assert_eq!(at("Fri, 04 Dec 2026 09:55:00 GMT"), Some(-299_500));
        for junk in [
            "",
            "yesterday",
            "Fri, 99 Dec 2026 10:00:00 GMT",
            "1764842400",
        ] {
            assert_eq!(at(junk), None, "{junk:?}");
        }
        assert_eq!(skew_from_date(&HeaderMap::new(), local), None);
    }

    #[test]
    fn retry_after_is_bounded_and_unparsable_values_are_ignored() {
        let after = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h)
        };
        assert_eq!(after("7"), Some(Duration::from_secs(7)));
        assert_eq!(after(" 300 "), Some(Duration::from_secs(300)));
        for huge in [
            "601",
            "86400",
            "18446744073709551615",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(after(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
        assert_eq!(after("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(30)).to_rfc2822();
        let wait = after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        for junk in [
            "-1",
            "1.5",
            "soon",
            "",
            "99999999999999999999999",
            "Sat, 32 Foo 2026",
        ] {
            assert_eq!(after(junk), None, "{junk:?}");
        }
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn rate_limit_headers_give_the_servers_remaining_count() {
        let mut h = HeaderMap::new();
        assert_eq!(header_quota(&h), None);
        h.insert(
            "ratelimit",
            HeaderValue::from_static("\"default\";r=5;t=30"),
        );
        assert_eq!(header_quota(&h), Some(5));
        h.insert(
            "ratelimit",
            HeaderValue::from_static("\"default\";r=0;t=30"),
        );
        assert_eq!(header_quota(&h), Some(0));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("12"));
        assert_eq!(header_quota(&h), Some(0));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("many"));
        assert_eq!(header_quota(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }

    #[test]
    fn full_jitter_stays_within_the_step() {
        for _ in 0..1000 {
            assert!(full_jitter(Duration::from_secs(2)) <= Duration::from_secs(2));
        }
    }
}
