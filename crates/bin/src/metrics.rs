//! Prometheus metrics and the health endpoints of `cflogs run`: `/metrics`, `/healthz`,
//! `/readyz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::routing::get;
use cflogs_cloudflare::{ClientStats, CloudflareClient};
use cflogs_core::{
    CycleObserver, CycleOutcome, CycleReport, Error, StreamHealth, StreamId, StreamMonitor,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabel {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    stream: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The `kind` label values of `cflogs_cycle_errors_total`.
const ERROR_KINDS: [&str; 3] = ["transient", "conflict", "fatal"];
/// The `outcome` label values of `cflogs_api_requests_total`.
const API_OUTCOMES: [&str; 4] = ["sent", "http_429", "http_5xx", "broken_body"];

/// Every metric of the process, and what readiness needs.
pub struct Metrics {
    registry: Registry,
    events: Family<StreamLabel, Counter>,
    quarantined: Family<StreamLabel, Counter>,
    batches: Family<StreamLabel, Counter>,
    cycle_errors: Family<ErrorLabel, Counter>,
    lag: Family<StreamLabel, Gauge<f64, AtomicU64>>,
    commit: Family<StreamLabel, Histogram>,
    api: Family<OutcomeLabel, Counter>,
    retries: Counter,
    budget_waits: Counter,
    budget_wait_seconds: Counter<f64, AtomicU64>,
    budget_remaining: Gauge,
    budget_limit: Gauge,
    budget_foreign: Counter,
    clock_skew: Gauge<f64, AtomicU64>,
    client: Arc<CloudflareClient>,
    last_client: Mutex<ClientStats>,
    last_ok: Mutex<HashMap<String, Instant>>,
    restarts: Family<StreamLabel, Counter>,
    up: Family<StreamLabel, Gauge>,
    standby: Family<StreamLabel, Gauge>,
    health: Mutex<HashMap<String, StreamHealth>>,
    /// The last watermark each stream reported: the lag is now minus it at every scrape, so
    /// it keeps growing while a stream fails or stalls.
    watermarks: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
    streams: Vec<String>,
    ready_within: Duration,
}

impl Metrics {
    /// Metrics for `streams`, reading API counters from `client`; a stream is ready when its
    /// last successful cycle is at most `ready_within` old.
    pub fn new(
        streams: Vec<String>,
        client: Arc<CloudflareClient>,
        ready_within: Duration,
    ) -> Self {
        let mut registry = Registry::with_prefix("cflogs");
        let events = Family::<StreamLabel, Counter>::default();
        registry.register(
            "events_ingested",
            "Events committed to analytics and the archive",
            events.clone(),
        );
        let quarantined = Family::<StreamLabel, Counter>::default();
        registry.register(
            "events_quarantined",
            "Malformed records committed to quarantine",
            quarantined.clone(),
        );
        let batches = Family::<StreamLabel, Counter>::default();
        registry.register("batches_committed", "Batches committed", batches.clone());
        let cycle_errors = Family::<ErrorLabel, Counter>::default();
        registry.register(
            "cycle_errors",
            "Cycles that failed, by kind (transient, conflict, fatal)",
            cycle_errors.clone(),
        );
        let lag = Family::<StreamLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "watermark_lag_seconds",
            "Now minus the stream's watermark: how far behind the source the committed data is",
            lag.clone(),
        );
        let commit = Family::<StreamLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "commit_duration_seconds",
            "Time of the checkpoint commit of a batch",
            commit.clone(),
        );
        let api = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "api_requests",
            "Cloudflare API requests by outcome (sent, http_429, http_5xx, broken_body)",
            api.clone(),
        );
        let retries = Counter::default();
        registry.register(
            "api_retries",
            "Cloudflare API requests retried",
            retries.clone(),
        );
        let budget_waits = Counter::default();
        registry.register(
            "rate_limit_waits",
            "Requests that waited for the token's rate budget",
            budget_waits.clone(),
        );
        let budget_wait_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "rate_limit_wait_seconds",
            "Time spent waiting for the token's rate budget",
            budget_wait_seconds.clone(),
        );
        let budget_remaining = Gauge::default();
        registry.register(
            "rate_budget_remaining",
            "Requests the token's budget lets start now (0 while requests wait for it)",
            budget_remaining.clone(),
        );
        let budget_limit = Gauge::default();
        registry.register(
            "rate_budget_requests",
            "The token's budget: requests in any sliding window of 5 minutes",
            budget_limit.clone(),
        );
        let budget_foreign = Counter::default();
        registry.register(
            "rate_budget_foreign_requests",
            "Requests other tools made on the same token (the server's remaining count was lower than the budget's), taken out of the budget",
            budget_foreign.clone(),
        );
        let clock_skew = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "clock_skew_seconds",
            "Cloudflare's clock minus this machine's, from the API's Date header (+-1 s)",
            clock_skew.clone(),
        );
        let restarts = Family::<StreamLabel, Counter>::default();
        registry.register(
            "stream_restarts",
            "Times a stream stopped with an error and was restarted by its supervisor",
            restarts.clone(),
        );
        let up = Family::<StreamLabel, Gauge>::default();
        registry.register(
            "stream_up",
            "1 while a stream is starting, running or in standby, 0 while it is restarting, fenced or stopped",
            up.clone(),
        );
        let standby = Family::<StreamLabel, Gauge>::default();
        registry.register(
            "stream_standby",
            "1 while another instance holds the stream's lease and this one waits to take it",
            standby.clone(),
        );
        // Every stream's series exist from the start, at zero, so that `rate()` and alerts see
        // the first event and the first error (a series that appears with its first increment
        // hides that increment from `rate()`). The lag gauge waits for a real value.
        for stream in &streams {
            let label = StreamLabel {
                stream: stream.clone(),
            };
            let _ = events.get_or_create(&label);
            let _ = quarantined.get_or_create(&label);
            let _ = batches.get_or_create(&label);
            let _ = commit.get_or_create(&label);
            let _ = restarts.get_or_create(&label);
            let _ = up.get_or_create(&label);
            let _ = standby.get_or_create(&label);
            for kind in ERROR_KINDS {
                let _ = cycle_errors.get_or_create(&ErrorLabel {
                    stream: stream.clone(),
                    kind: kind.to_owned(),
                });
            }
        }
        for outcome in API_OUTCOMES {
            let _ = api.get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            });
        }
        Self {
            registry,
            events,
            quarantined,
            batches,
            cycle_errors,
            lag,
            commit,
            api,
            retries,
            budget_waits,
            budget_wait_seconds,
            budget_remaining,
            budget_limit,
            budget_foreign,
            clock_skew,
            client,
            last_client: Mutex::new(ClientStats::default()),
            last_ok: Mutex::new(HashMap::new()),
            restarts,
            up,
            standby,
            health: Mutex::new(HashMap::new()),
            watermarks: Mutex::new(HashMap::new()),
            streams,
            ready_within,
        }
    }

    fn refresh_client(&self) {
        // Lock before reading the client's totals: two scrapes at once must not store an older
        // total after a newer one (the next difference would underflow).
        let mut last = self
            .last_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.client.stats();
        let outcome = |name: &str| {
            self.api
                .get_or_create(&OutcomeLabel {
                    outcome: name.to_owned(),
                })
                .clone()
        };
        outcome("sent").inc_by(now.requests - last.requests);
        outcome("http_429").inc_by(now.rate_limited - last.rate_limited);
        outcome("http_5xx").inc_by(now.server_errors - last.server_errors);
        outcome("broken_body").inc_by(now.broken_bodies - last.broken_bodies);
        self.retries.inc_by(now.retries - last.retries);
        self.budget_waits
            .inc_by(now.budget_waits - last.budget_waits);
        self.budget_wait_seconds
            .inc_by((now.budget_wait_ms - last.budget_wait_ms) as f64 / 1000.0);
        self.budget_remaining
            .set(i64::try_from(now.budget_remaining).unwrap_or(i64::MAX));
        self.budget_limit
            .set(i64::try_from(now.budget_limit).unwrap_or(i64::MAX));
        self.budget_foreign
            .inc_by(now.budget_foreign - last.budget_foreign);
        if let Some(ms) = now.clock_skew_ms {
            self.clock_skew.set(ms as f64 / 1000.0);
        }
        *last = now;
    }

    /// Records `stream`'s watermark (from a cycle, or its checkpoint at start-up).
    pub fn watermark(&self, stream: &StreamId, watermark: chrono::DateTime<chrono::Utc>) {
        self.watermarks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(stream.to_string(), watermark);
    }

    fn refresh_lag(&self) {
        let now = chrono::Utc::now();
        let watermarks = self
            .watermarks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (stream, w) in watermarks.iter() {
            let lag = (now - *w).num_milliseconds() as f64 / 1000.0;
            self.lag
                .get_or_create(&StreamLabel {
                    stream: stream.clone(),
                })
                .set(lag);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.refresh_client();
        self.refresh_lag();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The streams whose last successful cycle is too old (or that never had one), leaving out
    /// those in standby (another instance holds them and answers for them).
    pub fn not_ready(&self) -> Vec<String> {
        let last = self
            .last_ok
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.streams
            .iter()
            .filter(|s| !matches!(health.get(*s), Some(StreamHealth::Standby { .. })))
            .filter(|s| last.get(*s).is_none_or(|t| t.elapsed() > self.ready_within))
            .cloned()
            .collect()
    }
}

impl Metrics {
    /// Every stream's health, one line each (`stream: state[: detail]`), and whether all are
    /// healthy (starting or running).
    pub fn health(&self) -> (bool, String) {
        let health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut healthy = true;
        let mut text = String::new();
        for stream in &self.streams {
            let state = health
                .get(stream)
                .cloned()
                .unwrap_or(StreamHealth::Starting);
            healthy &= state.is_healthy();
            let detail = match &state {
                StreamHealth::Restarting {
                    restarts,
                    error,
                    retry_in,
                } => format!(
                    ": restart {restarts} in {:.1} s after: {error}",
                    retry_in.as_secs_f64()
                ),
                StreamHealth::Fenced { error } => format!(": {error}"),
                StreamHealth::Standby { error, retry_in } => {
                    format!(": claims again in {:.1} s; {error}", retry_in.as_secs_f64())
                }
                _ => String::new(),
            };
            text.push_str(&format!("{stream}: {}{detail}\n", state.as_str()));
        }
        (healthy, text)
    }
}

impl StreamMonitor for Metrics {
    fn health(&self, stream: &StreamId, health: &StreamHealth) {
        let label = StreamLabel {
            stream: stream.to_string(),
        };
        if matches!(health, StreamHealth::Restarting { .. }) {
            self.restarts.get_or_create(&label).inc();
        }
        self.up
            .get_or_create(&label)
            .set(i64::from(health.is_healthy()));
        self.standby
            .get_or_create(&label)
            .set(i64::from(matches!(health, StreamHealth::Standby { .. })));
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(label.stream, health.clone());
    }
}

impl CycleObserver for Metrics {
    fn cycle(&self, report: &CycleReport<'_>) {
        let label = StreamLabel {
            stream: report.stream.to_string(),
        };
        match report.outcome {
            Ok(outcome) => {
                if let CycleOutcome::Committed {
                    events,
                    quarantined,
                    ..
                } = outcome
                {
                    self.events.get_or_create(&label).inc_by(*events as u64);
                    self.quarantined
                        .get_or_create(&label)
                        .inc_by(*quarantined as u64);
                    self.batches.get_or_create(&label).inc();
                }
                self.last_ok
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(label.stream.clone(), Instant::now());
            }
            Err(e) => {
                let kind = match e {
                    Error::Transient { .. } => "transient",
                    Error::Conflict { .. } => "conflict",
                    _ => "fatal",
                };
                self.cycle_errors
                    .get_or_create(&ErrorLabel {
                        stream: label.stream.clone(),
                        kind: kind.to_owned(),
                    })
                    .inc();
            }
        }
        if let Some(d) = report.commit_duration {
            self.commit.get_or_create(&label).observe(d.as_secs_f64());
        }
        if let Some(w) = report.watermark {
            self.watermark(report.stream, w);
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until `shutdown`; returns the bound
/// address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on CFLOGS_METRICS_ADDR {addr}; choose another port or set it to off")
    })?;
    let bound = listener.local_addr()?;
    let m = metrics.clone();
    let h = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.render(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let m = h.clone();
                async move {
                    let (healthy, text) = m.health();
                    let status = if healthy {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, text)
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let m = metrics.clone();
                async move {
                    let stale = m.not_ready();
                    if stale.is_empty() {
                        (StatusCode::OK, "ready\n".to_owned())
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("no recent successful cycle: {}\n", stale.join(", ")),
                        )
                    }
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag_of(text: &str, stream: &str) -> f64 {
        let key = format!("cflogs_watermark_lag_seconds{{stream=\"{stream}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no lag for {stream} in:\n{text}"))
    }

    #[test]
    fn the_lag_keeps_growing_while_a_stream_reports_nothing_new() {
        let client = Arc::new(
            CloudflareClient::new(cflogs_cloudflare::ClientConfig::new(
                cflogs_cloudflare::Credentials::Token(cflogs_cloudflare::Secret::new("t")),
            ))
            .unwrap(),
        );
        let stream = StreamId::new("audit-v1/account/a").unwrap();
        let metrics = Metrics::new(vec![stream.to_string()], client, Duration::from_secs(60));
        let hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
        metrics.cycle(&CycleReport {
            stream: &stream,
            outcome: Ok(&cflogs_core::CycleOutcome::Idle),
            duration: Duration::from_millis(1),
            commit_duration: None,
            watermark: Some(hour_ago),
        });
        let first = lag_of(&metrics.render(), stream.as_str());
        assert!(first >= 3600.0, "{first}");
        // Then the stream fails: its cycles know no watermark. The lag must not freeze.
        let error = cflogs_core::Error::transient("archive publish", "bucket gone");
        metrics.cycle(&CycleReport {
            stream: &stream,
            outcome: Err(&error),
            duration: Duration::from_millis(1),
            commit_duration: None,
            watermark: None,
        });
        std::thread::sleep(Duration::from_millis(20));
        let later = lag_of(&metrics.render(), stream.as_str());
        assert!(later > first, "the lag froze at {first} (now {later})");
    }
}
