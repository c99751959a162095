//! End to end on real services: the simulated Cloudflare API, a PostgreSQL database and an S3
//! bucket from the harness, the core pipeline in between, faults injected at every port, and the
//! oracle of `exactly-once.md` checked against what PostgreSQL and the bucket hold.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cflogs_cloudflare::{
    AccountId, AuditApi, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient,
    Credentials,
};
use cflogs_core::testing::faults::{Fault, FaultPlan, Faulty};
use cflogs_core::{
    AnalyticsSink, ArchiveSink, CheckpointStore, CycleOutcome, EventId, EventSource, Pipeline,
    Policy, StreamId, SystemClock, WindowSource,
};
use cflogs_integration::{TestBucket, TestDatabase};
use cflogs_postgres::PostgresClient;
use cflogs_s3::{Decoded, ParquetArchive, layout};
use cflogs_sim::RunningSim;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use support::{archive, postgres};

const ACCOUNT: &str = "acc-e2e";
const TOKEN: &str = "e2e-token";

async fn simulator(events: u64, from: DateTime<Utc>, to: DateTime<Utc>) -> RunningSim {
    cflogs_sim::Simulator::builder()
        .seed(77)
        .account(ACCOUNT)
        .token(TOKEN)
        .span(from, to, events)
        .late_fraction(0.02)
        .max_late(Duration::from_secs(60))
        .malformed_rate(0.002)
        .error_rate(0.03)
        .cut_body_rate(0.01)
        .no_rate_limit()
        .build()
        .expect("simulator")
        .spawn()
        .await
        .expect("spawn simulator")
}

fn source(sim: &RunningSim) -> Arc<AuditLogSource> {
    let mut config = ClientConfig::new(Credentials::Token(cflogs_cloudflare::Secret::new(TOKEN)));
    config.base_url = sim.base_url();
    config.retry_initial_delay = Duration::from_millis(5);
    config.retry_max_delay = Duration::from_millis(100);
    config.max_retries = 10;
    let client = Arc::new(CloudflareClient::new(config).expect("client"));
    Arc::new(AuditLogSource::new(
        client,
        AuditSourceConfig::new(AccountId::new(ACCOUNT).expect("account"), AuditApi::V1),
    ))
}

fn policy(from: DateTime<Utc>) -> Policy {
    let mut policy = Policy::new(from);
    // Sweep staged leftovers at every cycle, whatever their age, so the oracle's 4th point can
    // be checked as soon as the pipeline is idle.
    policy.sweep_min_age = Duration::ZERO;
    policy.sweep_every_cycles = 1;
    policy
}

/// Runs cycles until the pipeline is idle, restarting it (a new instance, a new epoch) when
/// the plan says it crashed. Returns the number of restarts.
async fn run_to_idle(mut make: impl FnMut() -> Pipeline, plan: &FaultPlan) -> usize {
    let mut pipeline = make();
    let mut restarts = 0;
    for _ in 0..5_000 {
        let outcome = pipeline.run_once().await;
        if plan.take_crash() {
            restarts += 1;
            pipeline = make();
            continue;
        }
        match outcome {
            Ok(CycleOutcome::Idle) => return restarts,
            Ok(outcome) if !outcome.has_backlog() => return restarts,
            Ok(_) => {}
            Err(e) if e.is_transient() => {}
            Err(e) => panic!("cycle failed: {e:?}"),
        }
    }
    panic!("the pipeline did not catch up in 5,000 cycles");
}

/// What the database holds for `stream`: event id → rows.
async fn analytics_rows(client: &PostgresClient, stream: &StreamId) -> BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT event_id, count(*) FROM audit_logs WHERE stream = $1 GROUP BY event_id",
    )
    .bind(stream.as_str())
    .fetch_all(client.pool())
    .await
    .expect("read audit_logs")
    .into_iter()
    .collect()
}

/// What the published archive objects hold for `stream`: record id → occurrences.
async fn archive_rows(archive: &ParquetArchive, stream: &StreamId) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    for manifest in archive.manifests(stream).await.expect("manifests") {
        for object in &manifest.objects {
            let records = match archive
                .read_object(
                    &object.final_key,
                    &cflogs_core::testing::samples::audit_schema(),
                )
                .await
                .expect("read")
            {
                Decoded::Events(events) => events
                    .into_iter()
                    .map(|e| e.id.as_str().to_owned())
                    .collect::<Vec<_>>(),
                Decoded::Quarantined(q) => {
                    q.into_iter().map(|q| q.id.as_str().to_owned()).collect()
                }
            };
            for id in records {
                *ids.entry(id).or_insert(0) += 1;
            }
        }
    }
    ids
}

/// A simulator with `events` over the last `hours` (ending 10 minutes ago), a database, a
/// bucket, and the adapters on them.
struct Rig {
    from: DateTime<Utc>,
    sim: RunningSim,
    _db: TestDatabase,
    bucket: TestBucket,
    pg: PostgresClient,
    s3: ParquetArchive,
    source: Arc<AuditLogSource>,
    stream: StreamId,
}

impl Rig {
    async fn new(events: u64, hours: i64) -> Self {
        let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(10);
        let from = to - TimeDelta::hours(hours);
        let sim = simulator(events, from, to).await;
        let db = TestDatabase::new().await;
        let bucket = TestBucket::new().await;
        let pg = postgres(&db).await;
        let s3 = archive(&bucket);
        let source = source(&sim);
        let stream = source.stream().clone();
        Self {
            from,
            sim,
            _db: db,
            bucket,
            pg,
            s3,
            source,
            stream,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_logs_reach_postgres_and_s3_exactly_once_through_faults_and_restarts() {
    let Rig {
        from,
        sim,
        _db,
        bucket,
        pg,
        s3,
        source,
        stream,
    } = Rig::new(8_000, 6).await;

    // A fault at every 5th port call among the first 300: failures before and after the effect,
    // and crashes (the instance is dropped and a new one takes the lease).
    let kinds = [
        Fault::FailBefore,
        Fault::FailAfter,
        Fault::CrashBefore,
        Fault::CrashAfter,
    ];
    let plan = FaultPlan::new((1..60).map(|i| (i * 5, kinds[(i as usize * 7) % kinds.len()])));
    // Windows of 20 minutes: about 18 batches, so faults land in many commits and publishes.
    let mut small = policy(from);
    small.max_span = Duration::from_secs(20 * 60);
    let store: Arc<dyn CheckpointStore> =
        Faulty::new(Arc::new(pg.checkpoint_store()), plan.clone());
    let analytics: Arc<dyn AnalyticsSink> = Faulty::new(Arc::new(pg.sink()), plan.clone());
    let archive_port: Arc<dyn ArchiveSink> = Faulty::new(Arc::new(s3.clone()), plan.clone());
    let faulty_source: Arc<dyn EventSource> =
        Faulty::new(source.clone().into_event_source(), plan.clone());
    let make = || {
        Pipeline::new(
            faulty_source.clone(),
            store.clone(),
            analytics.clone(),
            archive_port.clone(),
            Arc::new(SystemClock),
            small.clone(),
        )
        .expect("pipeline")
    };
    let restarts = run_to_idle(make, &plan).await;
    let injected = plan.injected();
    assert!(injected.len() >= 20, "faults were injected: {injected:?}");
    assert!(restarts >= 5, "instances crashed and restarted: {restarts}");

    // Caught up without faults, then once more so the sweeper runs on a clean state.
    plan.disarm();
    run_to_idle(make, &plan).await;

    let want: BTreeSet<String> = sim.visible_ids(ACCOUNT).into_iter().collect();
    let quarantined: BTreeSet<String> = sim
        .malformed(ACCOUNT)
        .iter()
        .map(|m| EventId::content_hash(m.v1.as_bytes()).as_str().to_owned())
        .collect();
    assert!(want.len() > 7_500 && !quarantined.is_empty());

    // 1. PostgreSQL holds every event exactly once, and every malformed record in quarantine.
    let rows = analytics_rows(&pg, &stream).await;
    assert_eq!(rows.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(rows.values().all(|&n| n == 1));
    let in_quarantine: BTreeSet<String> =
        sqlx::query_as::<_, (String,)>("SELECT quarantine_id FROM quarantine WHERE stream = $1")
            .bind(stream.as_str())
            .fetch_all(pg.pool())
            .await
            .expect("read quarantine")
            .into_iter()
            .map(|(id,)| id)
            .collect();
    assert_eq!(in_quarantine, quarantined);

    // 2. The published objects in the bucket hold every record exactly once.
    let published = archive_rows(&s3, &stream).await;
    let all: BTreeSet<String> = want.union(&quarantined).cloned().collect();
    assert_eq!(published.keys().cloned().collect::<BTreeSet<_>>(), all);
    let repeated: Vec<_> = published.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "records in two objects: {repeated:?}");

    // 3. The chain links up to the checkpoint's head, every object's hash matches.
    let checkpoint = pg
        .checkpoint_store()
        .load(&stream)
        .await
        .expect("load")
        .expect("checkpoint");
    assert!(checkpoint.pending.is_none());
    let report = s3
        .verify(&stream, Some(checkpoint.chain_head))
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.manifests_checked, checkpoint.seq);

    // 4. No staged object is left in the bucket.
    let staging = format!("cflogs/{}/", layout::staging_dir(&stream));
    let keys = bucket.keys().await.expect("list bucket");
    let staged: Vec<_> = keys.iter().filter(|k| k.starts_with(&staging)).collect();
    assert!(staged.is_empty(), "staged objects left: {staged:?}");
    println!(
        "{} events, {} quarantined, {} batches, {} faults injected, {restarts} restarts, {} keys in the bucket",
        want.len(),
        quarantined.len(),
        checkpoint.seq,
        injected.len(),
        keys.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_fences_the_first_on_real_services() {
    let Rig {
        from,
        sim,
        _db,
        bucket: _bucket,
        pg,
        s3,
        source,
        stream,
    } = Rig::new(3_000, 2).await;
    let mut small = policy(from);
    small.max_span = Duration::from_secs(15 * 60);
    let make = || {
        Pipeline::new(
            source.clone().into_event_source(),
            Arc::new(pg.checkpoint_store()),
            Arc::new(pg.sink()),
            Arc::new(s3.clone()),
            Arc::new(SystemClock),
            small.clone(),
        )
        .expect("pipeline")
    };

    let mut first = make();
    for _ in 0..3 {
        first.run_once().await.expect("first instance works");
    }
    let seq_before = pg
        .checkpoint_store()
        .load(&stream)
        .await
        .expect("load")
        .expect("checkpoint")
        .seq;
    // A second instance takes the lease and works.
    let mut second = make();
    second.run_once().await.expect("second instance works");
    // The first is now a zombie: its next commit is refused and changes nothing.
    let seq_between = pg
        .checkpoint_store()
        .load(&stream)
        .await
        .unwrap()
        .unwrap()
        .seq;
    let zombie = first.run_once().await;
    assert!(
        zombie.as_ref().is_err_and(|e| e.is_conflict()),
        "the fenced instance must get Conflict, got {zombie:?}"
    );
    let after_zombie = pg.checkpoint_store().load(&stream).await.unwrap().unwrap();
    assert_eq!(
        after_zombie.seq, seq_between,
        "the zombie committed nothing"
    );
    assert!(seq_between > seq_before);

    // The second catches up; the oracle holds.
    loop {
        match second.run_once().await.expect("cycle") {
            CycleOutcome::Idle => break,
            outcome if !outcome.has_backlog() => break,
            _ => {}
        }
    }
    let want: BTreeSet<String> = sim.visible_ids(ACCOUNT).into_iter().collect();
    let rows = analytics_rows(&pg, &stream).await;
    assert_eq!(rows.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(rows.values().all(|&n| n == 1));
    let published = archive_rows(&s3, &stream).await;
    assert!(
        published.values().all(|&n| n == 1),
        "no record in two objects"
    );
    for id in &want {
        assert!(published.contains_key(id), "{id} is archived");
    }
    let checkpoint = pg.checkpoint_store().load(&stream).await.unwrap().unwrap();
    let report = s3
        .verify(&stream, Some(checkpoint.chain_head))
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report}");
}
