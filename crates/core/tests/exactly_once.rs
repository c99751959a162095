//! Property test of the whole algorithm: generated source histories, a fault at any port call,
//! crashes that rebuild the pipeline from the stores, and a second instance that steals the
//! lease mid-cycle, turning the first into a zombie. After the faults the pipeline catches up,
//! the sweeper runs, and the oracle of `exactly-once.md` must hold:
//! 1. analytics holds every source event exactly once;
//! 2. the published archive objects hold every source event exactly once;
//! 3. `seq` and `watermark` never decreased; every manifest links to the one before;
//! 4. no staged object is left.
//!
//! `PROPTEST_CASES` raises the case count (default 256); a failure prints the minimal history
//! and is saved in `exactly_once.proptest-regressions` beside this file, so it reproduces on the
//! next run (commit that file).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cflogs_core::testing::faults::{Fault, FaultPlan, Faulty};
use cflogs_core::testing::{
    ManualClock, MemoryAnalytics, MemoryArchive, MemoryCheckpointStore, MemorySource,
};
use cflogs_core::{
    ArchiveSink, BatchLimits, CheckpointStore, Clock, CycleOutcome, Dataset, Digest, Event,
    EventId, Pipeline, Policy, Quarantined, StreamId, Timestamp,
};
use chrono::TimeZone;
use proptest::prelude::*;

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
}

#[derive(Clone, Debug)]
struct GenEvent {
    /// Seconds after t0 (few distinct values, so ties are common).
    slot: u32,
    /// Nanoseconds added, sometimes.
    nanos: u32,
    /// Visibility delay as a share (0..=100) of the largest delay the policy tolerates.
    delay_pct: u32,
    /// Padding bytes, to make the byte cap bite.
    pad: usize,
}

#[derive(Clone, Debug)]
struct Scenario {
    lookback: u64,
    settle: u64,
    step: u64,
    max_span: u64,
    max_events: usize,
    max_bytes: usize,
    page_size: Option<usize>,
    clock_start: u64,
    events: Vec<GenEvent>,
    malformed: Vec<GenEvent>,
    ticks: Vec<bool>,
    faults: BTreeMap<u64, Fault>,
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    (
        0u32..160,
        prop_oneof![3 => Just(0u32), 1 => 1u32..1_000_000_000],
        prop_oneof![2 => Just(0u32), 3 => 0u32..=100],
        0usize..400,
    )
        .prop_map(|(slot, nanos, delay_pct, pad)| GenEvent {
            slot,
            nanos,
            delay_pct,
            pad,
        })
}

fn gen_fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::FailBefore),
        Just(Fault::FailAfter),
        Just(Fault::CrashBefore),
        Just(Fault::CrashAfter),
        Just(Fault::Steal),
    ]
}

fn gen_scenario() -> impl Strategy<Value = Scenario> {
    (
        (10u64..=600, 0u64..=900, 0u64..=120, 1u64..=7200),
        (1usize..=25, 300usize..=20_000, prop::option::of(1usize..=6)),
        0u64..=7200,
        prop::collection::vec(gen_event(), 0..80),
        prop::collection::vec(gen_event(), 0..4),
        prop::collection::vec(prop::bool::weighted(0.8), 1..50),
        prop::collection::btree_map(0u64..160, gen_fault(), 0..8),
    )
        .prop_map(
            |(
                (step, extra_lookback, settle, max_span),
                (max_events, max_bytes, page_size),
                clock_start,
                events,
                malformed,
                ticks,
                faults,
            )| Scenario {
                lookback: step + extra_lookback,
                settle,
                step,
                max_span: step + extra_lookback + max_span,
                max_events,
                max_bytes,
                page_size,
                clock_start,
                events,
                malformed,
                ticks,
                faults,
            },
        )
}

/// Everything the instances share: the source and the three stores.
struct World {
    stream: StreamId,
    clock: Arc<ManualClock>,
    source: Arc<MemorySource>,
    store: Arc<MemoryCheckpointStore>,
    analytics: Arc<MemoryAnalytics>,
    archive: Arc<MemoryArchive>,
    policy: Policy,
    source_ids: Vec<EventId>,
    source_raw: BTreeMap<EventId, Bytes>,
    malformed_ids: Vec<EventId>,
    latest_visible: Timestamp,
}

impl World {
    fn new(s: &Scenario) -> Self {
        let stream = StreamId::new("audit-v1/account/prop").unwrap();
        let clock = ManualClock::new(t0() + chrono::Duration::seconds(s.clock_start as i64));
        let mut source = MemorySource::new(
            stream.clone(),
            Dataset::audit_logs(),
            clock.clone() as Arc<dyn Clock>,
        );
        if let Some(page) = s.page_size {
            source = source.with_page_size(page);
        }
        // The lateness the algorithm tolerates: lookback + settle - poll step.
        let tolerated = (s.lookback + s.settle - s.step) as i64;
        let when = |g: &GenEvent| {
            let at = t0()
                + chrono::Duration::seconds(i64::from(g.slot) * 23)
                + chrono::Duration::nanoseconds(i64::from(g.nanos));
            let delay = tolerated * i64::from(g.delay_pct) / 100;
            (at, at + chrono::Duration::seconds(delay))
        };
        let mut source_raw = BTreeMap::new();
        let mut latest_visible = t0();
        for (n, g) in s.events.iter().enumerate() {
            let (at, visible_at) = when(g);
            let id = EventId::new(format!("ev-{n:03}")).unwrap();
            let raw = Bytes::from(format!(
                "{{\"id\":\"{id}\",\"when\":\"{at:?}\",\"pad\":\"{}\"}}",
                "x".repeat(g.pad)
            ));
            source.push(Event::new(id.clone(), at, raw.clone()), visible_at);
            source_raw.insert(id, raw);
            latest_visible = latest_visible.max(visible_at);
        }
        let mut malformed_ids = Vec::new();
        for (n, g) in s.malformed.iter().enumerate() {
            let (at, visible_at) = when(g);
            let q = Quarantined::new(
                Bytes::from(format!("{{\"when\":\"not a time {n}\"}}")),
                "unparsable time",
            );
            malformed_ids.push(q.id.clone());
            source.push_malformed(q, at, visible_at);
            latest_visible = latest_visible.max(visible_at);
        }
        let mut policy = Policy::new(t0());
        policy.lookback = Duration::from_secs(s.lookback);
        policy.settle_delay = Duration::from_secs(s.settle);
        policy.max_span = Duration::from_secs(s.max_span);
        policy.limits = BatchLimits::new(s.max_events, s.max_bytes).unwrap();
        policy.poll_interval = Duration::from_secs(s.step);
        policy.sweep_min_age = Duration::ZERO;
        policy.sweep_every_cycles = 3;
        let mut source_ids: Vec<EventId> = source_raw.keys().cloned().collect();
        source_ids.sort();
        malformed_ids.sort();
        Self {
            stream,
            archive: Arc::new(MemoryArchive::new(clock.clone() as Arc<dyn Clock>)),
            clock,
            source: Arc::new(source),
            store: Arc::new(MemoryCheckpointStore::new()),
            analytics: Arc::new(MemoryAnalytics::new()),
            policy,
            source_ids,
            source_raw,
            malformed_ids,
            latest_visible,
        }
    }

    fn pipeline(&self, plan: Option<&Arc<FaultPlan>>) -> Pipeline {
        let clock = self.clock.clone() as Arc<dyn Clock>;
        match plan {
            None => Pipeline::new(
                self.source.clone(),
                self.store.clone(),
                self.analytics.clone(),
                self.archive.clone(),
                clock,
                self.policy.clone(),
            ),
            Some(plan) => Pipeline::new(
                Faulty::new(self.source.clone(), plan.clone()),
                Faulty::new(self.store.clone(), plan.clone()),
                Faulty::new(self.analytics.clone(), plan.clone()),
                Faulty::new(self.archive.clone(), plan.clone()),
                clock,
                self.policy.clone(),
            ),
        }
        .unwrap()
    }
}

/// Tracks the stored checkpoint between steps: seq and watermark never decrease.
#[derive(Default)]
struct Monotonic {
    seq: u64,
    watermark: Option<Timestamp>,
}

impl Monotonic {
    async fn check(&mut self, store: &MemoryCheckpointStore, stream: &StreamId) {
        if let Some(cp) = store.load(stream).await.unwrap() {
            assert!(
                cp.seq >= self.seq,
                "seq decreased: {} -> {}",
                self.seq,
                cp.seq
            );
            if let Some(w) = self.watermark {
                assert!(
                    cp.watermark >= w,
                    "watermark decreased: {w} -> {}",
                    cp.watermark
                );
            }
            self.seq = cp.seq;
            self.watermark = Some(cp.watermark);
        }
    }
}

async fn run_scenario(s: Scenario) {
    let world = Arc::new(World::new(&s));
    let plan = FaultPlan::new(s.faults.clone());
    let steals = Arc::new(std::sync::atomic::AtomicU32::new(0));
    {
        // A second instance takes the lease and works for a while, mid-call of the first.
        let world = world.clone();
        let steals = steals.clone();
        plan.on_steal(Arc::new(move || {
            let world = world.clone();
            let steals = steals.clone();
            Box::pin(async move {
                steals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut thief = world.pipeline(None);
                for _ in 0..3 {
                    match thief.run_once().await.unwrap() {
                        CycleOutcome::Idle => break,
                        _ => continue,
                    }
                }
            })
        }));
    }
    let mut monotonic = Monotonic::default();
    let mut live = world.pipeline(Some(&plan));
    let mut restarts = 0;
    for tick in &s.ticks {
        if *tick {
            world.clock.advance(Duration::from_secs(s.step));
        }
        match live.run_once().await {
            Ok(_) => {}
            Err(e) if plan.take_crash() || e.is_conflict() => {
                // The instance died (crash) or found itself fenced (zombie): start a new one
                // from the stores, as a supervisor would.
                restarts += 1;
                live = world.pipeline(Some(&plan));
            }
            Err(e) if e.is_transient() => {}
            Err(e) => panic!("unexpected error {e:?} ({:?})", plan.injected()),
        }
        monotonic.check(&world.store, &world.stream).await;
    }

    // Catch up, fault-free, once every event is visible and settled.
    plan.disarm();
    let _ = plan.take_crash();
    world.clock.set(
        world.latest_visible.max(world.clock.now())
            + chrono::Duration::seconds((s.lookback + s.settle + s.step) as i64),
    );
    // Each cycle commits at least one record or moves the watermark by at least
    // `max_span - lookback`, so this many cycles always suffice.
    let span = (world.clock.now() - t0()).num_seconds() as u64 + s.lookback;
    let bound =
        2 * (s.events.len() + s.malformed.len()) as u64 + span / (s.max_span - s.lookback) + 50;
    let mut idle = false;
    for _ in 0..bound {
        match live.run_once().await {
            Ok(CycleOutcome::Idle) => {
                idle = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.is_conflict() || e.is_transient() => live = world.pipeline(Some(&plan)),
            Err(e) => panic!("unexpected error during catch-up: {e:?}"),
        }
        monotonic.check(&world.store, &world.stream).await;
    }
    assert!(idle, "the pipeline never caught up");
    let cp = world.store.load(&world.stream).await.unwrap().unwrap();
    assert!(
        cp.pending.is_none(),
        "caught up with a manifest still pending"
    );
    world.archive.sweep(&cp, Duration::ZERO).await.unwrap();

    // 1. analytics: every source event, nothing else (the sink's key makes "once" structural;
    //    the set must match exactly).
    assert_eq!(
        world.analytics.event_ids(&world.stream),
        world.source_ids,
        "analytics events"
    );
    assert_eq!(
        world.analytics.quarantine_ids(&world.stream),
        world.malformed_ids,
        "analytics quarantine"
    );
    // 2. archive: every record exactly once across published objects, bytes intact.
    let mut published = world.archive.published_ids(&world.stream).unwrap();
    published.sort();
    let mut want: Vec<EventId> = world
        .source_ids
        .iter()
        .chain(&world.malformed_ids)
        .cloned()
        .collect();
    want.sort();
    assert_eq!(published, want, "archived records (with multiplicity)");
    assert_eq!(
        world.archive.published_raw(&world.stream).unwrap(),
        world.source_raw,
        "raw bytes"
    );
    // 3. the chain: contiguous seqs, each manifest linked to the previous, head in checkpoint.
    let manifests = world.archive.manifests(&world.stream).unwrap();
    let mut prev = Digest::GENESIS;
    for (i, m) in manifests.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1, "manifest seqs are contiguous");
        assert_eq!(
            m.prev, prev,
            "manifest {} does not link to its predecessor",
            m.seq
        );
        prev = m.hash();
    }
    assert_eq!(
        cp.seq,
        manifests.len() as u64,
        "checkpoint seq = published manifests"
    );
    assert_eq!(cp.chain_head, prev, "checkpoint chain head = last manifest");
    // 4. no staged garbage.
    assert_eq!(
        world.archive.staged_keys(&world.stream),
        Vec::<String>::new(),
        "staged garbage"
    );
    let _ = restarts;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn exactly_once_under_faults_crashes_and_zombies(s in gen_scenario()) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(run_scenario(s));
    }
}
