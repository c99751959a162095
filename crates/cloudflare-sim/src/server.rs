//! HTTP layer: the Cloudflare API routes, fault injection and the `/__sim` control routes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::generate::{fnv1a, hex32};
use crate::ratelimit::Decision;
use crate::simulator::{Simulator, lock};
use crate::store::{Direction, Key};

/// Cloudflare error codes used by the simulator.
pub(crate) mod codes {
    /// Missing, malformed or invalid credentials.
    pub const AUTH: u32 = 10000;
    /// Valid credentials without access to the resource.
    pub const UNAUTHORIZED: u32 = 9109;
    /// Malformed object identifier in the path.
    pub const COULD_NOT_ROUTE: u32 = 7003;
    /// No such route.
    pub const NO_ROUTE: u32 = 7000;
    /// Rate limited.
    pub const RATE_LIMITED: u32 = 971;
    /// v1 page past the last page.
    pub const PAGE_OUT_OF_RANGE: u32 = 1001;
    /// Invalid or missing query parameter.
    pub const BAD_PARAM: u32 = 1002;
    /// Token verification with something other than a token.
    pub const INVALID_TOKEN: u32 = 1000;
}

const JSON_CT: &str = "application/json";
const HTML_CT: &str = "text/html";

/// Which API endpoint a request targets.
enum Endpoint {
    V1(String),
    V2(String),
    Verify,
    Other(String),
}

/// Extra facts about a reply, for the counters.
#[derive(Default)]
struct Tally {
    auth_failure: bool,
    permission_failure: bool,
    injected_5xx: bool,
    rate_limited: bool,
    block_started: bool,
    events: u64,
}

/// A response being prepared.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// Send only this many bytes of `body` (with the full Content-Length), then abort.
    cut_at: Option<usize>,
    tally: Tally,
}

impl Reply {
    fn json(status: StatusCode, body: Vec<u8>) -> Self {
        Self {
            status,
            content_type: JSON_CT,
            body,
            headers: Vec::new(),
            cut_at: None,
            tally: Tally::default(),
        }
    }

    /// A Cloudflare error envelope.
    fn error(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        let errors = json!([{"code": code, "message": message.into()}]);
        let body = format!(r#"{{"success":false,"errors":{errors},"messages":[],"result":null}}"#);
        Self::json(status, body.into_bytes())
    }

    fn bad_param(message: impl Into<String>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, codes::BAD_PARAM, message)
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_response(self, ray: String) -> Response {
        let mut builder = Response::builder()
            .status(self.status)
            .header(CONTENT_TYPE, self.content_type)
            .header("cf-ray", ray);
        for (name, value) in &self.headers {
            builder = builder.header(*name, value.as_str());
        }
        let result = match self.cut_at {
            None => builder.body(Body::from(self.body)),
            Some(n) => {
                let full = self.body.len();
                let mut body = self.body;
                body.truncate(n);
                let first = Bytes::from(body);
                let stream = futures_util::stream::unfold(0u8, move |step| {
                    let first = first.clone();
                    async move {
                        match step {
                            0 => Some((Ok(first), 1)),
                            1 => {
                                // Give the server time to flush the partial body before the
                                // error makes it drop the connection.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Some((
                                    Err(std::io::Error::new(
                                        std::io::ErrorKind::ConnectionAborted,
                                        "cflogs-sim: simulated cut body",
                                    )),
                                    2,
                                ))
                            }
                            _ => None,
                        }
                    }
                });
                builder
                    .header(CONTENT_LENGTH, full)
                    .body(Body::from_stream(stream))
            }
        };
        result.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// The authenticated caller.
struct Principal {
    /// Rate-limit bucket: `token:<token>` or `email:<email>`.
    rate_key: String,
    /// Index of the token (None for legacy key auth).
    token: Option<usize>,
    audit_read: bool,
}

pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route(
            "/client/v4/accounts/{account_id}/audit_logs",
            get(v1_handler),
        )
        .route(
            "/client/v4/accounts/{account_id}/logs/audit",
            get(v2_handler),
        )
        .route("/client/v4/user/tokens/verify", get(verify_handler))
        .route("/__sim/visible", get(ctl_visible))
        .route("/__sim/malformed", get(ctl_malformed))
        .route("/__sim/events", get(ctl_events))
        .route("/__sim/stats", get(ctl_stats))
        .route("/__sim/clock", get(ctl_clock_get).post(ctl_clock_set))
        .fallback(fallback)
        .with_state(sim)
}

async fn v1_handler(
    State(sim): State<Simulator>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    sim.answer(Endpoint::V1(account), &headers, query.as_deref())
        .await
}

async fn v2_handler(
    State(sim): State<Simulator>,
    Path(account): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    sim.answer(Endpoint::V2(account), &headers, query.as_deref())
        .await
}

async fn verify_handler(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    sim.handle_api(Endpoint::Verify, &headers, None)
}

async fn fallback(
    State(sim): State<Simulator>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/client/v4" || path.starts_with("/client/v4/") {
        sim.handle_api(Endpoint::Other(path), &headers, None)
    } else {
        (
            StatusCode::NOT_FOUND,
            "cflogs-sim: not found (API under /client/v4, control under /__sim)\n",
        )
            .into_response()
    }
}

/// Parses a query string into (key, value) pairs (form decoding: `+` means space).
fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses an RFC 3339 instant, or an RFC 3339 `full-date` (`2026-11-20`, midnight UTC).
/// A space where the offset sign should be is read as `+` (an unencoded `+` in a query
/// string decodes to a space).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let fixed = s.trim().replace(' ', "+");
    if let Ok(t) = DateTime::parse_from_rfc3339(&fixed) {
        return Some(t.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(&fixed, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

fn time_param(params: &[(String, String)], name: &str) -> Result<Option<DateTime<Utc>>, Reply> {
    match param(params, name) {
        None => Ok(None),
        Some(v) => parse_time(v).map(Some).ok_or_else(|| {
            Reply::bad_param(format!("{name}: {v:?} is not a valid RFC 3339 timestamp"))
        }),
    }
}

fn direction_param(params: &[(String, String)]) -> Result<Direction, Reply> {
    match param(params, "direction") {
        None => Ok(Direction::Desc),
        Some(v) if v.eq_ignore_ascii_case("asc") => Ok(Direction::Asc),
        Some(v) if v.eq_ignore_ascii_case("desc") => Ok(Direction::Desc),
        Some(v) => Err(Reply::bad_param(format!(
            "direction: {v:?} must be asc or desc"
        ))),
    }
}

fn int_param(
    params: &[(String, String)],
    name: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, Reply> {
    match param(params, name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(Reply::bad_param(format!(
                "{name}: {v:?} must be an integer between {min} and {max}"
            ))),
        },
    }
}

fn bool_param(params: &[(String, String)], name: &str) -> Result<bool, Reply> {
    match param(params, name) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(v) => Err(Reply::bad_param(format!("{name}: {v:?} must be a boolean"))),
    }
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// An opaque v2 cursor: the page number it leads to and the key of the last event served.
fn encode_cursor(next_page: u64, key: &Key) -> String {
    hex_encode(&format!("v2:{next_page}:{}:{}", key.0, key.1))
}

fn decode_cursor(s: &str) -> Option<(u64, Key)> {
    let text = hex_decode(s)?;
    let mut parts = text.splitn(4, ':');
    if parts.next()? != "v2" {
        return None;
    }
    let page = parts.next()?.parse().ok()?;
    let micros = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_owned();
    Some((page, (micros, id)))
}

fn envelope_start() -> Vec<u8> {
    br#"{"success":true,"errors":[],"messages":[],"result":"#.to_vec()
}

const HTML_5XX: &str = "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";

impl Simulator {
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Reply> {
        let cfg = self.cfg();
        let auth_error = |status| {
            let mut r = Reply::error(status, codes::AUTH, "Authentication error");
            r.tally.auth_failure = true;
            r
        };
        if let Some(value) = headers.get(AUTHORIZATION) {
            let Ok(text) = value.to_str() else {
                return Err(auth_error(StatusCode::UNAUTHORIZED));
            };
            let text = text.trim();
            let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
            let token = token.trim();
            if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
                return Err(auth_error(StatusCode::UNAUTHORIZED));
            }
            return match cfg.tokens.iter().position(|t| t.token == token) {
                Some(i) => Ok(Principal {
                    rate_key: format!("token:{token}"),
                    token: Some(i),
                    audit_read: cfg.tokens[i].audit_read,
                }),
                None => Err(auth_error(StatusCode::FORBIDDEN)),
            };
        }
        let email = headers.get("x-auth-email").and_then(|v| v.to_str().ok());
        let key = headers.get("x-auth-key").and_then(|v| v.to_str().ok());
        match (email, key) {
            (Some(email), Some(key)) => {
                let email = email.trim();
                let key = key.trim();
                if cfg
                    .legacy
                    .iter()
                    .any(|l| l.email.eq_ignore_ascii_case(email) && l.key == key)
                {
                    Ok(Principal {
                        rate_key: format!("email:{}", email.to_ascii_lowercase()),
                        token: None,
                        audit_read: true,
                    })
                } else {
                    Err(auth_error(StatusCode::FORBIDDEN))
                }
            }
            _ => Err(auth_error(StatusCode::FORBIDDEN)),
        }
    }

    /// `Ratelimit` headers for an unauthenticated reply (no bucket to report).
    fn ratelimit_headers_full(&self) -> Vec<(&'static str, String)> {
        match &self.shared.limiter {
            None => Vec::new(),
            Some(l) => {
                let cfg = lock(l).config();
                vec![
                    ("ratelimit", format!("\"default\";r={};t=0", cfg.limit)),
                    ("ratelimit-policy", policy_header(cfg)),
                ]
            }
        }
    }

    /// Counts and answers an audit-log request, after the configured latency.
    async fn answer(&self, ep: Endpoint, headers: &HeaderMap, query: Option<&str>) -> Response {
        /// Counts a request out when its answer is sent or the client went away.
        struct InFlight<'a>(&'a AtomicU64);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let shared = &self.shared;
        let _in_flight = InFlight(&shared.in_flight);
        let now_in_flight = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut s = lock(&shared.stats);
            s.peak_in_flight = s.peak_in_flight.max(now_in_flight);
        }
        let response = self.handle_api(ep, headers, query);
        let latency = self.cfg().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        response
    }

    fn handle_api(&self, ep: Endpoint, headers: &HeaderMap, query: Option<&str>) -> Response {
        let now = self.now();
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let reply = self.api_reply(&ep, headers, query, now);
        {
            let mut s = lock(&self.shared.stats);
            s.requests_total += 1;
            *s.by_status.entry(reply.status.as_u16()).or_default() += 1;
            match ep {
                Endpoint::V1(_) => s.v1_requests += 1,
                Endpoint::V2(_) => s.v2_requests += 1,
                Endpoint::Verify => s.verify_requests += 1,
                Endpoint::Other(_) => s.other_requests += 1,
            }
            let t = &reply.tally;
            s.auth_failures += u64::from(t.auth_failure);
            s.permission_failures += u64::from(t.permission_failure);
            s.injected_5xx += u64::from(t.injected_5xx);
            s.rate_limited += u64::from(t.rate_limited);
            s.blocks_triggered += u64::from(t.block_started);
            s.cut_bodies += u64::from(reply.cut_at.is_some());
            s.events_served += t.events;
        }
        tracing::debug!(
            status = reply.status.as_u16(),
            cut = reply.cut_at.is_some(),
            seq,
            "api request"
        );
        let ray = format!("{:016x}-SIM", fnv1a(&seq.to_le_bytes()));
        // The simulator's own clock, as Cloudflare's `Date` says Cloudflare's (a skewed or
        // fixed simulator clock shows in it; hyper would put the host's).
        reply
            .header("date", now.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
            .into_response(ray)
    }

    fn api_reply(
        &self,
        ep: &Endpoint,
        headers: &HeaderMap,
        query: Option<&str>,
        now: DateTime<Utc>,
    ) -> Reply {
        let principal = match self.authenticate(headers) {
            Ok(p) => p,
            Err(mut r) => {
                r.headers.extend(self.ratelimit_headers_full());
                return r;
            }
        };

        let mut rl_headers = Vec::new();
        if let Some(limiter) = &self.shared.limiter {
            let mut limiter = lock(limiter);
            let cfg = limiter.config();
            match limiter.check(&principal.rate_key, now) {
                Decision::Allow {
                    remaining,
                    reset_secs,
                } => {
                    rl_headers.push((
                        "ratelimit",
                        format!("\"default\";r={remaining};t={reset_secs}"),
                    ));
                    rl_headers.push(("ratelimit-policy", policy_header(cfg)));
                }
                Decision::Exceeded { block_secs } => {
                    let mut r = rate_limited_reply(block_secs.max(1), cfg);
                    r.tally.block_started = true;
                    return r;
                }
                Decision::Blocked { retry_after } => {
                    return rate_limited_reply(retry_after, cfg);
                }
            }
        }

        let mut reply = match ep {
            Endpoint::Verify => self.verify(&principal),
            Endpoint::Other(path) => Reply::error(
                StatusCode::NOT_FOUND,
                codes::NO_ROUTE,
                format!("No route for that URI: {path}"),
            ),
            Endpoint::V1(account) | Endpoint::V2(account) => {
                let v1 = matches!(ep, Endpoint::V1(_));
                self.audit_logs(v1, account, &principal, query, now)
            }
        };
        reply.headers.extend(rl_headers);
        reply
    }

    fn verify(&self, principal: &Principal) -> Reply {
        let Some(i) = principal.token else {
            return Reply::error(
                StatusCode::UNAUTHORIZED,
                codes::INVALID_TOKEN,
                "Invalid API Token",
            );
        };
        let token = &self.cfg().tokens[i].token;
        let mut rng = StdRng::seed_from_u64(fnv1a(token.as_bytes()) ^ self.cfg().seed);
        let mut body = envelope_start();
        let result = json!({"id": hex32(&mut rng), "status": "active"});
        body.extend_from_slice(result.to_string().as_bytes());
        body.push(b'}');
        Reply::json(StatusCode::OK, body)
    }

    fn audit_logs(
        &self,
        v1: bool,
        account: &str,
        principal: &Principal,
        query: Option<&str>,
        now: DateTime<Utc>,
    ) -> Reply {
        let path = if v1 { "audit_logs" } else { "logs/audit" };
        if !self.shared.accounts.contains_key(account) {
            let mut r = if is_hex32(account) {
                Reply::error(
                    StatusCode::FORBIDDEN,
                    codes::UNAUTHORIZED,
                    "Unauthorized to access requested resource",
                )
            } else {
                Reply::error(
                    StatusCode::NOT_FOUND,
                    codes::COULD_NOT_ROUTE,
                    format!(
                        "Could not route to /accounts/{account}/{path}, perhaps your object identifier is invalid?"
                    ),
                )
            };
            r.tally.permission_failure = true;
            return r;
        }
        if !principal.audit_read {
            let mut r = Reply::error(
                StatusCode::FORBIDDEN,
                codes::UNAUTHORIZED,
                "Unauthorized to access requested resource",
            );
            r.tally.permission_failure = true;
            return r;
        }

        let cfg = self.cfg();
        if cfg.error_rate > 0.0 {
            let mut rng = lock(&self.shared.fault_rng);
            if rng.random_bool(cfg.error_rate) {
                let status = [500u16, 502, 503, 504][rng.random_range(0..4)];
                let html = rng.random_bool(0.5);
                drop(rng);
                return injected_5xx(status, html);
            }
        }

        let params = parse_query(query);
        let mut reply = if v1 {
            self.serve_v1(account, &params, now)
        } else {
            self.serve_v2(account, &params, now)
        };
        if reply.status == StatusCode::OK && cfg.cut_body_rate > 0.0 && reply.body.len() >= 2 {
            let mut rng = lock(&self.shared.fault_rng);
            if rng.random_bool(cfg.cut_body_rate) {
                reply.cut_at = Some(rng.random_range(1..reply.body.len()));
            }
        }
        reply
    }

    fn serve_v1(&self, account: &str, params: &[(String, String)], now: DateTime<Utc>) -> Reply {
        let parsed = (|| {
            Ok::<_, Reply>((
                time_param(params, "since")?,
                time_param(params, "before")?,
                direction_param(params)?,
                int_param(params, "per_page", 100, 1, 1000)?,
                int_param(params, "page", 1, 1, usize::MAX)?,
                bool_param(params, "hide_user_logs")?,
            ))
        })();
        let (since, before, dir, per_page, page, hide_user) = match parsed {
            Ok(p) => p,
            Err(r) => return r,
        };
        let start = (page - 1).saturating_mul(per_page);
        let page_past_end_400 = self.cfg().page_past_end_400;
        self.with_account(account, now, |state| {
            let mut body = envelope_start();
            body.push(b'[');
            let mut n = 0u64;
            let events = state
                .visible(now, since, before, dir)
                .filter(|e| !(hide_user && e.actor_type == "user"))
                .skip(start)
                .take(per_page);
            for e in events {
                if n > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e.v1.as_bytes());
                n += 1;
            }
            if n == 0 && page > 1 && page_past_end_400 {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    codes::PAGE_OUT_OF_RANGE,
                    format!("page out of range: page {page} is past the last page"),
                );
            }
            body.extend_from_slice(b"]}");
            let mut r = Reply::json(StatusCode::OK, body);
            r.tally.events = n;
            r
        })
        .unwrap_or_else(|| Reply::error(StatusCode::NOT_FOUND, codes::NO_ROUTE, "unknown account"))
    }

    fn serve_v2(&self, account: &str, params: &[(String, String)], now: DateTime<Utc>) -> Reply {
        let parsed = (|| {
            let since = time_param(params, "since")?
                .ok_or_else(|| Reply::bad_param("since: required parameter is missing"))?;
            let before = time_param(params, "before")?
                .ok_or_else(|| Reply::bad_param("before: required parameter is missing"))?;
            let limit = int_param(params, "limit", 100, 1, 1000)?;
            let dir = direction_param(params)?;
            let cursor = match param(params, "cursor") {
                None | Some("") => None,
                Some(c) => Some(
                    decode_cursor(c)
                        .ok_or_else(|| Reply::bad_param(format!("cursor: {c:?} is not valid")))?,
                ),
            };
            Ok::<_, Reply>((since, before, limit, dir, cursor))
        })();
        let (since, before, limit, dir, cursor) = match parsed {
            Ok(p) => p,
            Err(r) => return r,
        };
        let (page_no, after) = match cursor {
            Some((page, key)) => (page, Some(key)),
            None => (1, None),
        };
        let style = self.cfg().cursor_style;
        self.with_account(account, now, |state| {
            let mut it = state.visible_after_cursor(now, Some(since), Some(before), dir, after);
            let items: Vec<_> = it.by_ref().take(limit).collect();
            let more = it.next().is_some();
            let next = if more {
                items.last().map(|e| encode_cursor(page_no + 1, &e.key()))
            } else {
                None
            };
            let mut body = envelope_start();
            body.push(b'[');
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e.v2.as_bytes());
            }
            body.extend_from_slice(b"],\"result_info\":");
            let use_after = match style {
                crate::config::CursorStyle::After => true,
                crate::config::CursorStyle::Cursor => false,
                crate::config::CursorStyle::Alternate => page_no % 2 == 1,
            };
            let info = match (use_after, next) {
                (true, next) => {
                    json!({"count": items.len(), "cursors": {"after": next.unwrap_or_default()}})
                }
                (false, Some(c)) => json!({"count": items.len(), "cursor": c}),
                (false, None) => json!({"count": items.len()}),
            };
            body.extend_from_slice(info.to_string().as_bytes());
            body.push(b'}');
            let mut r = Reply::json(StatusCode::OK, body);
            r.tally.events = items.len() as u64;
            r
        })
        .unwrap_or_else(|| Reply::error(StatusCode::NOT_FOUND, codes::NO_ROUTE, "unknown account"))
    }
}

fn policy_header(cfg: crate::config::RateLimitConfig) -> String {
    format!("\"default\";q={};w={}", cfg.limit, cfg.window.as_secs())
}

fn rate_limited_reply(retry_after: u64, cfg: crate::config::RateLimitConfig) -> Reply {
    let mut r = Reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        codes::RATE_LIMITED,
        "Please wait and consider throttling your request speed",
    )
    .header(RETRY_AFTER.as_str(), retry_after.to_string())
    .header("ratelimit", format!("\"default\";r=0;t={retry_after}"))
    .header("ratelimit-policy", policy_header(cfg));
    r.tally.rate_limited = true;
    r
}

fn injected_5xx(status: u16, html: bool) -> Reply {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = code.canonical_reason().unwrap_or("Error");
    let mut r = if html {
        let page = HTML_5XX
            .replace("{code}", &status.to_string())
            .replace("{reason}", reason);
        Reply {
            status: code,
            content_type: HTML_CT,
            body: page.into_bytes(),
            headers: Vec::new(),
            cut_at: None,
            tally: Tally::default(),
        }
    } else {
        let msg = match status {
            503 => "Service temporarily unavailable",
            502 | 504 => "Upstream error, please retry",
            _ => "Internal server error",
        };
        Reply::error(code, 10001, msg)
    };
    r.tally.injected_5xx = true;
    r
}

// ---- control endpoints ----

/// A control-endpoint failure: status and message, rendered as `{"error": message}`.
struct CtlError(StatusCode, String);

impl IntoResponse for CtlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn ctl_error(status: StatusCode, message: impl Into<String>) -> Response {
    CtlError(status, message.into()).into_response()
}

fn ctl_account<'a>(sim: &Simulator, params: &'a [(String, String)]) -> Result<&'a str, CtlError> {
    let account = param(params, "account").ok_or_else(|| {
        CtlError(
            StatusCode::BAD_REQUEST,
            "account parameter is required".into(),
        )
    })?;
    if sim.shared.accounts.contains_key(account) {
        Ok(account)
    } else {
        Err(CtlError(
            StatusCode::NOT_FOUND,
            format!("unknown account {account:?}"),
        ))
    }
}

async fn ctl_visible(State(sim): State<Simulator>, RawQuery(q): RawQuery) -> Response {
    let params = parse_query(q.as_deref());
    let account = match ctl_account(&sim, &params) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let bound = |name: &str| match param(&params, name) {
        None => Ok(None),
        Some(v) => parse_time(v)
            .map(Some)
            .ok_or_else(|| CtlError(StatusCode::BAD_REQUEST, format!("invalid {name}"))),
    };
    let (since, before) = match (bound("since"), bound("before")) {
        (Ok(s), Ok(b)) => (s, b),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let now = sim.now();
    let ids = sim
        .with_account(account, now, |s| s.visible_ids(now, since, before))
        .unwrap_or_default();
    Json(ids).into_response()
}

async fn ctl_malformed(State(sim): State<Simulator>, RawQuery(q): RawQuery) -> Response {
    let params = parse_query(q.as_deref());
    match ctl_account(&sim, &params) {
        Ok(account) => Json(sim.malformed(account)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn ctl_events(State(sim): State<Simulator>, RawQuery(q): RawQuery) -> Response {
    let params = parse_query(q.as_deref());
    match ctl_account(&sim, &params) {
        Ok(account) => Json(sim.events(account)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn ctl_stats(State(sim): State<Simulator>) -> Response {
    Json(sim.stats()).into_response()
}

fn clock_json(sim: &Simulator) -> Response {
    Json(json!({
        "now": sim.now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "fixed": sim.clock().is_fixed(),
    }))
    .into_response()
}

async fn ctl_clock_get(State(sim): State<Simulator>) -> Response {
    clock_json(&sim)
}

/// `POST /__sim/clock?set=RFC3339` | `?advance_secs=N` | `?offset_secs=N` | `?system=true`.
async fn ctl_clock_set(State(sim): State<Simulator>, RawQuery(q): RawQuery) -> Response {
    let params = parse_query(q.as_deref());
    let clock = sim.clock();
    if let Some(v) = param(&params, "set") {
        match parse_time(v) {
            Some(t) => clock.set(t),
            None => return ctl_error(StatusCode::BAD_REQUEST, "set: invalid RFC 3339 timestamp"),
        }
    } else if let Some(v) = param(&params, "advance_secs") {
        match v.parse::<f64>() {
            Ok(s) if (0.0..1e10).contains(&s) => {
                clock.advance(Duration::from_secs_f64(s));
            }
            _ => return ctl_error(StatusCode::BAD_REQUEST, "advance_secs: non-negative number"),
        }
    } else if let Some(v) = param(&params, "offset_secs") {
        match v.parse::<i64>() {
            Ok(s) if s.unsigned_abs() < 10_000_000_000 => {
                clock.set_offset(chrono::TimeDelta::seconds(s));
            }
            _ => return ctl_error(StatusCode::BAD_REQUEST, "offset_secs: integer seconds"),
        }
    } else if param(&params, "system").is_some() {
        clock.use_system();
    } else {
        return ctl_error(
            StatusCode::BAD_REQUEST,
            "one of set, advance_secs, offset_secs or system is required",
        );
    }
    clock_json(&sim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let key = (1_800_000_000_123_456, "abc-def:ghi".to_owned());
        let c = encode_cursor(3, &key);
        assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(decode_cursor(&c), Some((3, key)));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor(&hex_encode("v1:1:2:x")), None);
    }

    #[test]
    fn parses_times_leniently() {
        let a = parse_time("2026-11-20T10:00:00+00:00").unwrap();
        let b = parse_time("2026-11-20T10:00:00 00:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_time("2026-11-20"), parse_time("2026-11-20T00:00:00Z"));
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2026-13-45").is_none());
        assert!(parse_time("2026-13-45T99:00:00Z").is_none());
    }
}
