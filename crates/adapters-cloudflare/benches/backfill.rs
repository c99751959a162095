//! Fetch-and-map throughput of the audit log sources against the simulator, and the memory a
//! fetch adds. Run: `cargo bench -p cflogs-cloudflare --bench backfill` (`BENCH_EVENTS` sets
//! the number of events, default 100000).
//!
//! The simulator runs in this process, so the memory figure is the growth of the resident set
//! during the fetch (peak minus the resident set before it), not the process total.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cflogs_cloudflare::{
    AccountId, AuditApi, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient,
    Credentials, RateBudget, Secret,
};
use cflogs_core::{BatchLimits, FetchRequest, Window, WindowSource};
use cflogs_sim::Simulator;
use chrono::{DurationRound, TimeDelta, Utc};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak() {
    // "5" resets VmHWM to the current resident set (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let from = to - TimeDelta::hours(24);
    let sim = Simulator::builder()
        .seed(1)
        .account("acc1")
        .token("bench")
        .span(from, to, n)
        .late_fraction(0.0)
        .malformed_rate(0.0)
        .error_rate(0.0)
        .cut_body_rate(0.0)
        .no_rate_limit()
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let mut config = ClientConfig::new(Credentials::Token(Secret::new("bench")));
    config.base_url = sim.base_url();
    config.rate_budget = RateBudget::new(1_000_000, Duration::from_secs(1)).unwrap();
    let client = Arc::new(CloudflareClient::new(config).unwrap());
    println!("cflogs-cloudflare fetch benchmark: {n} audit events over 24 h, pages of 1000");
    // Bounded runs first: the allocator keeps freed memory, so a big run would hide the
    // growth of the runs after it.
    let cases = [
        (
            "1 h windows, 10k caps  ",
            BatchLimits::default(),
            TimeDelta::hours(1),
        ),
        (
            "whole 24 h in one fetch",
            BatchLimits::new(usize::MAX, usize::MAX).unwrap(),
            TimeDelta::hours(24),
        ),
    ];
    for (label, limits, span) in cases {
        for api in [AuditApi::V1, AuditApi::V2] {
            let source = AuditLogSource::new(
                client.clone(),
                AuditSourceConfig::new(AccountId::new("acc1").unwrap(), api),
            );
            let rss_before = status_kib("VmRSS:");
            reset_peak();
            let started = Instant::now();
            let (mut events, mut bytes, mut requests) = (0usize, 0usize, client.stats().requests);
            let mut at = from;
            while at < to {
                let end = (at + span).min(to);
                let window = Window::new(at, end).unwrap();
                let fetched = source
                    .fetch(&FetchRequest {
                        window,
                        floor: at,
                        limits,
                    })
                    .await
                    .unwrap();
                let done = fetched.complete_to.unwrap_or(end);
                events += fetched
                    .events
                    .iter()
                    .filter(|e| e.occurred_at >= at && e.occurred_at < done)
                    .count();
                bytes += fetched
                    .events
                    .iter()
                    .filter(|e| e.occurred_at >= at && e.occurred_at < done)
                    .map(|e| e.raw.len())
                    .sum::<usize>();
                at = done;
            }
            let elapsed = started.elapsed().as_secs_f64();
            requests = client.stats().requests - requests;
            let peak_extra = status_kib("VmHWM:").saturating_sub(rss_before);
            println!(
                "{:?} {label}: {events} events in {elapsed:.2} s = {:.0} events/s, {:.1} MB/s of JSON, {requests} requests, peak memory added {:.1} MiB",
                api,
                events as f64 / elapsed,
                bytes as f64 / elapsed / 1e6,
                peak_extra as f64 / 1024.0
            );
        }
    }
    sim.shutdown().await.unwrap();
}
