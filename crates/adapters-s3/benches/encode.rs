//! Parquet encoding of audit events on one core: events/s, MB/s of raw JSON, bytes per event
//! and the archive's size relative to the raw JSON, for the core's sample events and for
//! realistic events served by the Cloudflare simulator.
//!
//! `cargo bench -p cflogs-s3` (optimized). `CFLOGS_BENCH_EVENTS` sets the number of events
//! (default 200,000).
#![allow(missing_docs)]

#[path = "../tests/common/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use cflogs_core::Event;
use cflogs_core::testing::samples::audit_events;
use cflogs_s3::{ParquetSettings, encode_events};
use chrono::TimeZone;
use parquet::file::reader::{FileReader, SerializedFileReader};

fn measure(name: &str, events: &[Event], settings: &ParquetSettings) {
    let raw: usize = events.iter().map(|e| e.raw.len()).sum();
    let now = chrono::Utc::now();
    // One warm-up run, then the best of three: the machine is shared.
    let mut best = Duration::MAX;
    let mut size = 0;
    for run in 0..4 {
        // Split into batches as the pipeline would (10,000 events), one file each.
        let start = Instant::now();
        let mut bytes = 0;
        for batch in events.chunks(10_000) {
            let encoded = encode_events(
                &cflogs_core::testing::samples::audit_schema(),
                batch,
                now,
                settings,
            )
            .expect("encode");
            bytes += encoded.bytes.len();
        }
        let took = start.elapsed();
        if run > 0 {
            best = best.min(took);
        }
        size = bytes;
    }
    if std::env::var_os("CFLOGS_BENCH_COLUMNS").is_some() {
        let encoded = encode_events(
            &cflogs_core::testing::samples::audit_schema(),
            &events[..events.len().min(10_000)],
            now,
            settings,
        )
        .expect("encode");
        let reader = SerializedFileReader::new(encoded.bytes).expect("read");
        let meta = reader.metadata();
        let rows = meta.file_metadata().num_rows() as f64;
        let mut line = String::new();
        for i in 0..meta.row_group(0).num_columns() {
            let total: i64 = meta
                .row_groups()
                .iter()
                .map(|rg| rg.column(i).compressed_size())
                .sum();
            line.push_str(&format!(
                " {}={:.1}",
                meta.row_group(0).column(i).column_path(),
                total as f64 / rows
            ));
        }
        println!("  bytes/event by column:{line}");
    }
    let secs = best.as_secs_f64();
    let n = events.len() as f64;
    println!(
        "{name:<34} zstd {lvl:>2}: {n:>8} events, {eps:>9.0} events/s, {mbs:>6.1} MB/s raw, \
         {bpe:>6.1} B/event parquet vs {rpe:>6.1} B/event JSON = {pct:>5.1}% of raw",
        lvl = settings.zstd_level,
        n = events.len(),
        eps = n / secs,
        mbs = raw as f64 / secs / 1e6,
        bpe = size as f64 / n,
        rpe = raw as f64 / n,
        pct = 100.0 * size as f64 / raw as f64,
    );
}

fn main() {
    // Only `cargo bench` passes `--bench`; `cargo test --all-targets` just checks it runs.
    if !std::env::args().any(|a| a == "--bench") {
        println!("encode benchmark: run with `cargo bench -p cflogs-s3`");
        return;
    }
    let count: u64 = std::env::var("CFLOGS_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .unwrap();
    let samples = audit_events(
        "0123456789abcdef0123456789abcdef",
        0,
        count,
        start,
        chrono::Duration::milliseconds(15),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let v1 = runtime.block_on(sim::simulator_events(count, sim::Api::V1));
    let v2 = runtime.block_on(sim::simulator_events(count, sim::Api::V2));
    println!("encoding on one thread, batches of 10,000 events, one Parquet file per batch");
    for level in [1, 3] {
        let settings = ParquetSettings {
            zstd_level: level,
            ..ParquetSettings::default()
        };
        measure("core samples (audit_events)", &samples, &settings);
        measure("simulator audit v1 (cflogs-sim)", &v1, &settings);
        measure("simulator audit v2 (cflogs-sim)", &v2, &settings);
    }
}
