//! The acceptance test: a backfill of 100,000 simulated audit events, through the v1
//! and the v2 source and the core pipeline (in-memory sinks), with 5% server errors, 2% cut
//! bodies and a 400 past the last page, yields each event exactly once and never triggers
//! Cloudflare's 5-minute block.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cflogs_cloudflare::{
    AccountId, AuditApi, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient,
    Credentials, Secret,
};
use cflogs_core::testing::{MemoryAnalytics, MemoryArchive, MemoryCheckpointStore};
use cflogs_core::{
    CheckpointStore, CycleOutcome, Digest, EventId, Pipeline, Policy, SystemClock, WindowSource,
};
use cflogs_sim::Simulator;
use chrono::{DurationRound, TimeDelta, Utc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_event_backfill_is_exactly_once_in_v1_and_v2_without_a_block() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(10);
    let from = to - TimeDelta::hours(24);
    let sim = Simulator::builder()
        .seed(2026)
        .account("acc1")
        .token("backfill-token")
        .span(from, to, 100_000)
        .bursts(0.1, 5)
        .late_fraction(0.02)
        .max_late(Duration::from_secs(60))
        .malformed_rate(0.001)
        .error_rate(0.05)
        .cut_body_rate(0.02)
        .page_past_end_400(true)
        .rate_limit(1200, Duration::from_secs(300), Duration::from_secs(300))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let mut config = ClientConfig::new(Credentials::Token(Secret::new("backfill-token")));
    config.base_url = sim.base_url();
    config.retry_initial_delay = Duration::from_millis(5);
    config.retry_max_delay = Duration::from_millis(200);
    config.max_retries = 10;
    let client = Arc::new(CloudflareClient::new(config).unwrap());
    let want: Vec<EventId> = sim
        .visible_ids("acc1")
        .into_iter()
        .map(|id| EventId::new(id).unwrap())
        .collect();
    assert!(want.len() > 99_000, "{}", want.len());
    let malformed = sim.malformed("acc1");
    assert!(!malformed.is_empty());

    for api in [AuditApi::V1, AuditApi::V2] {
        let source = Arc::new(AuditLogSource::new(
            client.clone(),
            AuditSourceConfig::new(AccountId::new("acc1").unwrap(), api),
        ));
        let stream = source.stream().clone();
        let store = Arc::new(MemoryCheckpointStore::new());
        let analytics = Arc::new(MemoryAnalytics::new());
        let archive = Arc::new(MemoryArchive::new(Arc::new(SystemClock)));
        let mut policy = Policy::new(from);
        policy.sweep_min_age = Duration::ZERO;
        let mut pipeline = Pipeline::new(
            source.clone().into_event_source(),
            store.clone(),
            analytics.clone(),
            archive.clone(),
            Arc::new(SystemClock),
            policy,
        )
        .unwrap();
        let mut cycles = 0;
        loop {
            cycles += 1;
            assert!(cycles < 2_000, "no progress");
            match pipeline.run_once().await {
                Ok(CycleOutcome::Idle) => break,
                Ok(outcome) if !outcome.has_backlog() => break,
                Ok(_) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => panic!("{api:?}: {e:?}"),
            }
        }

        assert_eq!(
            analytics.event_ids(&stream),
            want,
            "{api:?}: analytics holds every event once"
        );
        let quarantine: BTreeSet<EventId> = malformed
            .iter()
            .map(|m| {
                EventId::content_hash(if api == AuditApi::V1 {
                    m.v1.as_bytes()
                } else {
                    m.v2.as_bytes()
                })
            })
            .collect();
        assert_eq!(
            analytics
                .quarantine_ids(&stream)
                .into_iter()
                .collect::<BTreeSet<_>>(),
            quarantine,
            "{api:?}: every malformed event quarantined"
        );
        let mut published = archive.published_ids(&stream).unwrap();
        published.sort();
        let mut all: Vec<EventId> = want.iter().cloned().chain(quarantine).collect();
        all.sort();
        assert_eq!(published.len(), all.len(), "{api:?}: archive count");
        assert_eq!(
            published, all,
            "{api:?}: archive holds every record exactly once"
        );
        let cp = store.load(&stream).await.unwrap().unwrap();
        let manifests = archive.manifests(&stream).unwrap();
        let mut prev = Digest::GENESIS;
        for m in &manifests {
            assert_eq!(m.prev, prev);
            prev = m.hash();
        }
        assert_eq!(cp.chain_head, prev);
        assert!(archive.staged_keys(&stream).is_empty());
        println!(
            "{api:?}: {} events, {} quarantined, {} batches, {cycles} cycles",
            want.len(),
            malformed.len(),
            manifests.len()
        );
    }
    // A window holding exactly one full page: v1 learns the end only from the 400 for page 2.
    let mut all_events = sim.events("acc1");
    all_events.sort_by_key(|e| e.when);
    // Whole seconds, as the source asks: [a, b) holds events i .. i + 1000 and nothing else.
    let second = |t: cflogs_core::Timestamp| t.duration_trunc(TimeDelta::seconds(1)).unwrap();
    let i = (1..all_events.len() - 1001)
        .find(|&i| {
            all_events[i - 1].when < second(all_events[i].when)
                && all_events[i + 999].when < second(all_events[i + 1000].when)
        })
        .unwrap();
    let window = cflogs_core::Window::new(
        second(all_events[i].when),
        second(all_events[i + 1000].when),
    )
    .unwrap();
    let before_400 = sim.stats().status_count(400);
    let v1 = AuditLogSource::new(
        client.clone(),
        AuditSourceConfig::new(AccountId::new("acc1").unwrap(), AuditApi::V1),
    );
    let exact = cflogs_core::FetchRequest {
        window,
        floor: window.from(),
        limits: cflogs_core::BatchLimits::default(),
    };
    let fetched = v1.fetch(&exact).await.unwrap();
    assert_eq!(
        sim.stats().status_count(400),
        before_400 + 1,
        "page 2 answered 400"
    );
    let in_window = fetched
        .events
        .iter()
        .filter(|e| window.contains(e.occurred_at))
        .count()
        + fetched.quarantined.len();
    assert_eq!(
        in_window, 1000,
        "one full page, then the 400 ended the window"
    );

    let served = sim.stats();
    let stats = client.stats();
    println!("simulator: {served:?}\nclient: {stats:?}");
    assert!(
        served.injected_5xx > 0 && served.cut_bodies > 0,
        "faults were injected"
    );
    assert!(
        served.status_count(400) > 0,
        "v1 met the 400 past the last page"
    );
    assert_eq!(
        served.blocks_triggered, 0,
        "never triggered the 5-minute block"
    );
    assert_eq!(served.rate_limited, 0);
}
