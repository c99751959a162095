//! Property tests of the whole algorithm, one per cursor kind (`overlap` for audit logs,
//! `settled` for Logpull, `ledger` for Logpush objects): generated source histories, a fault at
//! any port call, crashes that rebuild the pipeline from the stores, and a second instance that
//! steals the lease mid-cycle, turning the first into a zombie. After the faults the pipeline
//! catches up, the sweeper runs, and the oracle of `exactly-once.md` must hold:
//! 1. analytics holds every source event exactly once;
//! 2. the published archive objects hold every source event exactly once;
//! 3. `seq` and `watermark` never decreased; every manifest links to the one before;
//! 4. no staged object is left.
//!
//! `PROPTEST_CASES` raises the case count (default 256); a failure prints the minimal history
//! and is saved in `exactly_once.proptest-regressions` beside this file, so it reproduces on the
//! next run (commit that file).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cflogs_core::testing::faults::{Fault, FaultPlan, Faulty};
use cflogs_core::testing::{
    ManualClock, MemoryAnalytics, MemoryArchive, MemoryBucket, MemoryCheckpointStore, MemorySource,
};
use cflogs_core::{
    ArchiveSink, BatchLimits, CheckpointStore, Clock, CycleOutcome, Dataset, Digest, Event,
    EventId, EventSource, ObjectLedger, OverlappingWindows, Pipeline, Policy, Quarantined,
    SettledWindows, StreamId, Timestamp,
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
    /// Ticks before which the checkpoint store forgets the stream (a new database, a deleted
    /// row): the pipeline must restore the checkpoint from the archive.
    wipes: BTreeSet<usize>,
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
        (
            prop::collection::btree_map(0u64..160, gen_fault(), 0..8),
            prop_oneof![
                3 => Just(BTreeSet::new()),
                1 => prop::collection::btree_set(0usize..50, 1..3),
            ],
        ),
    )
        .prop_map(
            |(
                (step, extra_lookback, settle, max_span),
                (max_events, max_bytes, page_size),
                clock_start,
                events,
                malformed,
                ticks,
                (faults, wipes),
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
                wipes,
            },
        )
}

/// Everything the instances share: the source and the three stores, and what the oracle
/// expects of them.
struct World {
    stream: StreamId,
    clock: Arc<ManualClock>,
    source: Arc<dyn EventSource>,
    store: Arc<MemoryCheckpointStore>,
    analytics: Arc<MemoryAnalytics>,
    archive: Arc<MemoryArchive>,
    policy: Policy,
    source_ids: Vec<EventId>,
    source_raw: BTreeMap<EventId, Bytes>,
    malformed_ids: Vec<EventId>,
    /// When every record is visible and settled.
    caught_up_at: Timestamp,
    /// Cycles that always suffice to catch up to a clock showing the argument.
    catch_up_bound: CatchUpBound,
    /// The largest cursor state the kind may hold at the end.
    cursor_bound: usize,
}

/// What the generators of each kind fill in before [`World::new`] adds the stores.
struct Built {
    stream: StreamId,
    clock: Arc<ManualClock>,
    source: Arc<dyn EventSource>,
    policy: Policy,
    source_raw: BTreeMap<EventId, Bytes>,
    malformed_ids: Vec<EventId>,
    caught_up_at: Timestamp,
    catch_up_bound: CatchUpBound,
    cursor_bound: usize,
}

/// Cycles that always suffice to catch up to a clock showing the argument.
type CatchUpBound = Box<dyn Fn(Timestamp) -> u64 + Send + Sync>;

impl World {
    fn new(b: Built) -> Self {
        let mut source_ids: Vec<EventId> = b.source_raw.keys().cloned().collect();
        source_ids.sort();
        let mut malformed_ids = b.malformed_ids;
        malformed_ids.sort();
        Self {
            stream: b.stream,
            archive: Arc::new(MemoryArchive::new(b.clock.clone() as Arc<dyn Clock>)),
            clock: b.clock,
            source: b.source,
            store: Arc::new(MemoryCheckpointStore::new()),
            analytics: Arc::new(MemoryAnalytics::new()),
            policy: b.policy,
            source_ids,
            source_raw: b.source_raw,
            malformed_ids,
            caught_up_at: b.caught_up_at,
            catch_up_bound: b.catch_up_bound,
            cursor_bound: b.cursor_bound,
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

fn base_policy(s: &Scenario) -> Policy {
    let mut policy = Policy::new(t0());
    policy.lookback = Duration::from_secs(s.lookback);
    policy.settle_delay = Duration::from_secs(s.settle);
    policy.max_span = Duration::from_secs(s.max_span);
    policy.limits = BatchLimits::new(s.max_events, s.max_bytes).unwrap();
    policy.poll_interval = Duration::from_secs(s.step);
    policy.sweep_min_age = Duration::ZERO;
    policy.sweep_every_cycles = 3;
    policy
}

/// The time of a generated event and when it becomes visible, `tolerated` seconds late at most.
fn when(g: &GenEvent, tolerated: i64) -> (Timestamp, Timestamp) {
    let at = t0()
        + chrono::Duration::seconds(i64::from(g.slot) * 23)
        + chrono::Duration::nanoseconds(i64::from(g.nanos));
    let delay = tolerated * i64::from(g.delay_pct) / 100;
    (at, at + chrono::Duration::seconds(delay))
}

fn raw_event(id: &EventId, at: Timestamp, pad: usize) -> Bytes {
    Bytes::from(format!(
        "{{\"id\":\"{id}\",\"when\":\"{at:?}\",\"pad\":\"{}\"}}",
        "x".repeat(pad)
    ))
}

/// How one window kind's world differs from the other's.
struct WindowKind {
    stream: &'static str,
    /// Seconds a record may become visible after its time.
    tolerated: i64,
    page_size: Option<usize>,
    /// Whether malformed record `n` carries its time.
    timed: fn(usize) -> bool,
    /// Seconds past the last visibility at which everything is settled.
    margin: u64,
    wrap: fn(Arc<MemorySource>) -> Arc<dyn EventSource>,
    catch_up_bound: CatchUpBound,
    cursor_bound: usize,
}

/// A world whose memory source holds the scenario's events and malformed records, read by a
/// window kind.
fn window_world(s: &Scenario, kind: WindowKind) -> World {
    let stream = StreamId::new(kind.stream).unwrap();
    let clock = ManualClock::new(t0() + chrono::Duration::seconds(s.clock_start as i64));
    let mut source = MemorySource::new(
        stream.clone(),
        Dataset::audit_logs(),
        clock.clone() as Arc<dyn Clock>,
    );
    if let Some(page) = kind.page_size {
        source = source.with_page_size(page);
    }
    let mut source_raw = BTreeMap::new();
    let mut latest_visible = t0();
    for (n, g) in s.events.iter().enumerate() {
        let (at, visible_at) = when(g, kind.tolerated);
        let id = EventId::new(format!("ev-{n:03}")).unwrap();
        let raw = raw_event(&id, at, g.pad);
        source.push(Event::new(id.clone(), at, raw.clone()), visible_at);
        source_raw.insert(id, raw);
        latest_visible = latest_visible.max(visible_at);
    }
    let mut malformed_ids = Vec::new();
    for (n, g) in s.malformed.iter().enumerate() {
        let (at, visible_at) = when(g, kind.tolerated);
        let mut q = Quarantined::new(
            Bytes::from(format!("{{\"when\":\"not a time {n}\"}}")),
            "unparsable time",
        );
        if (kind.timed)(n) {
            q = q.with_time(at);
        }
        malformed_ids.push(q.id.clone());
        source.push_malformed(q, at, visible_at);
        latest_visible = latest_visible.max(visible_at);
    }
    let caught_up_at =
        latest_visible.max(clock.now()) + chrono::Duration::seconds(kind.margin as i64);
    World::new(Built {
        source: (kind.wrap)(Arc::new(source)),
        policy: base_policy(s),
        stream,
        clock,
        source_raw,
        malformed_ids,
        caught_up_at,
        catch_up_bound: kind.catch_up_bound,
        cursor_bound: kind.cursor_bound,
    })
}

/// Kind `overlap` (audit logs): events visible late within the tolerated lateness, paging that
/// stops early at the caps.
fn overlap_world(s: &Scenario) -> World {
    // Each cycle commits at least one record or moves the watermark by at least
    // `max_span - lookback`.
    let (records, lookback, step) = (
        s.events.len() + s.malformed.len(),
        s.lookback,
        s.max_span - s.lookback,
    );
    let kind = WindowKind {
        stream: "audit-v1/account/prop",
        // The lateness the algorithm tolerates: lookback + settle - poll step.
        tolerated: (s.lookback + s.settle - s.step) as i64,
        page_size: s.page_size,
        timed: |_| false,
        margin: s.lookback + s.settle + s.step,
        wrap: |source| Arc::new(OverlappingWindows::new(source)),
        catch_up_bound: Box::new(move |now| {
            let span = (now - t0()).num_seconds() as u64 + lookback;
            2 * records as u64 + span / step + 50
        }),
        cursor_bound: 120 * records + 16,
    };
    window_world(s, kind)
}

/// Kind `settled` (Logpull): every record visible within the settle delay, windows that never
/// overlap, malformed records with and without a time, no early stop.
fn settled_world(s: &Scenario) -> World {
    // Each cycle commits at least one record or moves the watermark by `max_span`.
    let (records, step) = (s.events.len() + s.malformed.len(), s.max_span);
    let kind = WindowKind {
        stream: "logpull/zone/prop",
        tolerated: s.settle as i64,
        page_size: None,
        timed: |n| n % 2 == 0,
        margin: s.settle + s.step,
        wrap: |source| Arc::new(SettledWindows::new(source)),
        catch_up_bound: Box::new(move |now| {
            let span = (now - t0()).num_seconds() as u64;
            2 * records as u64 + span / step + 50
        }),
        // O(1): nothing but `{}`.
        cursor_bound: 2,
    };
    window_world(s, kind)
}

/// Kind `ledger` (Logpush): objects whose time is their interval's end, landing up to a
/// lookback late (so after newer ones), several lines each, split across batches by the caps.
fn ledger_world(s: &Scenario) -> World {
    let stream = StreamId::new("logpush/zone/prop/http_requests").unwrap();
    let clock = ManualClock::new(t0() + chrono::Duration::seconds(s.clock_start as i64));
    let bucket = MemoryBucket::new(
        stream.clone(),
        Dataset::new("http_requests").unwrap(),
        clock.clone() as Arc<dyn Clock>,
    );
    // Objects are generated events whose slot is the object and whose padding is its lines.
    let mut source_raw = BTreeMap::new();
    let mut malformed_ids = Vec::new();
    let mut latest_visible = t0();
    let mut lines = 0;
    for (n, g) in s.events.iter().enumerate().take(24) {
        let (at, visible_at) = when(g, s.lookback as i64);
        let key = format!("logs/{n:02}/{}.log.gz", at.timestamp());
        let count = g.pad % 9;
        let events: Vec<Event> = (0..count)
            .map(|line| {
                let id = EventId::new(format!("{key}#{line}")).unwrap();
                let t = at - chrono::Duration::seconds(line as i64 * 7);
                let raw = raw_event(&id, t, (g.pad * (line + 1)) % 300);
                source_raw.insert(id.clone(), raw.clone());
                Event::new(id, t, raw)
            })
            .collect();
        let malformed: Vec<Quarantined> = (0..usize::from(g.nanos % 3 == 1))
            .map(|i| {
                Quarantined::new(
                    Bytes::from(format!("{key}#{} not json", count + i)),
                    "not JSON",
                )
            })
            .collect();
        malformed_ids.extend(malformed.iter().map(|q| q.id.clone()));
        lines += count + malformed.len() + 1;
        bucket.put(&key, at, visible_at, events, malformed);
        latest_visible = latest_visible.max(visible_at);
    }
    let caught_up_at = latest_visible.max(clock.now()) + chrono::Duration::seconds(s.step as i64);
    let mut policy = base_policy(s);
    policy.max_span = policy.lookback + Duration::from_secs(1);
    World::new(Built {
        source: Arc::new(ObjectLedger::new(Arc::new(bucket))),
        policy,
        stream,
        clock,
        source_raw,
        malformed_ids,
        caught_up_at,
        // Each cycle reads at least one line of an object, or finishes one.
        catch_up_bound: Box::new(move |_| 2 * lines as u64 + 50),
        cursor_bound: 90 * s.events.len().min(24) + 120,
    })
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

async fn run_scenario(s: Scenario, world: World) {
    let world = Arc::new(world);
    let plan = FaultPlan::new(s.faults.clone());
    {
        // A second instance takes the lease and works for a while, mid-call of the first.
        let world = world.clone();
        plan.on_steal(Arc::new(move || {
            let world = world.clone();
            Box::pin(async move {
                let mut thief = world.pipeline(None);
                for _ in 0..3 {
                    // The hook may fire in the live instance's read ahead, which runs beside
                    // it: a new live instance can then fence the thief in turn.
                    match thief.run_once().await {
                        Ok(CycleOutcome::Idle) => break,
                        Ok(_) => continue,
                        Err(e) if e.is_conflict() => break,
                        Err(e) => panic!("the thief failed: {e}"),
                    }
                }
            })
        }));
    }
    let mut monotonic = Monotonic::default();
    let mut live = world.pipeline(Some(&plan));
    for (i, tick) in s.ticks.iter().enumerate() {
        if s.wipes.contains(&i) && world.store.forget(&world.stream) {
            // The store lost the stream: what it held before no longer binds what comes next.
            monotonic = Monotonic::default();
        }
        if *tick {
            world.clock.advance(Duration::from_secs(s.step));
        }
        match live.run_once().await {
            Ok(_) => {}
            Err(e) if plan.take_crash() || e.is_conflict() => {
                // The instance died (crash) or found itself fenced (zombie): start a new one
                // from the stores, as a supervisor would.
                live = world.pipeline(Some(&plan));
            }
            Err(e) if e.is_transient() => {}
            Err(e) => panic!("unexpected error {e:?} ({:?})", plan.injected()),
        }
        monotonic.check(&world.store, &world.stream).await;
    }

    // Catch up, fault-free, once every record is visible and settled.
    plan.disarm();
    let _ = plan.take_crash();
    world.clock.set(world.caught_up_at.max(world.clock.now()));
    let mut idle = false;
    for _ in 0..(world.catch_up_bound)(world.clock.now()) {
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
    if world.store.load(&world.stream).await.unwrap().is_none() {
        // Wiped while the instance had nothing to commit, so it never noticed: a restart
        // restores the checkpoint from the archive and finds nothing new.
        let mut restarted = world.pipeline(None);
        restarted
            .run_once()
            .await
            .expect("a restart over a wiped store restores and goes on");
        let mut idle = false;
        for _ in 0..(world.catch_up_bound)(world.clock.now()) {
            if matches!(
                restarted.run_once().await.expect("restarted"),
                CycleOutcome::Idle
            ) {
                idle = true;
                break;
            }
        }
        assert!(idle, "the restarted pipeline never caught up");
    }
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
    // The cursor stays within its kind's bound.
    assert!(
        cp.cursor.encoded_len() <= world.cursor_bound,
        "{} cursor of {} bytes, bound {}: {:?}",
        cp.cursor.kind(),
        cp.cursor.encoded_len(),
        world.cursor_bound,
        cp.cursor
    );
}

fn run(s: Scenario, world: impl FnOnce(&Scenario) -> World) {
    let world = world(&s);
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(run_scenario(s, world));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn overlap_cursor_exactly_once_under_faults_crashes_and_zombies(s in gen_scenario()) {
        run(s, overlap_world);
    }

    #[test]
    fn settled_cursor_exactly_once_under_faults_crashes_and_zombies(s in gen_scenario()) {
        run(s, settled_world);
    }

    #[test]
    fn ledger_cursor_exactly_once_under_faults_crashes_and_zombies(s in gen_scenario()) {
        run(s, ledger_world);
    }
}
