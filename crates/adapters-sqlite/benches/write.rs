//! `AnalyticsSink::write` throughput on SQLite, side by side with the practical ceiling: the
//! same rows inserted with the same multi-row statements into a table with the same columns and
//! no index or key, one transaction per batch.
//!
//! ```sh
//! cargo bench -p cflogs-sqlite --bench write
//! ```
//!
//! `CFLOGS_BENCH_BATCHES` (default 10) batches of `CFLOGS_BENCH_BATCH_SIZE` (default 10,000)
//! audit events after one warm-up batch, in a temporary file (`synchronous = FULL`, WAL).

use std::time::{Duration, Instant};

use cflogs_core::domain::rfc3339_nanos;
use cflogs_core::schema::Value;
use cflogs_core::testing::samples::{self, audit_events};
use cflogs_core::{AnalyticsSink, Batch, Event, StreamId, Window};
use cflogs_sqlite::{SqliteClient, SqliteConfig};
use chrono::TimeZone;

const ROWS_PER_STATEMENT: usize = 500;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// The ceiling table's columns: the sink's, without key, indexes or types.
fn columns() -> Vec<String> {
    let mut names = vec!["event_id".to_owned(), "\"timestamp\"".to_owned()];
    names.extend(
        samples::audit_schema()
            .columns()
            .iter()
            .map(|c| c.name().to_owned()),
    );
    names.extend(["raw_event".to_owned(), "stream".to_owned()]);
    names
}

fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64()
}

/// The ceiling: the same values, plain inserts into an unindexed table.
async fn plain_insert(pool: &sqlx::SqlitePool, stream: &str, events: &[Event]) {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    let mapped = samples::audit_schema().columns().len();
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let row = format!("({})", vec!["?"; mapped + 4].join(", "));
        let sql = format!(
            "INSERT INTO plain_ceiling VALUES {}",
            vec![row; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for e in chunk {
            query = query
                .bind(e.id.as_str())
                .bind(rfc3339_nanos::format(&e.occurred_at));
            for i in 0..mapped {
                query = query.bind(e.value(i).map(Value::to_text));
            }
            query = query
                .bind(std::str::from_utf8(&e.raw).expect("utf-8 sample"))
                .bind(stream);
        }
        query.execute(&mut *tx).await.expect("insert");
    }
    tx.commit().await.expect("commit");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let batches = env_number("CFLOGS_BENCH_BATCHES", 10);
    let size = env_number("CFLOGS_BENCH_BATCH_SIZE", 10_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let client = SqliteClient::open(&SqliteConfig::new(dir.path().join("bench.sqlite3")))
        .await
        .expect("open");
    sqlx::query(&format!(
        "CREATE TABLE plain_ceiling ({} TEXT)",
        columns().join(" TEXT, ")
    ))
    .execute(client.writer())
    .await
    .expect("ceiling table");

    let sink = client.sink();
    let stream = StreamId::new("audit-v1/account/bench").expect("stream");
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 0, 0, 0)
        .single()
        .expect("time");
    let step = chrono::Duration::milliseconds(7);
    let (mut sink_time, mut plain_time) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    for round in 0..=batches {
        let first = round * size;
        let events = audit_events(
            "bench",
            first,
            size,
            start + step * i32::try_from(first).expect("small"),
            step,
        );
        let window = Window::new(
            events[0].occurred_at,
            events[events.len() - 1].occurred_at + chrono::Duration::seconds(1),
        )
        .expect("window");
        let batch = Batch {
            stream: stream.clone(),
            schema: samples::audit_schema(),
            window,
            events,
            quarantined: Vec::new(),
        };
        let t = Instant::now();
        let report = sink.write(&batch).await.expect("sink write");
        let sink_elapsed = t.elapsed();
        assert_eq!(report.inserted, size);
        let t = Instant::now();
        plain_insert(client.writer(), stream.as_str(), &batch.events).await;
        let plain_elapsed = t.elapsed();
        if round == 0 {
            continue; // warm-up
        }
        sink_time += sink_elapsed;
        plain_time += plain_elapsed;
        ratios.push(plain_elapsed.as_secs_f64() / sink_elapsed.as_secs_f64());
        println!(
            "batch {round:>3}: sink {:>7.0} events/s   plain insert {:>7.0} rows/s",
            rate(size, sink_elapsed),
            rate(size, plain_elapsed)
        );
    }
    ratios.sort_by(f64::total_cmp);
    let total = batches * size;
    println!("\nSQLite (WAL, synchronous=FULL), {batches} batches of {size} audit events");
    println!(
        "  AnalyticsSink::write (primary key + 4 indexes)      {:>7.0} events/s",
        rate(total, sink_time)
    );
    println!(
        "  plain insert into an unindexed table (ceiling)      {:>7.0} rows/s",
        rate(total, plain_time)
    );
    println!(
        "  ratio sink / ceiling: {:.2} (median of per-batch ratios {:.2})",
        rate(total, sink_time) / rate(total, plain_time),
        ratios[ratios.len() / 2]
    );
    client.close().await;
}
