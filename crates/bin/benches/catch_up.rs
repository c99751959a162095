//! Catch-up speed (issue 13): `cflogs backfill`, the binary a user runs, on a backlog of audit
//! events from the simulator with Cloudflare's real rate limit (1200 requests in any 5 minutes,
//! a 5-minute block past it) into PostgreSQL and Parquet on S3, beside the two ceilings it
//! cannot beat, measured on a second simulator without a limit: fetching and parsing the pages
//! alone, and `COPY`ing the same rows alone.
//!
//! `bash scripts/bench.sh catch_up` starts the services and runs it; by hand, with
//! CFLOGS_TEST_DATABASE_URL and the S3 variables of `scripts/services/garage.sh` set:
//! `cargo bench -p cflogs --bench catch_up`. `BENCH_EVENTS` (default 200000) sets the backlog;
//! `BENCH_EVENTS=2000000` is the long one, which spends the window and then waits for it;
//! `BENCH_ACCOUNTS` (default 1) spreads the events over that many accounts, one stream each,
//! sharing the token's budget.
//!
//! Prints one table. Asserted: every event exactly once in PostgreSQL and in the verified
//! archive, and zero 429s; the rest are numbers to read: seconds, events/s, requests, the
//! child's peak RSS (VmHWM of the `cflogs` process alone), the requests of every 30 s, and, at
//! every moment the backfill sat idle with requests still to send, how many requests the
//! 5 minutes before it held: the share of the window it had spent when the budget held it.

#[path = "../../../tests/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cflogs_cloudflare::{
    AccountId, AuditApi, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient,
    Credentials,
};
use cflogs_core::{BatchLimits, FetchRequest, StreamId, Window, WindowSource};
use cflogs_integration::{TestBucket, TestDatabase};
use cflogs_sim::{RunningSim, Simulator};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};

const TOKEN: &str = "bench-token";
const WINDOW: Duration = Duration::from_secs(300);
const LIMIT: u64 = 1200;

/// The simulated accounts: `BENCH_ACCOUNTS` of them, each a stream of its own, one token.
fn accounts() -> Vec<String> {
    let n: usize = std::env::var("BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    (0..n.max(1)).map(|i| format!("acc-bench-{i}")).collect()
}

async fn simulator(
    events: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limited: bool,
) -> RunningSim {
    let mut builder = Simulator::builder().seed(13).token(TOKEN);
    for account in accounts() {
        builder = builder.account(account);
    }
    let builder = builder.span(from, to, events);
    let builder = if limited {
        builder.rate_limit(LIMIT as u32, WINDOW, WINDOW)
    } else {
        builder.no_rate_limit()
    };
    builder
        .build()
        .expect("simulator")
        .spawn()
        .await
        .expect("simulator on 127.0.0.1")
}

/// `VmHWM` (peak resident set) of process `pid`, in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let to = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() - TimeDelta::minutes(10);
    let from = to - TimeDelta::hours(24);
    let since = from - TimeDelta::minutes(1);
    let accounts = accounts();
    let per_account = events / accounts.len() as u64;
    let sim = simulator(per_account, from, to, true).await;
    let want: usize = accounts.iter().map(|a| sim.visible_ids(a).len()).sum();
    let db = TestDatabase::new().await;
    let bucket = TestBucket::new().await;
    let dir = std::env::temp_dir().join(format!("cflogs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work directory");

    // 1. The whole job, as a user runs it: `cflogs backfill` in a process of its own.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cflogs"))
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", accounts.join(",")),
            ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
            ("DATABASE_URL", db.url().to_owned()),
            ("S3_BUCKET", bucket.name().to_owned()),
            ("S3_PREFIX", "cflogs".to_owned()),
            ("S3_ENDPOINT", bucket.endpoint().to_owned()),
            ("S3_REGION", bucket.region().to_owned()),
            ("S3_ACCESS_KEY", bucket.access_key().to_owned()),
            ("S3_SECRET_KEY", bucket.secret_key().to_owned()),
            ("CFLOGS_METRICS_ADDR", "off".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ])
        // A setting to compare, passed through when given.
        .envs(
            std::env::var("CLOUDFLARE_PAGE_CONCURRENCY")
                .ok()
                .map(|v| ("CLOUDFLARE_PAGE_CONCURRENCY", v)),
        )
        .args([
            "backfill",
            "--since",
            &since.to_rfc3339(),
            "--until",
            &to.to_rfc3339(),
        ])
        .stdout(std::process::Stdio::null())
        // A file, not a pipe: one progress line per cycle would fill a pipe nobody reads yet.
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("stderr file"))
        .spawn()
        .expect("cflogs backfill starts");
    let pid = child.id();
    let started = Instant::now();
    // Requests the simulator answered, sampled every 100 ms: the usage of each 5-minute window.
    let samples: Arc<Mutex<Vec<(Duration, u64)>>> = Arc::default();
    let sampler = {
        let (samples, sim_stats) = (samples.clone(), sim.simulator().clone());
        tokio::spawn(async move {
            loop {
                let requests = sim_stats.stats().requests_total;
                samples.lock().unwrap().push((started.elapsed(), requests));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait for cflogs") {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let run_secs = started.elapsed().as_secs_f64();
    sampler.abort();
    let stderr = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    assert!(status.success(), "cflogs backfill failed: {stderr}");
    let run_requests = sim.stats().requests_total;

    let pg = support::postgres(&db).await;
    let stored: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM audit_logs")
        .fetch_one(pg.pool())
        .await
        .expect("count rows");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs")
        .fetch_one(pg.pool())
        .await
        .expect("count rows");
    assert_eq!(
        (stored as usize, rows as usize),
        (want, want),
        "every event exactly once in PostgreSQL"
    );
    let archive = support::archive(&bucket);
    let mut batches = 0;
    for account in &accounts {
        let stream_id = StreamId::new(format!("audit-v1/account/{account}")).expect("stream");
        let head = cflogs_core::CheckpointStore::load(&pg.checkpoint_store(), &stream_id)
            .await
            .expect("load")
            .expect("a checkpoint");
        let report = archive
            .verify(&stream_id, Some(head.chain_head))
            .await
            .expect("verify");
        assert!(report.is_clean(), "{report}");
        batches += head.seq;
    }
    let rate_limited = sim.stats().by_status.get(&429).copied().unwrap_or(0);

    // 2 and 3. Ceilings on a simulator without a limit serving the same events: each 1 h
    // window fetched and parsed (download), then its rows COPYed into a fresh database in
    // batches of 10,000 (COPY); one window in memory at a time.
    let free = simulator(per_account, from, to, false).await;
    for account in &accounts {
        assert_eq!(
            free.visible_ids(account),
            sim.visible_ids(account),
            "the same events"
        );
    }
    let mut config = ClientConfig::new(Credentials::Token(cflogs_cloudflare::Secret::new(TOKEN)));
    config.base_url = free.base_url();
    let client = Arc::new(CloudflareClient::new(config).expect("client"));
    let copy_db = TestDatabase::new().await;
    let sink = support::postgres(&copy_db).await.sink();
    let (mut download, mut copy, mut fetched) = (Duration::ZERO, Duration::ZERO, 0usize);
    for account in &accounts {
        let fetcher = Arc::new(AuditLogSource::new(
            client.clone(),
            AuditSourceConfig::new(AccountId::new(account).expect("account"), AuditApi::V1),
        ));
        let source = fetcher.clone().into_event_source();
        let (stream_id, schema) = (source.stream().clone(), source.schema().clone());
        let mut at = since;
        while at < to {
            let end = (at + TimeDelta::hours(1)).min(to);
            let window = Window::new(at, end).expect("window");
            let t = Instant::now();
            let page = fetcher
                .fetch(&FetchRequest {
                    window,
                    floor: at,
                    limits: BatchLimits::new(usize::MAX, usize::MAX).expect("limits"),
                })
                .await
                .expect("fetch");
            download += t.elapsed();
            fetched += page.events.len();
            let t = Instant::now();
            for chunk in page.events.chunks(10_000) {
                let batch = cflogs_core::Batch {
                    stream: stream_id.clone(),
                    schema: schema.clone(),
                    window,
                    events: chunk.to_vec(),
                    quarantined: Vec::new(),
                };
                cflogs_core::AnalyticsSink::write(&sink, &batch)
                    .await
                    .expect("copy");
            }
            copy += t.elapsed();
            at = end;
        }
    }
    let (download_secs, copy_secs) = (download.as_secs_f64(), copy.as_secs_f64());
    let slower = download_secs.max(copy_secs);

    println!(
        "catch-up of {want} audit events (24 h, {} account(s), one token): cflogs backfill into PostgreSQL + Parquet on S3, 2 cores",
        accounts.len()
    );
    println!("| | seconds | events/s | requests |");
    println!("|---|---|---|---|");
    println!(
        "| cflogs backfill (fetch → COPY ‖ Parquet → commit → publish) | {run_secs:.1} | {:.0} | {run_requests} |",
        want as f64 / run_secs
    );
    println!(
        "| ceiling: download + parse only (no limit) | {download_secs:.1} | {:.0} | {} |",
        fetched as f64 / download_secs,
        client.stats().requests
    );
    println!(
        "| ceiling: COPY only | {copy_secs:.1} | {:.0} | |",
        fetched as f64 / copy_secs
    );
    println!(
        "backfill / slower ceiling: {:.2}x; {batches} batches; peak RSS of the cflogs process {:.0} MiB; 429s from the simulator: {rate_limited}",
        run_secs / slower,
        peak as f64 / 1024.0
    );
    let samples = samples.lock().unwrap().clone();
    let mut per_30s = Vec::new();
    let mut t = 0.0;
    while t < run_secs {
        per_30s.push(requests_by(&samples, t + 30.0) - requests_by(&samples, t));
        t += 30.0;
    }
    println!("requests per 30 s of the run: {per_30s:?}");
    let held = held_moments(&samples, run_requests);
    if held.is_empty() {
        println!(
            "the budget never held the backfill back: no idle second while requests remained ({run_requests} requests, {LIMIT} allowed per 5 minutes)"
        );
    } else {
        let lowest = held.iter().map(|(_, n)| *n).min().unwrap_or(0);
        println!(
            "requests in the 5 minutes before each idle moment while requests remained ({} moments, {:.0}-{:.0} s): lowest {lowest} of {LIMIT} ({:.1}%), highest {}",
            held.len(),
            held.first().map_or(0.0, |(t, _)| *t),
            held.last().map_or(0.0, |(t, _)| *t),
            100.0 * lowest as f64 / LIMIT as f64,
            held.iter().map(|(_, n)| *n).max().unwrap_or(0)
        );
        // Where the lowest count is: the stretches of idleness, and when requests began.
        let first = samples
            .iter()
            .find(|(_, n)| *n > 0)
            .map_or(0.0, |(t, _)| t.as_secs_f64());
        let mut stretches: Vec<(f64, f64, u64)> = Vec::new();
        for &(t, n) in &held {
            match stretches.last_mut() {
                Some(last) if t - last.1 < 0.15 => *last = (last.0, t, n),
                _ => stretches.push((t, t, n)),
            }
        }
        println!(
            "first request at {first:.1} s; idle stretches (from, to, requests in the 5 minutes before its end): {:?}",
            stretches
                .iter()
                .map(|(a, b, n)| format!("{a:.1}-{b:.1} s: {n}"))
                .collect::<Vec<_>>()
        );
    }
    assert_eq!(rate_limited, 0, "the budget never trips the limit");
    let _ = std::fs::remove_dir_all(&dir);
    free.shutdown().await.expect("simulator stops");
    sim.shutdown().await.expect("simulator stops");
}

/// Requests the simulator had answered `t` seconds into the run (the last sample by then).
fn requests_by(samples: &[(Duration, u64)], t: f64) -> u64 {
    samples
        .iter()
        .take_while(|(when, _)| when.as_secs_f64() <= t)
        .last()
        .map_or(0, |(_, n)| *n)
}

/// The moments the backfill sat idle (no request in the second before) although it had
/// requests still to send, each with the requests of the 5 minutes before it. A client waits
/// like that only when the budget holds it back (or a writer far behind its reads does), so
/// each count is the share of the window it had spent by then: a budget that wastes allowance
/// shows counts below the limit here, one that spends it fully shows the limit.
fn held_moments(samples: &[(Duration, u64)], total: u64) -> Vec<(f64, u64)> {
    samples
        .iter()
        .map(|(when, n)| (when.as_secs_f64(), *n))
        .filter(|&(t, n)| n > 0 && n < total && t >= 1.0 && requests_by(samples, t - 1.0) == n)
        .map(|(t, n)| (t, n - requests_by(samples, t - WINDOW.as_secs_f64())))
        .collect()
}
