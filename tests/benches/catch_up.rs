//! Catch-up speed (issue 13): a backlog of audit events from the simulator, with Cloudflare's
//! real rate limit (1200 requests in any 5 minutes) switched on, through the core pipeline into
//! PostgreSQL and Parquet on S3, beside the two ceilings it cannot beat: fetching and parsing
//! the pages alone, and `COPY`ing the same rows alone.
//!
//! `bash scripts/bench.sh catch_up` starts the services and runs it; by hand, with
//! CFLOGS_TEST_DATABASE_URL and the S3 variables of `scripts/services/garage.sh` set:
//! `cargo bench -p cflogs-integration --bench catch_up`. `BENCH_EVENTS` (default 200000) sets
//! the backlog. Prints one table; numbers, not assertions, except exactly-once and zero 429s.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cflogs_cloudflare::{
    AccountId, AuditApi, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient,
    Credentials,
};
use cflogs_core::{
    AnalyticsSink, ArchiveSink, Batch, BatchLimits, CheckpointStore, EventSource, FetchRequest,
    Pipeline, Policy, StreamId, SystemClock, Window, WindowSource,
};
use cflogs_integration::{TestBucket, TestDatabase};
use chrono::{DurationRound, TimeDelta, Utc};

const ACCOUNT: &str = "acc-bench";
const TOKEN: &str = "bench-token";

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak resident set (VmHWM) to the current one, so a later peak is this phase's.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn client(base_url: String) -> Arc<CloudflareClient> {
    let mut config = ClientConfig::new(Credentials::Token(cflogs_cloudflare::Secret::new(TOKEN)));
    config.base_url = base_url;
    Arc::new(CloudflareClient::new(config).expect("client"))
}

fn source(client: &Arc<CloudflareClient>) -> Arc<AuditLogSource> {
    Arc::new(AuditLogSource::new(
        client.clone(),
        AuditSourceConfig::new(AccountId::new(ACCOUNT).expect("account"), AuditApi::V1),
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let to = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() - TimeDelta::minutes(10);
    let from = to - TimeDelta::hours(24);
    let sim = cflogs_sim::Simulator::builder()
        .seed(13)
        .account(ACCOUNT)
        .token(TOKEN)
        .span(from, to, events)
        .rate_limit(1200, Duration::from_secs(300), Duration::from_secs(300))
        .build()
        .expect("simulator")
        .spawn()
        .await
        .expect("simulator on 127.0.0.1");
    let want = sim.visible_ids(ACCOUNT).len();
    let db = TestDatabase::new().await;
    let bucket = TestBucket::new().await;
    let pg = support::postgres(&db).await;
    let archive = Arc::new(support::archive(&bucket));

    // 1. The whole job: source → pipeline → PostgreSQL + Parquet on S3, exactly once.
    let run_client = client(sim.base_url());
    let stream: Arc<dyn EventSource> = source(&run_client).into_event_source();
    let stream_id: StreamId = stream.stream().clone();
    let mut policy = Policy::new(from - TimeDelta::minutes(1));
    policy.settle_delay = Duration::from_secs(60);
    let mut pipeline = Pipeline::new(
        stream,
        Arc::new(pg.checkpoint_store()) as Arc<dyn CheckpointStore>,
        Arc::new(pg.sink()) as Arc<dyn AnalyticsSink>,
        archive.clone() as Arc<dyn ArchiveSink>,
        Arc::new(SystemClock),
        policy,
    )
    .expect("pipeline");
    let rss_before = rss_kib("VmRSS:");
    reset_peak();
    let started = Instant::now();
    let progress = pipeline.catch_up(None, |_, _| {}).await.expect("catch up");
    let run_secs = started.elapsed().as_secs_f64();
    let run_peak = rss_kib("VmHWM:");
    let run_stats = run_client.stats();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs")
        .fetch_one(pg.pool())
        .await
        .expect("count rows");
    assert_eq!(
        stored as usize, want,
        "every event exactly once in PostgreSQL"
    );
    assert_eq!(progress.events as usize, want);
    let head = pg
        .checkpoint_store()
        .load(&stream_id)
        .await
        .expect("load")
        .map(|cp| cp.chain_head);
    let report = archive.verify(&stream_id, head).await.expect("verify");
    assert!(report.is_clean(), "{report}");

    // 2. Download ceiling: the same pages fetched and parsed, 1 h windows, nothing written.
    let ceiling_client = client(sim.base_url());
    let fetcher = source(&ceiling_client);
    let started = Instant::now();
    let mut batches: Vec<Batch> = Vec::new();
    let mut fetched = 0usize;
    let mut at = from - TimeDelta::minutes(1);
    while at < to {
        let end = (at + TimeDelta::hours(1)).min(to);
        let window = Window::new(at, end).expect("window");
        let page = fetcher
            .fetch(&FetchRequest {
                window,
                floor: at,
                limits: BatchLimits::new(usize::MAX, usize::MAX).expect("limits"),
            })
            .await
            .expect("fetch");
        fetched += page.events.len();
        batches.push(Batch {
            stream: stream_id.clone(),
            schema: fetcher.schema().clone(),
            window,
            events: page.events,
            quarantined: page.quarantined,
        });
        at = end;
    }
    let download_secs = started.elapsed().as_secs_f64();

    // 3. COPY ceiling: the same rows into a fresh database, in the pipeline's batch size.
    let copy_db = TestDatabase::new().await;
    let copy_pg = support::postgres(&copy_db).await;
    let sink = copy_pg.sink();
    let started = Instant::now();
    for batch in &batches {
        for chunk in batch.events.chunks(10_000) {
            let part = Batch {
                stream: batch.stream.clone(),
                schema: batch.schema.clone(),
                window: batch.window,
                events: chunk.to_vec(),
                quarantined: Vec::new(),
            };
            sink.write(&part).await.expect("copy");
        }
    }
    let copy_secs = started.elapsed().as_secs_f64();
    let slower = download_secs.max(copy_secs);
    let sim_stats = sim.stats();

    println!("catch-up of {want} audit events (24 h), PostgreSQL + Parquet on S3, 2 workers");
    println!("| | seconds | events/s | requests |");
    println!("|---|---|---|---|");
    println!(
        "| cflogs pipeline (fetch → COPY → Parquet → commit) | {run_secs:.1} | {:.0} | {} |",
        want as f64 / run_secs,
        run_stats.requests
    );
    println!(
        "| ceiling: download + parse only | {download_secs:.1} | {:.0} | {} |",
        fetched as f64 / download_secs,
        ceiling_client.stats().requests
    );
    println!(
        "| ceiling: COPY only | {copy_secs:.1} | {:.0} | |",
        fetched as f64 / copy_secs
    );
    println!(
        "pipeline / slower ceiling: {:.2}x; batches {}; RSS growth during the run {:.0} MiB (peak {:.0} MiB, before {:.0} MiB, the in-process simulator included); 429s from the simulator: {}; budget waits {} ({:.1} s)",
        run_secs / slower,
        progress.batches,
        (run_peak.saturating_sub(rss_before)) as f64 / 1024.0,
        run_peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        sim_stats.by_status.get(&429).copied().unwrap_or(0),
        run_stats.budget_waits,
        run_stats.budget_wait_ms as f64 / 1000.0
    );
    assert_eq!(
        sim_stats.by_status.get(&429).copied().unwrap_or(0),
        0,
        "the budget never trips the limit"
    );
    sim.shutdown().await.expect("simulator stops");
}
