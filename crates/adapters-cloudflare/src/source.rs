//! [`AuditLogSource`]: account audit logs v1 or v2 as an [`EventSource`].

use std::sync::Arc;

use async_trait::async_trait;
use cflogs_core::{Context, Dataset, DatasetSchema, FetchRequest, Fetched, StreamId, Timestamp};
use chrono::{DurationRound, SecondsFormat, TimeDelta};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tracing::debug;

use crate::client::CloudflareClient;
use crate::config::{AccountId, AuditApi, AuditSourceConfig};
use crate::error::Error;
use crate::mapping::{Mapped, map_item};

/// Reads one account's audit logs. Its stream id is `audit-{v1|v2}/account/{account id}`.
///
/// A [`WindowSource`](cflogs_core::WindowSource), read by the pipeline with an `overlap`
/// cursor: [`AuditLogSource::into_event_source`] (audit logs show events late and filter `since`
/// by whole seconds, so windows overlap by the lookback and the cursor keeps the ids seen there).
///
/// A window `[from, to)` is asked as `since = from` rounded down and `before = to` rounded up
/// to the second (Cloudflare's `since` is inclusive; sub-second values are not relied on), in
/// ascending order, every page, and the pipeline keeps what lies in the window. Paging stops
/// early only when the batch caps are passed by events at or after the request's floor, at a
/// timestamp boundary (see the `EventSource` contract).
#[derive(Debug)]
pub struct AuditLogSource {
    client: Arc<CloudflareClient>,
    config: AuditSourceConfig,
    stream: StreamId,
    schema: Arc<DatasetSchema>,
    /// The account, for the schema's `account_id` column.
    context: Context,
    /// Whether the clock skew was probed (once, when no answer had measured it yet).
    skew_probed: std::sync::atomic::AtomicBool,
}

/// Skews below this are not planned around: the `Date` header has whole seconds.
pub const PLANNED_SKEW_MIN: TimeDelta = TimeDelta::seconds(2);

/// The largest skew windows are planned around, either way: a `Date` header that lies by
/// hours cannot push windows far ahead or stall a stream; beyond it the client's warning says
/// to fix the clock.
pub const PLANNED_SKEW_MAX: TimeDelta = TimeDelta::minutes(10);

/// The offset windows are planned with for a measured `skew` (Cloudflare's clock minus ours):
/// zero below [`PLANNED_SKEW_MIN`], bounded by [`PLANNED_SKEW_MAX`].
fn planned_offset(skew: TimeDelta) -> TimeDelta {
    if skew.abs() < PLANNED_SKEW_MIN {
        TimeDelta::zero()
    } else {
        skew.clamp(-PLANNED_SKEW_MAX, PLANNED_SKEW_MAX)
    }
}

/// Counting events at or after the floor, to know when paging may stop early.
struct EarlyStop {
    floor: Timestamp,
    /// Events seen, before the floor or not.
    seen: usize,
    counted: usize,
    bytes: usize,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    ordered: bool,
}

impl EarlyStop {
    fn see(&mut self, at: Timestamp, size: usize) {
        self.seen += 1;
        if self.last.is_some_and(|last| at < last) {
            // Not ascending after all: stopping early would be unsafe.
            self.ordered = false;
        }
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        if at >= self.floor {
            self.counted += 1;
            self.bytes += size;
            self.first.get_or_insert(at);
        }
    }

    /// Pages worth asking after the full pages read so far (at least 1): those the caps may
    /// still need at the mean event size seen, and no more than the window's rest holds at the
    /// rate seen (events are in time order), so that few requests go past its end.
    fn pages_wanted(&self, request: &FetchRequest, per_page: u32) -> u32 {
        let per_page = per_page.max(1) as usize;
        let to_end = self.last.and_then(|last| {
            let covered = (last - request.window.from()).num_milliseconds();
            let rest = (request.window.to() - last).num_milliseconds();
            (covered > 0 && rest >= 0).then(|| {
                let events = self.seen as f64 * rest as f64 / covered as f64;
                (events / per_page as f64).ceil() as usize
            })
        });
        let pages = self
            .pages_to_caps(request, per_page)
            .min(to_end.unwrap_or(1));
        u32::try_from(pages.max(1)).unwrap_or(u32::MAX)
    }

    /// Full pages of `per_page` that may still be needed before the caps are passed, at the
    /// mean event size seen so far (at least 1).
    fn pages_to_caps(&self, request: &FetchRequest, per_page: usize) -> usize {
        let limits = &request.limits;
        let by_count = limits
            .max_events()
            .saturating_add(1)
            .saturating_sub(self.counted);
        let by_bytes = match self.bytes.checked_div(self.counted) {
            Some(mean) if mean > 0 => limits
                .max_bytes()
                .saturating_add(1)
                .saturating_sub(self.bytes)
                .div_ceil(mean),
            _ => by_count,
        };
        by_count.min(by_bytes).max(1).div_ceil(per_page)
    }

    /// Where the read range is complete, if paging may stop now.
    fn stop_at(&self, request: &FetchRequest) -> Option<Timestamp> {
        let last = self.last?;
        let lowest = request.window.from().max(request.floor);
        (self.ordered
            && request.limits.exceeded_by(self.counted, self.bytes)
            && self.first.is_some_and(|first| first < last)
            && last > lowest
            && last < request.window.to())
        .then_some(last)
    }
}

/// The stream of `account`'s audit logs through `api`: `audit-{v1|v2}/account/{account id}`.
pub fn audit_stream_id(account: &AccountId, api: AuditApi) -> StreamId {
    StreamId::new(format!(
        "audit-{}/account/{}",
        api.as_str(),
        account.as_str()
    ))
    .unwrap_or_else(|e| unreachable!("account ids are valid stream segments: {e}"))
}

impl AuditLogSource {
    /// A source for `config.account`, sending its requests through `client`.
    pub fn new(client: Arc<CloudflareClient>, config: AuditSourceConfig) -> Self {
        let stream = audit_stream_id(&config.account, config.api);
        Self {
            client,
            stream,
            schema: Arc::new(DatasetSchema::builtin(&Dataset::audit_logs())),
            context: Context::new().with("account_id", config.account.as_str()),
            config,
            skew_probed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The source as the pipeline reads it: with an `overlap` cursor.
    pub fn into_event_source(self: Arc<Self>) -> Arc<dyn cflogs_core::EventSource> {
        Arc::new(cflogs_core::OverlappingWindows::new(self))
    }

    /// The settings.
    pub fn config(&self) -> &AuditSourceConfig {
        &self.config
    }

    fn keep(&self, mapped: Mapped, fetched: &mut Fetched, stop: &mut EarlyStop) {
        match mapped {
            Mapped::Event(e) => {
                stop.see(e.occurred_at, e.size());
                fetched.events.push(e);
            }
            Mapped::Quarantined(q) => fetched.quarantined.push(q),
        }
    }
}

fn since_before(request: &FetchRequest) -> (String, String) {
    let second = TimeDelta::seconds(1);
    let from = request.window.from();
    let to = request.window.to();
    let since = from.duration_trunc(second).unwrap_or(from);
    let mut before = to.duration_trunc(second).unwrap_or(to);
    if before < to {
        before += second;
    }
    (
        since.to_rfc3339_opts(SecondsFormat::Secs, true),
        before.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

#[async_trait]
impl cflogs_core::WindowSource for AuditLogSource {
    fn stream(&self) -> &StreamId {
        &self.stream
    }

    fn schema(&self) -> &Arc<DatasetSchema> {
        &self.schema
    }

    async fn fetch(&self, request: &FetchRequest) -> cflogs_core::Result<Fetched> {
        let (since, before) = since_before(request);
        let account = self.config.account.as_str();
        let per_page = self.config.per_page.get();
        let mut fetched = Fetched::default();
        let mut stop = EarlyStop {
            floor: request.floor,
            seen: 0,
            counted: 0,
            bytes: 0,
            first: None,
            last: None,
            ordered: true,
        };
        let what = format!("the audit logs of account {account}");
        match self.config.api {
            AuditApi::V1 => {
                // Page numbers let several pages be asked at once; a page is asked only when
                // the pages before it were full and the caps still need it, so at most
                // `page_concurrency - 1` requests are spent past the end of a window.
                let path = format!("accounts/{account}/audit_logs");
                let concurrency = self.config.page_concurrency.get() as usize;
                let ask = |page: u32| {
                    let query = [
                        ("since", since.clone()),
                        ("before", before.clone()),
                        ("direction", "asc".to_owned()),
                        ("per_page", per_page.to_string()),
                        ("page", page.to_string()),
                        ("hide_user_logs", self.config.hide_user_logs.to_string()),
                    ];
                    let (path, what) = (&path, &what);
                    async move { (page, self.client.listing(path, &query, what).await) }
                };
                let mut inflight = FuturesOrdered::new();
                let (mut next, mut wanted) = (1u32, 1u32);
                loop {
                    while inflight.len() < concurrency && next <= wanted {
                        inflight.push_back(ask(next));
                        next += 1;
                    }
                    let Some((page, answer)) = inflight.next().await else {
                        break;
                    };
                    let items = match answer {
                        Ok(p) => p.items,
                        // v1 answers 400 for a page past the last one: the window is done.
                        Err(Error::BadRequest { .. }) if page > 1 => break,
                        Err(e) => return Err(e.into()),
                    };
                    let full = items.len() >= per_page as usize;
                    for raw in items {
                        self.keep(
                            map_item(raw, &self.schema, &self.context, AuditApi::V1),
                            &mut fetched,
                            &mut stop,
                        );
                    }
                    if !full {
                        break;
                    }
                    if let Some(at) = stop.stop_at(request) {
                        debug!(stream = %self.stream, page, complete_to = %at, "paging stopped at the batch cap");
                        fetched.complete_to = Some(at);
                        break;
                    }
                    wanted = page.saturating_add(stop.pages_wanted(request, per_page));
                }
            }
            AuditApi::V2 => {
                let path = format!("accounts/{account}/logs/audit");
                let mut cursor: Option<String> = None;
                loop {
                    let mut query = vec![
                        ("since", since.clone()),
                        ("before", before.clone()),
                        ("direction", "asc".to_owned()),
                        ("limit", per_page.to_string()),
                    ];
                    if let Some(c) = &cursor {
                        query.push(("cursor", c.clone()));
                    }
                    let page = self
                        .client
                        .listing(&path, &query, &what)
                        .await
                        .map_err(cflogs_core::Error::from)?;
                    for raw in page.items {
                        self.keep(
                            map_item(raw, &self.schema, &self.context, AuditApi::V2),
                            &mut fetched,
                            &mut stop,
                        );
                    }
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                    if let Some(at) = stop.stop_at(request) {
                        debug!(stream = %self.stream, complete_to = %at, "paging stopped at the batch cap");
                        fetched.complete_to = Some(at);
                        break;
                    }
                }
            }
        }
        Ok(fetched)
    }

    /// With [`AuditSourceConfig::plan_on_source_clock`]: the skew the client measured from the
    /// latest `Date` header, ignored under [`PLANNED_SKEW_MIN`] and bounded by
    /// [`PLANNED_SKEW_MAX`]. Before any answer it is probed once
    /// with the token check (API tokens; legacy keys have no cheap call and plan their first
    /// window on our clock, the next ones on Cloudflare's); a failed probe plans on our clock.
    async fn clock_offset(&self) -> TimeDelta {
        if !self.config.plan_on_source_clock {
            return TimeDelta::zero();
        }
        if self.client.clock_skew().is_none()
            && !self
                .skew_probed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            && let Err(e) = self.client.verify_token().await
        {
            debug!(stream = %self.stream, error = %e, "could not measure the clock skew");
        }
        self.client
            .clock_skew()
            .map_or(TimeDelta::zero(), planned_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cflogs_core::{BatchLimits, Window};
    use chrono::TimeZone;

    #[test]
    fn since_and_before_cover_the_window_at_second_precision() {
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
            .unwrap();
        let request = FetchRequest {
            window: Window::new(
                t + TimeDelta::milliseconds(1500),
                t + TimeDelta::milliseconds(9001),
            )
            .unwrap(),
            floor: t,
            limits: BatchLimits::default(),
        };
        let (since, before) = since_before(&request);
        assert_eq!(since, "2026-11-20T10:00:01Z");
        assert_eq!(before, "2026-11-20T10:00:10Z");
        let exact = FetchRequest {
            window: Window::new(t, t + TimeDelta::seconds(5)).unwrap(),
            ..request
        };
        assert_eq!(since_before(&exact).1, "2026-11-20T10:00:05Z");
    }

    #[test]
    fn the_planned_offset_ignores_noise_and_is_bounded() {
        let s = TimeDelta::seconds;
        assert_eq!(planned_offset(s(1)), TimeDelta::zero());
        assert_eq!(planned_offset(s(-1)), TimeDelta::zero());
        assert_eq!(planned_offset(s(2)), s(2));
        assert_eq!(planned_offset(s(-300)), s(-300));
        assert_eq!(planned_offset(s(86_400)), PLANNED_SKEW_MAX);
        assert_eq!(planned_offset(s(-86_400)), -PLANNED_SKEW_MAX);
    }
}
