//! `AnalyticsSink::write` throughput on PostgreSQL, side by side with the practical ceiling: a
//! plain `COPY` of the same rows into a table with the same columns and no index or key.
//!
//! ```sh
//! CFLOGS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo bench -p cflogs-postgres --bench write
//! ```
//!
//! `CFLOGS_BENCH_BATCHES` (default 10) batches of `CFLOGS_BENCH_BATCH_SIZE` (default 10,000)
//! audit events, after one warm-up batch each, through the sink with `CFLOGS_BENCH_SLICES`
//! (default 2) concurrent slices and through the sink in one transaction per batch. Sink and ceiling batches alternate, so both see
//! the same machine. The ceiling's rows are encoded before the clock starts; the sink's
//! encoding is part of what it measures. `CFLOGS_BENCH_KEEP=1` keeps the database afterwards.

use std::time::{Duration, Instant};

use cflogs_core::testing::samples::{self, audit_events};
use cflogs_core::{AnalyticsSink, Batch, Event, StreamId, Window};
use cflogs_integration::TestDatabase;
use cflogs_postgres::{PostgresClient, PostgresConfig, Secret};
use chrono::TimeZone;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The batch as `COPY` text rows for the ceiling table (the sample events need no sanitizing).
fn copy_rows(stream: &str, events: &[Event]) -> Vec<u8> {
    let mut out = String::with_capacity(events.len() * 1200);
    let mapped = samples::audit_schema().columns().len();
    for e in events {
        escape(&mut out, e.id.as_str());
        out.push('\t');
        out.push_str(&e.occurred_at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string());
        for i in 0..mapped {
            out.push('\t');
            match e.value(i) {
                Some(v) => escape(&mut out, &v.to_text()),
                None => out.push_str("\\N"),
            }
        }
        out.push('\t');
        escape(&mut out, std::str::from_utf8(&e.raw).expect("utf-8 sample"));
        out.push('\t');
        out.push_str(stream);
        out.push('\n');
    }
    out.into_bytes()
}

fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // A database of its own from the integration harness (the server named by
    // CFLOGS_TEST_DATABASE_URL, or a container), dropped at the end, also on a panic.
    let db = TestDatabase::new().await;
    let batches = env_number("CFLOGS_BENCH_BATCHES", 10);
    let size = env_number("CFLOGS_BENCH_BATCH_SIZE", 10_000);

    let config = PostgresConfig::from_url(&Secret::new(db.url()))
        .expect("config")
        .with_pool_size(8)
        .expect("pool size");
    let client = PostgresClient::connect(&config).await.expect("connect");
    // The default sink (large batches in concurrent slices) and the one-transaction sink, each
    // on its own stream so both insert every event.
    let slices = usize::try_from(env_number("CFLOGS_BENCH_SLICES", 2)).expect("small");
    let sliced_label = format!("AnalyticsSink::write, {slices} concurrent slices (default 2)");
    let sinks = [
        (
            sliced_label.as_str(),
            client.sink().with_parallelism(slices),
            StreamId::new("audit-v1/account/bench-slices").expect("stream"),
        ),
        (
            "AnalyticsSink::write, one transaction per batch",
            client.sink().with_parallelism(1),
            StreamId::new("audit-v1/account/bench-one-tx").expect("stream"),
        ),
    ];
    let pool = client.pool().clone();
    // The sink's table, columns and types only: no key, no index.
    sinks[0]
        .1
        .prepare(&samples::audit_schema())
        .await
        .expect("audit_logs table");
    sqlx::query("CREATE TABLE copy_ceiling (LIKE audit_logs INCLUDING DEFAULTS)")
        .execute(&pool)
        .await
        .expect("ceiling table");

    let mut copy_columns = vec!["event_id".to_owned(), "\"timestamp\"".to_owned()];
    copy_columns.extend(
        samples::audit_schema()
            .columns()
            .iter()
            .map(|c| c.name().to_owned()),
    );
    copy_columns.extend(["raw_event".to_owned(), "stream".to_owned()]);
    let copy_sql = format!("COPY copy_ceiling ({}) FROM STDIN", copy_columns.join(", "));
    let ceiling_stream = "audit-v1/account/bench-ceiling";
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 0, 0, 0)
        .single()
        .expect("time");
    let step = chrono::Duration::milliseconds(7);
    let mut sink_time = [Duration::ZERO; 2];
    let mut copy_time = Duration::ZERO;
    let mut sink_rates = [Vec::new(), Vec::new()];
    let mut copy_rates = Vec::new();
    let mut round_ratios = [Vec::new(), Vec::new()];
    let mut bytes = 0usize;
    for round in 0..=batches {
        let first = round * size;
        let events = audit_events(
            "bench",
            first,
            size,
            start + step * i32::try_from(first).expect("small"),
            step,
        );
        bytes += events.iter().map(|e| e.raw.len()).sum::<usize>();
        let window = Window::new(
            events[0].occurred_at,
            events[events.len() - 1].occurred_at + chrono::Duration::seconds(1),
        )
        .expect("window");
        let rows = copy_rows(ceiling_stream, &events);
        let mut elapsed = [Duration::ZERO; 2];
        let mut batch = Batch {
            stream: sinks[0].2.clone(),
            schema: samples::audit_schema(),
            window,
            events,
            quarantined: Vec::new(),
        };
        for (i, (_, sink, stream)) in sinks.iter().enumerate() {
            batch.stream = stream.clone();
            let t = Instant::now();
            let report = sink.write(&batch).await.expect("sink write");
            elapsed[i] = t.elapsed();
            assert_eq!(report.inserted, size);
        }

        let t = Instant::now();
        let mut conn = pool.acquire().await.expect("connection");
        let mut copy = conn.copy_in_raw(&copy_sql).await.expect("copy");
        copy.send(rows).await.expect("copy data");
        let copied = copy.finish().await.expect("copy finish");
        let copy_elapsed = t.elapsed();
        drop(conn);
        assert_eq!(copied, size);

        if round == 0 {
            continue; // warm-up
        }
        for i in 0..2 {
            sink_time[i] += elapsed[i];
            sink_rates[i].push(rate(size, elapsed[i]));
            round_ratios[i].push(copy_elapsed.as_secs_f64() / elapsed[i].as_secs_f64());
        }
        copy_time += copy_elapsed;
        copy_rates.push(rate(size, copy_elapsed));
        println!(
            "batch {round:>3}: sink (slices) {:>7.0} events/s   sink (one tx) {:>7.0} events/s   plain COPY {:>7.0} rows/s",
            rate(size, elapsed[0]),
            rate(size, elapsed[1]),
            rate(size, copy_elapsed)
        );
    }
    let total = batches * size;
    let copy_rate = rate(total, copy_time);
    copy_rates.sort_by(f64::total_cmp);
    println!(
        "\nPostgreSQL, {batches} batches of {size} audit events ({} bytes of raw JSON on average), primary key + 4 indexes",
        bytes / usize::try_from((batches + 1) * size).expect("small")
    );
    for (i, (label, ..)) in sinks.iter().enumerate() {
        let sink_rate = rate(total, sink_time[i]);
        sink_rates[i].sort_by(f64::total_cmp);
        round_ratios[i].sort_by(f64::total_cmp);
        println!(
            "  {label:<52} {sink_rate:>7.0} events/s (median batch {:>7.0})  ratio to ceiling {:.2} (median of per-batch ratios {:.2})",
            sink_rates[i][sink_rates[i].len() / 2],
            sink_rate / copy_rate,
            round_ratios[i][round_ratios[i].len() / 2]
        );
    }
    println!(
        "  {:<52} {copy_rate:>7.0} rows/s   (median batch {:>7.0})",
        "plain COPY into an unindexed table (ceiling)",
        copy_rates[copy_rates.len() / 2]
    );

    client.close().await;
    if std::env::var_os("CFLOGS_BENCH_KEEP").is_some() {
        println!("kept the bench database {} (CFLOGS_BENCH_KEEP)", db.name());
        std::mem::forget(db);
    }
}
