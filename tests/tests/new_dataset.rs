//! Adding a dataset is one schema definition: a dataset that cflogs has never heard of,
//! defined here, goes through SQLite, PostgreSQL and the Parquet archive on S3 with no other
//! code: each sink derives its table or file from the schema, and the typed values come back
//! from each as written.

mod support;

use std::sync::Arc;

use cflogs_core::schema::Value;
use cflogs_core::testing::samples;
use cflogs_core::{
    AnalyticsSink, ArchiveSink, ColumnType, Dataset, DatasetSchema, Digest, Epoch, Event,
    StageRequest, StreamId, TimeFormat,
};
use cflogs_integration::{TestBucket, TestDatabase};
use cflogs_s3::Decoded;
use cflogs_sqlite::{SqliteClient, SqliteConfig};
use chrono::TimeZone;

/// The whole definition of the new dataset.
fn build_runs() -> Arc<DatasetSchema> {
    Arc::new(
        DatasetSchema::builder(
            Dataset::new("build_runs").unwrap(),
            &["finished"],
            TimeFormat::UnixNanos,
        )
        .id_field(&["run.id"])
        .context_column("pipeline", ColumnType::Text, "pipeline")
        .column("branch", ColumnType::Text, &["git.branch", "branch"])
        .column("duration_s", ColumnType::Float, &["timing.seconds"])
        .column("tests", ColumnType::Integer, &["stats.tests"])
        .column("green", ColumnType::Boolean, &["ok"])
        .column(
            "started",
            ColumnType::Timestamp(TimeFormat::Rfc3339),
            &["started"],
        )
        .column("runner_ip", ColumnType::Ip, &["runner.ip"])
        .column("artifacts", ColumnType::Json, &["artifacts"])
        .key(&["pipeline"])
        .index(&["branch", "runner_ip"])
        .build()
        .expect("a valid schema"),
    )
}

/// The sums the tests compare in each store: (rows, sum of tests, green runs, runs on
/// 10.0.0.0/8 runners).
fn expected(events: &[Event]) -> (i64, i64, i64, i64) {
    let schema = build_runs();
    let v = |e: &Event, name: &str| samples::value_of(&schema, e, name).cloned();
    let tests = events
        .iter()
        .filter_map(|e| match v(e, "tests") {
            Some(Value::Integer(n)) => Some(n),
            _ => None,
        })
        .sum();
    let green = events
        .iter()
        .filter(|e| v(e, "green") == Some(Value::Boolean(true)))
        .count() as i64;
    let private = events
        .iter()
        .filter(|e| matches!(v(e, "runner_ip"), Some(Value::Ip(ip)) if ip.to_string().starts_with("10.")))
        .count() as i64;
    (events.len() as i64, tests, green, private)
}

fn runs() -> Vec<Event> {
    let schema = build_runs();
    let start = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    let context = cflogs_core::Context::new().with("pipeline", "deploy");
    (0..50u32)
        .map(|n| {
            let at = start + chrono::Duration::seconds(i64::from(n) * 90);
            let record = serde_json::json!({
                "run": {"id": format!("run-{n}")},
                "finished": at.timestamp_nanos_opt().unwrap(),
                "git": {"branch": if n % 3 == 0 { "main" } else { "feature/é" }},
                "timing": {"seconds": f64::from(n) + 0.5},
                // Every 10th run sends its count as text, which the integer column refuses:
                // NULL there, the text stays in raw_event.
                "stats": {"tests": if n % 10 == 9 { serde_json::json!("many") } else { serde_json::json!(100 + n) }},
                "ok": n % 4 != 0,
                "started": (at - chrono::Duration::seconds(80)).to_rfc3339(),
                "runner": {"ip": if n % 2 == 0 { format!("10.0.0.{n}") } else { format!("2001:db8::{n}") }},
                "artifacts": {"count": n, "names": ["a.tar", "b.log"]},
            });
            let mapped = schema.map_in(&record, &context).expect("maps");
            Event::new(mapped.id.expect("id field"), mapped.occurred_at, record.to_string())
                .with_values(mapped.values)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_defined_in_a_test_goes_through_sqlite_postgresql_and_parquet() {
    let schema = build_runs();
    let events = runs();
    let want = expected(&events);
    assert!(want.1 > 0 && want.2 > 0 && want.3 > 0, "{want:?}");
    let stream = StreamId::new("ci/pipeline/deploy").unwrap();
    let batch = samples::batch_of(&stream, schema.clone(), events.clone(), Vec::new());

    // SQLite.
    let dir = std::env::temp_dir().join(format!(
        "cflogs-new-dataset-{}",
        cflogs_integration::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = SqliteClient::open(&SqliteConfig::new(dir.join("cflogs.sqlite3")))
        .await
        .expect("sqlite");
    assert_eq!(sqlite.sink().write(&batch).await.unwrap().inserted, 50);
    assert_eq!(sqlite.sink().write(&batch).await.unwrap().inserted, 0);
    let got: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(tests), sum(green), sum(runner_ip LIKE '10.%') FROM build_runs \
         WHERE pipeline = 'deploy' AND stream = 'ci/pipeline/deploy'",
    )
    .fetch_one(sqlite.readers())
    .await
    .unwrap();
    assert_eq!(got, want, "SQLite");
    let (indexes,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
         AND name IN ('build_runs_branch_idx', 'build_runs_runner_ip_idx')",
    )
    .fetch_one(sqlite.readers())
    .await
    .unwrap();
    assert_eq!(indexes, 2, "SQLite: the schema's indexes");
    sqlite.close().await;
    let _ = std::fs::remove_dir_all(&dir);

    // PostgreSQL.
    let db = TestDatabase::new().await;
    let pg = support::postgres(&db).await;
    assert_eq!(pg.sink().write(&batch).await.unwrap().inserted, 50);
    assert_eq!(pg.sink().write(&batch).await.unwrap().inserted, 0);
    let got: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(tests)::int8, count(*) FILTER (WHERE green), \
         count(*) FILTER (WHERE runner_ip << '10.0.0.0/8') FROM build_runs \
         WHERE pipeline = 'deploy' AND stream = 'ci/pipeline/deploy' \
         AND artifacts->>'count' IS NOT NULL AND started < \"timestamp\"",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(got, want, "PostgreSQL");
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_name = 'build_runs' AND table_schema = current_schema() ORDER BY ordinal_position",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    let types: Vec<(&str, &str)> = types
        .iter()
        .map(|(c, t)| (c.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("event_id", "text"),
            ("timestamp", "timestamp with time zone"),
            ("pipeline", "text"),
            ("branch", "text"),
            ("duration_s", "double precision"),
            ("tests", "bigint"),
            ("green", "boolean"),
            ("started", "timestamp with time zone"),
            ("runner_ip", "inet"),
            ("artifacts", "jsonb"),
            ("raw_event", "jsonb"),
            ("ingestion_time", "timestamp with time zone"),
            ("stream", "text"),
        ],
        "PostgreSQL: the table derived from the schema"
    );
    let (raw_text,): (String,) = sqlx::query_as(
        "SELECT raw_event->'stats'->>'tests' FROM build_runs WHERE event_id = 'run-9'",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(raw_text, "many", "a wrongly typed value stays in raw_event");
    pg.close().await;

    // Parquet on S3.
    let bucket = TestBucket::new().await;
    let archive = support::archive(&bucket);
    let manifest = archive
        .stage(
            &batch,
            StageRequest {
                seq: 1,
                epoch: Epoch(1),
                prev: Digest::GENESIS,
                now: chrono::Utc::now(),
            },
        )
        .await
        .expect("stage");
    archive.publish(&manifest).await.expect("publish");
    let mut back = Vec::new();
    for object in &manifest.objects {
        assert!(
            object.final_key.starts_with(&format!(
                "build_runs/stream={}/year=2026/",
                stream.key_segment()
            )),
            "{}",
            object.final_key
        );
        match archive
            .read_object(&object.final_key, &schema)
            .await
            .unwrap()
        {
            Decoded::Events(e) => back.extend(e),
            Decoded::Quarantined(_) => panic!("no quarantined records were written"),
        }
    }
    back.sort_by(|a, b| a.id.cmp(&b.id));
    let mut sent = events.clone();
    sent.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(back, sent, "Parquet: every value as written");
    assert_eq!(expected(&back), want);
}
