//! The audit log sources against the Cloudflare simulator (`cflogs-sim`, spawned on
//! 127.0.0.1:0): every trap of the real API, retries, rate limiting, quarantine, secrets.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cflogs_cloudflare::{
    AccountId, AuditApi, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient,
    Credentials, PerPage, RateBudget, Secret,
};
use cflogs_core::{
    BatchLimits, EventId, FetchRequest, Fetched, Timestamp, Window, WindowSource,
    error_chain as chain,
};
use cflogs_sim::{CursorStyle, RunningSim, Simulator, SimulatorBuilder};
use chrono::{DurationRound, TimeDelta, Utc};

const TOKEN: &str = "tok-7f3a-very-secret";

/// An hour ago, read once per test binary: the simulator's span and the windows the tests ask
/// for must agree to the second, whenever each of them is computed.
fn hour_ago() -> Timestamp {
    static BASE: std::sync::LazyLock<Timestamp> = std::sync::LazyLock::new(|| {
        Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::hours(1)
    });
    *BASE
}

fn sim(seed: u64, events: u64) -> SimulatorBuilder {
    let from = hour_ago() - TimeDelta::hours(1);
    Simulator::builder()
        .seed(seed)
        .account("acc1")
        .token(TOKEN)
        .span(from, from + TimeDelta::hours(1), events)
        .late_fraction(0.0)
        .malformed_rate(0.0)
        .error_rate(0.0)
        .cut_body_rate(0.0)
        .no_rate_limit()
}

/// Starts the simulator of `builder` and a client for it.
async fn start(builder: SimulatorBuilder) -> (RunningSim, Arc<CloudflareClient>) {
    let sim = builder.build().unwrap().spawn().await.unwrap();
    let client = Arc::new(CloudflareClient::new(client_config(&sim)).unwrap());
    (sim, client)
}

fn client_config(sim: &RunningSim) -> ClientConfig {
    let mut c = ClientConfig::new(Credentials::Token(Secret::new(TOKEN)));
    c.base_url = sim.base_url();
    c.retry_initial_delay = Duration::from_millis(2);
    c.retry_max_delay = Duration::from_millis(50);
    c.max_retries = 12;
    c.rate_budget = RateBudget::new(100_000, Duration::from_secs(1)).unwrap();
    c
}

fn source(client: &Arc<CloudflareClient>, api: AuditApi, per_page: u32) -> AuditLogSource {
    let mut config = AuditSourceConfig::new(AccountId::new("acc1").unwrap(), api);
    config.per_page = PerPage::new(per_page).unwrap();
    AuditLogSource::new(client.clone(), config)
}

fn whole(window: Window) -> FetchRequest {
    FetchRequest {
        window,
        floor: window.from(),
        limits: BatchLimits::new(usize::MAX, usize::MAX).unwrap(),
    }
}

fn span_window() -> Window {
    let from = hour_ago() - TimeDelta::hours(1);
    Window::new(from, from + TimeDelta::hours(1)).unwrap()
}

fn ids_in(fetched: &Fetched, window: &Window) -> Vec<String> {
    let set: BTreeSet<String> = fetched
        .events
        .iter()
        .filter(|e| window.contains(e.occurred_at))
        .map(|e| e.id.as_str().to_owned())
        .collect();
    set.into_iter().collect()
}

#[tokio::test]
async fn every_event_is_read_across_pages_with_ties_in_v1_and_v2() {
    for (api, style) in [
        (AuditApi::V1, CursorStyle::After),
        (AuditApi::V2, CursorStyle::After),
        (AuditApi::V2, CursorStyle::Cursor),
        (AuditApi::V2, CursorStyle::Alternate),
    ] {
        let (sim, client) = start(sim(1, 700).bursts(0.3, 20).cursor_style(style)).await;
        let window = span_window();
        let fetched = source(&client, api, 7).fetch(&whole(window)).await.unwrap();
        let want = sim.visible_ids_in("acc1", window.from(), window.to());
        assert_eq!(want.len(), 700);
        assert_eq!(ids_in(&fetched, &window), want, "{api:?} {style:?}");
        assert!(fetched.quarantined.is_empty());
        // Ties really straddled pages: some timestamp has more events than a page.
        let mut per_time = std::collections::BTreeMap::new();
        for e in &fetched.events {
            *per_time.entry(e.occurred_at).or_insert(0) += 1;
        }
        assert!(
            per_time.values().any(|n| *n > 7),
            "the simulator made ties larger than a page"
        );
        assert!(client.stats().requests >= 100, "700 events in pages of 7");
        sim.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn since_is_inclusive_and_a_window_edge_on_an_event_keeps_it_exactly_once() {
    let (sim, client) = start(sim(2, 300)).await;
    let events = sim.events("acc1");
    // An event on a whole second: the source asks with whole-second `since`, so only there
    // does an exclusive `since` lose the event (elsewhere the second is rounded down anyway).
    let at = (150..events.len())
        .find(|&i| events[i].when.timestamp_subsec_nanos() == 0)
        .expect("an event on a whole second");
    let edge = events[at].when;
    for api in [AuditApi::V1, AuditApi::V2] {
        let s = source(&client, api, 50);
        let left = Window::new(span_window().from(), edge).unwrap();
        let right = Window::new(edge, span_window().to()).unwrap();
        let a = ids_in(&s.fetch(&whole(left)).await.unwrap(), &left);
        let b = ids_in(&s.fetch(&whole(right)).await.unwrap(), &right);
        assert!(
            b.contains(&events[at].id),
            "an event at `since` is included ({api:?})"
        );
        assert!(
            !a.contains(&events[at].id),
            "and not in the window ending there"
        );
        let all: BTreeSet<String> = a.iter().chain(&b).cloned().collect();
        assert_eq!(all.len(), a.len() + b.len(), "no event in both windows");
        assert_eq!(all.into_iter().collect::<Vec<_>>(), sim.visible_ids("acc1"));
    }
}

#[tokio::test]
async fn a_page_past_the_end_answers_400_and_ends_the_window() {
    // 3 full pages: v1 learns the end only from the 400 for page 4.
    let (sim, client) = start(sim(3, 30).page_past_end_400(true)).await;
    let window = span_window();
    let fetched = source(&client, AuditApi::V1, 10)
        .fetch(&whole(window))
        .await
        .unwrap();
    assert_eq!(ids_in(&fetched, &window).len(), 30);
    assert_eq!(sim.stats().status_count(400), 1, "page 4 answered 400");
}

#[tokio::test]
async fn a_400_on_the_first_page_is_a_clear_fatal_error() {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::BAD_REQUEST,
            r#"{"success":false,"errors":[{"code":1004,"message":"since must be before before"}],"messages":[],"result":null}"#,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = ClientConfig::new(Credentials::Token(Secret::new(TOKEN)));
    config.base_url = format!("http://{addr}/client/v4");
    let client = Arc::new(CloudflareClient::new(config).unwrap());
    let e = source(&client, AuditApi::V1, 10)
        .fetch(&whole(span_window()))
        .await
        .unwrap_err();
    assert!(matches!(e, cflogs_core::Error::Fatal { .. }), "{e:?}");
    let text = chain(&e);
    assert!(
        text.contains("since must be before before") && text.contains("HTTP 400"),
        "{text}"
    );
    assert_eq!(client.stats().requests, 1, "a 400 is not retried");
}

#[tokio::test]
async fn server_errors_and_cut_bodies_are_retried_until_every_event_is_read() {
    let (sim, client) = start(sim(4, 500).error_rate(0.2).cut_body_rate(0.15)).await;
    let window = span_window();
    for api in [AuditApi::V1, AuditApi::V2] {
        let fetched = source(&client, api, 20)
            .fetch(&whole(window))
            .await
            .unwrap();
        assert_eq!(
            ids_in(&fetched, &window),
            sim.visible_ids("acc1"),
            "{api:?}"
        );
    }
    let stats = client.stats();
    let served = sim.stats();
    assert!(
        served.injected_5xx > 0 && served.cut_bodies > 0,
        "{served:?}"
    );
    assert_eq!(stats.server_errors, served.injected_5xx);
    assert!(stats.broken_bodies > 0, "{stats:?}");
    assert_eq!(
        stats.retries,
        stats.server_errors + stats.broken_bodies,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_long_backfill_stays_inside_the_rate_budget_and_triggers_no_block() {
    // Scaled-down numbers of Cloudflare's 1200 requests per 5 minutes.
    let sim = sim(5, 600)
        .rate_limit(40, Duration::from_secs(2), Duration::from_secs(30))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let mut config = client_config(&sim);
    config.rate_budget = RateBudget::new(40, Duration::from_secs(2)).unwrap();
    let client = Arc::new(CloudflareClient::new(config).unwrap());
    let window = span_window();
    let started = std::time::Instant::now();
    let fetched = source(&client, AuditApi::V1, 5)
        .fetch(&whole(window))
        .await
        .unwrap();
    assert_eq!(ids_in(&fetched, &window).len(), 600);
    let served = sim.stats();
    assert_eq!(served.blocks_triggered, 0, "{served:?}");
    assert_eq!(served.rate_limited, 0, "{served:?}");
    assert!(client.stats().requests >= 120);
    assert!(
        client.stats().budget_waits > 0,
        "the budget made requests wait"
    );
    // 121 requests at 40 per 2 s take at least ~4 s.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_ratelimit_headers_keep_a_misconfigured_budget_from_triggering_a_block() {
    let sim = sim(6, 100)
        .rate_limit(5, Duration::from_secs(1), Duration::from_secs(30))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    // A budget far above the server's, as when the limit is lower than configured.
    let client = Arc::new(CloudflareClient::new(client_config(&sim)).unwrap());
    let window = span_window();
    let fetched = source(&client, AuditApi::V2, 10)
        .fetch(&whole(window))
        .await
        .unwrap();
    assert_eq!(ids_in(&fetched, &window).len(), 100);
    assert_eq!(sim.stats().blocks_triggered, 0, "{:?}", sim.stats());
    assert!(client.stats().budget_waits > 0, "{:?}", client.stats());
}

/// Another tool spent 15 of the token's 40 requests just before: the server's remaining count
/// takes them out of the budget, so the backfill never trips the block (without it, its first
/// 40 requests would land in the same window as the other tool's 15).
#[tokio::test]
async fn another_tool_on_the_token_is_taken_out_of_the_budget() {
    // The other tool: a client of its own (its own budget) on the same token.
    let (sim, other) =
        start(sim(7, 600).rate_limit(40, Duration::from_secs(2), Duration::from_secs(30))).await;
    for _ in 0..15 {
        other.verify_token().await.unwrap();
    }
    let mut config = client_config(&sim);
    config.rate_budget = RateBudget::new(40, Duration::from_secs(2)).unwrap();
    let client = Arc::new(CloudflareClient::new(config).unwrap());
    let window = span_window();
    let fetched = source(&client, AuditApi::V1, 5)
        .fetch(&whole(window))
        .await
        .unwrap();
    assert_eq!(ids_in(&fetched, &window).len(), 600);
    let served = sim.stats();
    assert_eq!(served.blocks_triggered, 0, "{served:?}");
    assert_eq!(served.rate_limited, 0, "{served:?}");
    let stats = client.stats();
    assert!(
        (14..=15).contains(&stats.budget_foreign),
        "the other tool's requests were seen: {stats:?}"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_for_its_retry_after() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                (
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    r#"{"success":false,"errors":[{"code":971,"message":"Please wait"}],"messages":[],"result":null}"#,
                )
            } else {
                (
                    axum::http::StatusCode::OK,
                    [("retry-after", "0")],
                    r#"{"success":true,"errors":[],"messages":[],"result":[]}"#,
                )
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = ClientConfig::new(Credentials::Token(Secret::new(TOKEN)));
    config.base_url = format!("http://{addr}/client/v4");
    config.retry_initial_delay = Duration::from_millis(1);
    config.retry_max_delay = Duration::from_millis(10);
    let client = Arc::new(CloudflareClient::new(config).unwrap());
    let started = std::time::Instant::now();
    let fetched = source(&client, AuditApi::V1, 10)
        .fetch(&whole(span_window()))
        .await
        .unwrap();
    assert!(fetched.events.is_empty());
    assert_eq!(client.stats().rate_limited, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1, twice, not the 10 ms backoff"
    );
}

#[tokio::test]
async fn malformed_events_are_quarantined_with_their_bytes_and_never_block() {
    let (sim, client) = start(sim(7, 400).malformed_rate(0.05)).await;
    let window = span_window();
    let malformed = sim.malformed("acc1");
    assert!(malformed.len() >= 5, "{}", malformed.len());
    for api in [AuditApi::V1, AuditApi::V2] {
        let fetched = source(&client, api, 30)
            .fetch(&whole(window))
            .await
            .unwrap();
        assert_eq!(ids_in(&fetched, &window), sim.visible_ids("acc1"));
        let got: BTreeSet<EventId> = fetched.quarantined.iter().map(|q| q.id.clone()).collect();
        let want: BTreeSet<EventId> = malformed
            .iter()
            .map(|m| {
                EventId::content_hash(if api == AuditApi::V1 {
                    m.v1.as_bytes()
                } else {
                    m.v2.as_bytes()
                })
            })
            .collect();
        assert_eq!(got, want, "{api:?}");
        assert!(
            fetched.quarantined.iter().all(|q| q.reason.contains("'id'")
                || q.reason.contains("time")
                || q.reason.contains("when")),
            "{:?}",
            fetched
                .quarantined
                .iter()
                .map(|q| &q.reason)
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn credential_errors_are_fatal_name_the_fix_and_never_show_the_secret() {
    let sim = sim(8, 10)
        .token_without_audit_permission("tok-without-permission-xyz")
        .legacy_key("ops@example.com", "legacy-key-secret-123")
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let window = span_window();
    let mut config = client_config(&sim);
    config.credentials = Credentials::Token(Secret::new("tok-wrong-secret-456"));
    let client = Arc::new(CloudflareClient::new(config.clone()).unwrap());
    let e = source(&client, AuditApi::V1, 10)
        .fetch(&whole(window))
        .await
        .unwrap_err();
    let text = format!("{} {e:?} {client:?}", chain(&e));
    assert!(matches!(e, cflogs_core::Error::Fatal { .. }));
    assert!(text.contains("CLOUDFLARE_API_TOKEN"), "{text}");
    assert!(!text.contains("tok-wrong-secret-456"), "{text}");
    assert_eq!(client.stats().requests, 1, "auth errors are not retried");

    config.credentials = Credentials::Token(Secret::new("tok-without-permission-xyz"));
    let client = Arc::new(CloudflareClient::new(config.clone()).unwrap());
    let s = source(&client, AuditApi::V2, 10);
    let e = s.fetch(&whole(window)).await.unwrap_err();
    let text = format!("{} {e:?} {client:?} {s:?}", chain(&e));
    assert!(text.contains("Account Settings Read"), "{text}");
    assert!(!text.contains("tok-without-permission-xyz"), "{text}");

    config.credentials = Credentials::Legacy {
        email: "ops@example.com".into(),
        key: Secret::new("legacy-key-secret-123"),
    };
    let client = Arc::new(CloudflareClient::new(config).unwrap());
    let fetched = source(&client, AuditApi::V1, 10)
        .fetch(&whole(window))
        .await
        .unwrap();
    assert_eq!(
        ids_in(&fetched, &window).len(),
        10,
        "legacy email + key works"
    );
    assert!(!format!("{client:?}").contains("legacy-key-secret-123"));
}

#[tokio::test]
async fn both_sources_keep_the_window_source_contract() {
    let (sim, client) = start(sim(9, 300).bursts(0.2, 4)).await;
    let window = span_window();
    let expected: Vec<EventId> = sim
        .visible_ids("acc1")
        .into_iter()
        .map(|id| EventId::new(id).unwrap())
        .collect();
    for api in [AuditApi::V1, AuditApi::V2] {
        cflogs_core::testing::conformance::window_source(
            &source(&client, api, 10),
            &window,
            &expected,
        )
        .await;
    }
}

#[tokio::test]
async fn paging_stops_early_at_the_cap_and_is_complete_up_to_there() {
    let (sim, client) = start(sim(10, 500)).await;
    let window = span_window();
    for api in [AuditApi::V1, AuditApi::V2] {
        let request = FetchRequest {
            window,
            floor: window.from(),
            limits: BatchLimits::new(50, usize::MAX).unwrap(),
        };
        let before = client.stats().requests;
        let fetched = source(&client, api, 20).fetch(&request).await.unwrap();
        let cut = fetched.complete_to.expect("stopped early");
        assert!(cut > window.from() && cut < window.to());
        let part = Window::new(window.from(), cut).unwrap();
        assert_eq!(
            ids_in(&fetched, &part),
            sim.visible_ids_in("acc1", window.from(), cut)
        );
        assert!(
            client.stats().requests - before <= 4,
            "stopped after ~3 pages of 20"
        );
    }
}

#[tokio::test]
async fn v1_asks_several_pages_at_once_and_hardly_any_past_the_window_or_the_cap() {
    // Answers that take 100 ms, as Cloudflare's take hundreds: one page at a time could not
    // spend the token's budget. 2,000 events in pages of 100.
    let (sim, client) = start(sim(11, 2_000).latency(Duration::from_millis(100))).await;
    let window = span_window();
    let fetched = source(&client, AuditApi::V1, 100)
        .fetch(&whole(window))
        .await
        .unwrap();
    assert_eq!(
        ids_in(&fetched, &window),
        sim.visible_ids_in("acc1", window.from(), window.to()),
        "every event of the window, in page order"
    );
    let stats = sim.stats();
    assert!(stats.peak_in_flight >= 3, "{stats:?}");
    // 20 full pages and the 400 past the end; the rate seen predicts the end, so at most a
    // few requests more.
    assert!(stats.requests_total <= 24, "{stats:?}");

    // Capped at 950 events: the pages the cap needs (10 of 100), not a page more in flight.
    let before = sim.stats().requests_total;
    let request = FetchRequest {
        window,
        floor: window.from(),
        limits: BatchLimits::new(950, usize::MAX).unwrap(),
    };
    let fetched = source(&client, AuditApi::V1, 100)
        .fetch(&request)
        .await
        .unwrap();
    let cut = fetched.complete_to.expect("stopped at the cap");
    let part = Window::new(window.from(), cut).unwrap();
    assert_eq!(
        ids_in(&fetched, &part),
        sim.visible_ids_in("acc1", window.from(), cut)
    );
    assert_eq!(sim.stats().requests_total - before, 10);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_clock_skew_to_cloudflare_is_measured_from_the_date_header() {
    for offset in [
        TimeDelta::minutes(5),
        TimeDelta::minutes(-7),
        TimeDelta::zero(),
    ] {
        let (sim, client) =
            start(sim(31, 50).clock(cflogs_sim::SimClock::system_with_offset(offset))).await;
        assert_eq!(client.stats().clock_skew_ms, None, "no answer yet");
        source(&client, AuditApi::V1, 100)
            .fetch(&whole(span_window()))
            .await
            .unwrap();
        let skew = client
            .stats()
            .clock_skew_ms
            .expect("the Date header was read");
        let want = offset.num_milliseconds();
        assert!(
            (skew - want).abs() <= 1_500,
            "offset {want} ms measured as {skew} ms"
        );
        sim.shutdown().await.unwrap();
    }
}

/// Runs a pipeline on the system clock against a live simulator whose clock is `offset` ahead
/// of ours, for `run_for`; returns the stream's ids in the analytics sink, the events the
/// archive's manifests count, and the simulator's visible ids up to a few seconds before its
/// now at the end.
async fn live_with_skew(
    offset: TimeDelta,
    plan_on_source_clock: bool,
    run_for: Duration,
) -> (BTreeSet<String>, u64, BTreeSet<String>) {
    use cflogs_core::testing::{MemoryAnalytics, MemoryArchive, MemoryCheckpointStore};
    use cflogs_core::{Clock, Pipeline, Policy, SystemClock};

    let sim_now = (Utc::now() + offset)
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap();
    let start_at = sim_now - TimeDelta::seconds(20);
    let builder = sim(41, 0)
        .live(20.0)
        .live_from(start_at)
        .late_fraction(0.3)
        .max_late(Duration::from_secs(3))
        .clock(cflogs_sim::SimClock::system_with_offset(offset));
    let (sim, client) = start(builder).await;
    let mut config = AuditSourceConfig::new(AccountId::new("acc1").unwrap(), AuditApi::V1);
    config.plan_on_source_clock = plan_on_source_clock;
    let source = Arc::new(AuditLogSource::new(client, config)).into_event_source();
    let stream = source.stream().clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let analytics = Arc::new(MemoryAnalytics::new());
    let archive = Arc::new(MemoryArchive::new(clock.clone()));
    let mut policy = Policy::new(start_at);
    policy.lookback = Duration::from_secs(10);
    policy.settle_delay = Duration::from_secs(2);
    policy.max_span = Duration::from_secs(60);
    let mut pipeline = Pipeline::new(
        source,
        Arc::new(MemoryCheckpointStore::new()),
        analytics.clone(),
        archive.clone(),
        clock,
        policy,
    )
    .unwrap();
    let started = std::time::Instant::now();
    while started.elapsed() < run_for {
        while pipeline.run_once().await.unwrap().has_backlog() {}
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Everything visible before this was visible to the last cycles: events are at most 3 s
    // late, windows end 2 s before the source's now.
    let cut = sim.clock().now() - TimeDelta::seconds(8);
    let expected: BTreeSet<String> = sim
        .visible_ids_in("acc1", start_at, cut)
        .into_iter()
        .collect();
    let stored = analytics
        .event_ids(&stream)
        .iter()
        .map(|id| id.as_str().to_owned())
        .collect();
    let archived = archive
        .manifests(&stream)
        .unwrap()
        .iter()
        .map(|m| m.events)
        .sum();
    sim.shutdown().await.unwrap();
    (stored, archived, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_planned_on_cloudflares_clock_so_a_skewed_clock_loses_nothing() {
    let run = Duration::from_secs(12);
    let ahead = TimeDelta::seconds(90);
    let (planned_ahead, planned_behind, ours_ahead, ours_behind) = tokio::join!(
        live_with_skew(ahead, true, run),
        live_with_skew(-ahead, true, run),
        live_with_skew(ahead, false, run),
        live_with_skew(-ahead, false, run),
    );
    for (offset, (stored, archived, expected)) in [(ahead, planned_ahead), (-ahead, planned_behind)]
    {
        assert!(expected.len() > 300, "{} live events", expected.len());
        let missing: Vec<_> = expected.difference(&stored).collect();
        assert!(missing.is_empty(), "offset {offset}: missing {missing:?}");
        assert_eq!(
            archived,
            stored.len() as u64,
            "offset {offset}: archived once each"
        );
    }
    // On our clock instead, Cloudflare ahead of us is read 90 s late (nothing of the last 90 s
    // yet) and Cloudflare behind us loses what its clock had not reached when a window passed.
    let (stored, _, expected) = ours_ahead;
    assert!(
        stored.is_empty() && !expected.is_empty(),
        "{}",
        stored.len()
    );
    let (stored, _, expected) = ours_behind;
    let missing = expected.difference(&stored).count();
    assert!(missing > 0, "{missing} of {} missing", expected.len());
}
