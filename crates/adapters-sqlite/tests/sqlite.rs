//! Integration tests on real SQLite files (a fresh temporary file per test), WAL mode.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cflogs_core::schema::Value;
use cflogs_core::testing::conformance::{self, AnalyticsProbe};
use cflogs_core::testing::samples::{self, audit_events};
use cflogs_core::{
    AnalyticsSink, Batch, Checkpoint, CheckpointStore, Dataset, Error, Event, EventId, Quarantined,
    Result, StreamId, Timestamp,
};
use cflogs_sqlite::{SqliteClient, SqliteConfig, SqlitePool};
use chrono::TimeZone;

struct TestFile {
    _dir: tempfile::TempDir,
    config: SqliteConfig,
}

fn test_file() -> TestFile {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = SqliteConfig::new(dir.path().join("cflogs.sqlite3"));
    TestFile { _dir: dir, config }
}

async fn open(file: &TestFile) -> SqliteClient {
    SqliteClient::open(&file.config)
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e:?}", file.config.path().display()))
}

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .unwrap()
        + chrono::Duration::nanoseconds(123_456_789)
}

struct Probe(SqlitePool);

#[async_trait]
impl AnalyticsProbe for Probe {
    async fn event_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT event_id FROM audit_logs WHERE stream = ? \
             UNION ALL SELECT event_id FROM raw_events WHERE stream = ?",
        )
        .bind(stream.as_str())
        .bind(stream.as_str())
        .fetch_all(&self.0)
        .await
        .map_err(|e| Error::fatal("probe", e))?;
        rows.into_iter().map(|(id,)| EventId::new(id)).collect()
    }

    async fn rows(
        &self,
        stream: &StreamId,
        schema: &cflogs_core::DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        use cflogs_core::ColumnType;
        if schema.columns().is_empty() {
            let ids = sqlx::query_as::<_, (String,)>(&format!(
                "SELECT event_id FROM \"{}\" WHERE stream = ?",
                schema.table_name()?
            ))
            .bind(stream.as_str())
            .fetch_all(&self.0)
            .await
            .map_err(|e| Error::fatal("probe", e))?;
            return ids
                .into_iter()
                .map(|(id,)| Ok((EventId::new(id)?, Vec::new())))
                .collect();
        }
        // SQLite has no booleans and keeps JSON as text: read them back as JSON here.
        let values: Vec<String> = schema
            .columns()
            .iter()
            .map(|c| {
                let q = format!("\"{}\"", c.name());
                match c.ty() {
                    ColumnType::Boolean => format!(
                        "CASE WHEN {q} IS NULL THEN NULL WHEN {q} THEN json('true') ELSE json('false') END"
                    ),
                    ColumnType::Json => format!("json({q})"),
                    _ => q,
                }
            })
            .collect();
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT event_id, json_array({}) FROM \"{}\" WHERE stream = ?",
            values.join(", "),
            schema.table_name()?
        ))
        .bind(stream.as_str())
        .fetch_all(&self.0)
        .await
        .map_err(|e| Error::fatal("probe", e))?;
        rows.into_iter()
            .map(|(id, row)| {
                let values = serde_json::from_str(&row).map_err(|e| Error::fatal("probe", e))?;
                Ok((EventId::new(id)?, values))
            })
            .collect()
    }

    async fn quarantine_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT quarantine_id FROM quarantine WHERE stream = ?")
                .bind(stream.as_str())
                .fetch_all(&self.0)
                .await
                .map_err(|e| Error::fatal("probe", e))?;
        rows.into_iter().map(|(id,)| EventId::new(id)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoint_store_conforms() {
    let file = test_file();
    let client = open(&file).await;
    conformance::checkpoint_store(&client.checkpoint_store(), "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_analytics_sink_conforms() {
    let file = test_file();
    let client = open(&file).await;
    conformance::analytics_sink(&client.sink(), &Probe(client.readers().clone()), "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_analytics_sink_conforms_for_every_builtin_schema() {
    let file = test_file();
    let client = open(&file).await;
    let probe = Probe(client.readers().clone());
    for schema in samples::builtin_schemas() {
        conformance::analytics_schema(&client.sink(), &probe, "conf", &schema).await;
    }
}

#[tokio::test]
async fn the_file_is_in_wal_mode_and_survives_a_reopen() {
    let file = test_file();
    let client = open(&file).await;
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(client.readers())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let stream = StreamId::new("reopen/a").unwrap();
    let cp = client
        .checkpoint_store()
        .acquire(&stream, t0())
        .await
        .unwrap();
    client.close().await;
    assert!(file.config.path().exists(), "a real file on disk");

    let again = open(&file).await;
    let store = again.checkpoint_store();
    assert_eq!(store.load(&stream).await.unwrap(), Some(cp.clone()));
    assert_eq!(
        store.acquire(&stream, t0()).await.unwrap().epoch,
        cp.epoch.next()
    );
}

/// Committers in this process (sharing the writer) and in a second client on the same file
/// (its own writer connection, as another process would have): one wins each seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_committers_on_one_stream_exactly_one_wins_each_seq() {
    let file = test_file();
    let first = open(&file).await.checkpoint_store();
    let second = open(&file).await.checkpoint_store();
    conformance::commit_race(&[&first, &second], &StreamId::new("race/a").unwrap(), 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_from_two_clients_take_distinct_epochs() {
    let file = test_file();
    let a = Arc::new(open(&file).await.checkpoint_store());
    let b = Arc::new(open(&file).await.checkpoint_store());
    let stream = StreamId::new("race/acquire").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let stream = stream.clone();
        tasks.spawn(async move { store.acquire(&stream, t0()).await.unwrap().epoch.0 });
    }
    let mut epochs = Vec::new();
    while let Some(e) = tasks.join_next().await {
        epochs.push(e.unwrap());
    }
    epochs.sort_unstable();
    assert_eq!(epochs, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn commit_rejects_a_successor_that_breaks_the_rules() {
    let file = test_file();
    let store = open(&file).await.checkpoint_store();
    let stream = StreamId::new("rules/a").unwrap();
    let cp = store.acquire(&stream, t0()).await.unwrap();
    let backwards = Checkpoint {
        watermark: cp.watermark - chrono::Duration::seconds(1),
        ..cp.clone()
    };
    assert!(matches!(
        store.commit(cp.guard(), &backwards).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(store.load(&stream).await.unwrap(), Some(cp));
}

fn batch(
    stream: &str,
    dataset: Dataset,
    events: Vec<Event>,
    quarantined: Vec<Quarantined>,
) -> Batch {
    samples::batch(
        &StreamId::new(stream).unwrap(),
        dataset,
        events,
        quarantined,
    )
}

#[tokio::test]
async fn values_are_kept_exactly_and_bad_addresses_are_null() {
    let file = test_file();
    let client = open(&file).await;
    let odd = |id: &str, n: i64, raw: &'static [u8], ip: &str| {
        Event::new(
            EventId::new(id).unwrap(),
            t0() + chrono::Duration::seconds(n),
            Bytes::from_static(raw),
        )
        .with_values(samples::values_of(
            &samples::audit_schema(),
            &[
                ("account_id", Value::Text("acc".into())),
                ("actor_email", Value::Text("nul\0in@example.com".into())),
                ("metadata", Value::Json(r#"{"k":"\u0000"}"#.into())),
            ]
            .into_iter()
            .chain(ip.parse().ok().map(|ip| ("ip_address", Value::Ip(ip))))
            .collect::<Vec<_>>(),
        ))
    };
    let mut events = audit_events("acc", 0, 10, t0(), chrono::Duration::milliseconds(1));
    events.push(odd(
        "nul",
        100,
        br#"{"id":"nul","note":"a\u0000b"}"#,
        "2001:DB8::7",
    ));
    events.push(odd("binary", 101, b"{\"id\":\"\xff\"}", "not-an-ip"));
    let weird = Bytes::from_static(b"\x00\xff{\"when\":\0}\n");
    let quarantined = vec![Quarantined::new(weird.clone(), "not JSON").with_time(t0())];
    let report = client
        .sink()
        .write(&batch("odd/a", Dataset::audit_logs(), events, quarantined))
        .await
        .unwrap();
    assert_eq!((report.inserted, report.quarantined), (12, 1));

    let pool = client.readers();
    let (raw, ip, email, ts): (Vec<u8>, Option<String>, String, String) = sqlx::query_as(
        "SELECT CAST(raw_event AS BLOB), ip_address, actor_email, \"timestamp\" FROM audit_logs WHERE event_id = 'nul'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(raw, br#"{"id":"nul","note":"a\u0000b"}"#);
    assert_eq!(ip.as_deref(), Some("2001:db8::7"));
    assert_eq!(email, "nul\0in@example.com");
    assert_eq!(ts, "2026-11-25T10:01:40.123456789Z", "to the nanosecond");

    let (raw, kind, ip): (Vec<u8>, String, Option<String>) = sqlx::query_as(
        "SELECT raw_event, typeof(raw_event), ip_address FROM audit_logs WHERE event_id = 'binary'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        raw, b"{\"id\":\"\xff\"}",
        "bytes that are not UTF-8 are kept as a BLOB"
    );
    assert_eq!(kind, "blob");
    assert_eq!(ip, None);

    let (raw,): (Vec<u8>,) = sqlx::query_as("SELECT raw FROM quarantine")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(raw, weird.to_vec());

    // The mapped JSON is queryable with SQLite's JSON functions.
    let (zones,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_logs WHERE json_extract(metadata, '$.zone_name') IS NOT NULL \
         AND json_extract(raw_event, '$.actor.email') = actor_email",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(zones, 10);
}

/// A column added to a dataset schema appears in the table the earlier schema made (the core's
/// suite), with its index.
#[tokio::test]
async fn a_column_added_to_a_schema_is_added_to_its_table() {
    let file = test_file();
    let client = open(&file).await;
    let probe = Probe(client.readers().clone());
    cflogs_core::testing::conformance::analytics_schema_change(&client.sink(), &probe, "change")
        .await;
    let (indexed,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'probes_latency_ms_idx'",
    )
    .fetch_one(client.readers())
    .await
    .unwrap();
    assert_eq!(indexed, 1, "the new column's index");
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = SqliteConfig::new(dir.path().join("missing-directory").join("cflogs.sqlite3"));
    let error = SqliteClient::open(&config).await.unwrap_err();
    let text = cflogs_core::error_chain(&error);
    assert!(matches!(error, Error::Fatal { .. }), "{text}");
    assert!(
        text.contains("CFLOGS_SQLITE_PATH") && text.contains("missing-directory"),
        "{text}"
    );
}
