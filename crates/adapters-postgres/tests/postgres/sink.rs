//! What the sink stores of values PostgreSQL refuses, other datasets, quarantined bytes, and
//! one event read by two streams.

use bytes::Bytes;
use cflogs_core::schema::Value;
use cflogs_core::testing::samples::{self, audit_event, audit_events};
use cflogs_core::{
    AnalyticsSink, Batch, Dataset, Event, EventId, Quarantined, StreamId, Timestamp,
};
use chrono::TimeZone;

use crate::common::TestDb;

fn t0() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .unwrap()
        + chrono::Duration::nanoseconds(123_456_789)
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

fn odd(id: &str, n: i64, raw: &[u8], ip: Option<&str>, metadata: Option<&str>) -> Event {
    Event::new(
        EventId::new(id).unwrap(),
        t0() + chrono::Duration::seconds(n),
        Bytes::copy_from_slice(raw),
    )
    .with_values(odd_values(ip, metadata))
}

/// Values a source could send: a NUL in text, an address (NULL when it is not one, as the
/// schema maps it), a metadata document PostgreSQL may refuse.
fn odd_values(ip: Option<&str>, metadata: Option<&str>) -> Vec<Option<Value>> {
    let mut named = vec![
        ("account_id", Value::Text("acc".into())),
        ("actor_email", Value::Text("nul\0in@example.com".into())),
    ];
    if let Some(ip) = ip.and_then(|ip| ip.trim().parse().ok()) {
        named.push(("ip_address", Value::Ip(ip)));
    }
    if let Some(m) = metadata {
        named.push(("metadata", Value::Json(m.to_owned())));
    }
    samples::values_of(&samples::audit_schema(), &named)
}

async fn stored(
    pool: &sqlx::PgPool,
    id: &str,
) -> (String, Option<String>, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT raw_event::text, ip_address::text, metadata::text, actor_email FROM audit_logs WHERE event_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("event {id} must be stored: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_escapes_bad_json_and_bad_addresses_keep_the_event() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let mut events = audit_events("acc", 0, 20, t0(), chrono::Duration::milliseconds(10));
    events.extend([
        odd(
            "nul",
            100,
            br#"{"id":"nul","note":"a\u0000b"}"#,
            Some("198.51.100.1"),
            Some(r#"{"k":"\u0000"}"#),
        ),
        odd(
            "surrogate",
            101,
            br#"{"id":"surrogate","note":"\ud800!"}"#,
            None,
            None,
        ),
        odd(
            "not-json",
            102,
            b"this is not json\twith a tab",
            Some("not-an-ip"),
            Some("{broken"),
        ),
        odd("not-utf8", 103, b"{\"id\":\"\xff\"}", Some("10.1"), None),
        odd("v6", 104, br#"{"id":"v6"}"#, Some("2001:DB8::7"), None),
    ]);
    let report = client
        .sink()
        .write(&batch("odd/a", Dataset::audit_logs(), events, Vec::new()))
        .await
        .expect("values PostgreSQL refuses must not fail the batch");
    assert_eq!(report.inserted, 25);

    let pool = client.pool();
    let (raw, ip, metadata, email) = stored(pool, "nul").await;
    assert_eq!(raw, r#"{"id": "nul", "note": "a�b"}"#);
    assert_eq!(ip.as_deref(), Some("198.51.100.1/32"));
    assert_eq!(metadata.as_deref(), Some(r#"{"k": "�"}"#));
    assert_eq!(email.as_deref(), Some("nul\u{fffd}in@example.com"));

    let (raw, ..) = stored(pool, "surrogate").await;
    assert_eq!(raw, r#"{"id": "surrogate", "note": "�!"}"#);

    let (raw, ip, metadata, _) = stored(pool, "not-json").await;
    assert_eq!(
        raw, r#""this is not json\twith a tab""#,
        "kept as one JSON string"
    );
    assert_eq!(ip, None, "an address that is not one is NULL");
    assert_eq!(metadata.as_deref(), Some(r#""{broken""#));

    let (raw, ip, ..) = stored(pool, "not-utf8").await;
    assert_eq!(raw, "\"{\\\"id\\\":\\\"\u{fffd}\\\"}\"");
    assert_eq!(ip, None);

    let (_, ip, ..) = stored(pool, "v6").await;
    assert_eq!(ip.as_deref(), Some("2001:db8::7/128"));

    // Queries on the mapped JSON work for the ordinary events.
    let (zones,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_logs WHERE stream = 'odd/a' AND metadata ? 'zone_name' \
         AND raw_event->'actor'->>'email' = actor_email",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(zones, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_postgresql_still_refuses_falls_back_per_row() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let mut events = audit_events("acc", 0, 10, t0(), chrono::Duration::milliseconds(10));
    // Valid JSON, but beyond what PostgreSQL's numeric can hold.
    events.push(odd(
        "tiny",
        50,
        br#"{"id":"tiny","n":1e-20000}"#,
        Some("198.51.100.9"),
        None,
    ));
    let sink = client.sink();
    let b = batch("fallback/a", Dataset::audit_logs(), events, Vec::new());
    let report = sink
        .write(&b)
        .await
        .expect("the fallback path stores the batch");
    assert_eq!(report.inserted, 11);
    let (raw, ip, ..) = stored(client.pool(), "tiny").await;
    assert_eq!(raw, r#""{\"id\":\"tiny\",\"n\":1e-20000}""#);
    assert_eq!(ip.as_deref(), Some("198.51.100.9/32"));
    let again = sink.write(&b).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_datasets_go_to_tables_derived_from_their_schemas_and_quarantine_keeps_exact_bytes() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let http = Dataset::new("http_requests").unwrap();
    let schema = cflogs_core::DatasetSchema::builtin(&http);
    // Their columns are checked by the per-schema conformance suite; here, the quarantine.
    let events = samples::schema_events(&schema, 0, 20, t0());
    let weird = Bytes::from_static(b"\x00\xff{\"when\":\0}\n\\");
    let quarantined = vec![
        Quarantined::new(weird.clone(), "not JSON\0 at all").with_time(t0()),
        Quarantined::new(Bytes::from_static(b"{}"), "missing field 'id'"),
    ];
    let sink = client.sink();
    let report = sink
        .write(&batch(
            "logpull/zone/z",
            http.clone(),
            events,
            quarantined.clone(),
        ))
        .await
        .unwrap();
    assert_eq!((report.inserted, report.quarantined), (20, 2));
    let (rows,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM http_requests WHERE stream = 'logpull/zone/z'")
            .fetch_one(client.pool())
            .await
            .unwrap();
    assert_eq!(
        rows, 20,
        "in the table derived from the http_requests schema"
    );
    let (raw, reason, at): (Vec<u8>, String, Option<Timestamp>) =
        sqlx::query_as("SELECT raw, reason, occurred_at FROM quarantine WHERE quarantine_id = $1")
            .bind(quarantined[0].id.as_str())
            .fetch_one(client.pool())
            .await
            .unwrap();
    assert_eq!(raw, weird.to_vec(), "quarantined bytes are kept exactly");
    assert_eq!(reason, "not JSON\u{fffd} at all");
    assert_eq!(
        at,
        Some(t0() - chrono::Duration::nanoseconds(789)),
        "microseconds"
    );
    let again = sink
        .write(&batch("logpull/zone/z", http, Vec::new(), quarantined))
        .await
        .unwrap();
    assert_eq!(again.quarantined, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_read_by_two_streams_is_a_row_per_stream() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let sink = client.sink();
    let event = audit_event("acc", 7, t0());
    for stream in ["audit-v1/account/acc", "audit-v2/account/acc"] {
        let report = sink
            .write(&batch(
                stream,
                Dataset::audit_logs(),
                vec![event.clone()],
                Vec::new(),
            ))
            .await
            .unwrap();
        assert_eq!(
            report.inserted, 1,
            "the contract is idempotent per (stream, event id)"
        );
    }
    // The documented way to count each event once across streams.
    let (distinct,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT DISTINCT ON (account_id, event_id) event_id FROM audit_logs \
         ORDER BY account_id, event_id, stream) AS once",
    )
    .fetch_one(client.pool())
    .await
    .unwrap();
    assert_eq!(distinct, 1);
    let (ts,): (Timestamp,) = sqlx::query_as("SELECT \"timestamp\" FROM audit_logs LIMIT 1")
        .fetch_one(client.pool())
        .await
        .unwrap();
    assert_eq!(
        ts,
        t0() - chrono::Duration::nanoseconds(789),
        "stored to the microsecond"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// A batch written in 3 slices (the cutting is unit-tested in `sink::tests`): every event lands
/// once, also when one slice holds a value PostgreSQL refuses, and a rewrite is a no-op.
async fn a_sliced_batch_with_a_refused_value_in_one_slice_lands_whole_and_once() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let sink = client.sink().with_parallelism(3);
    let mut events = audit_events("acc", 0, 4_500, t0(), chrono::Duration::milliseconds(1));
    // The last slice holds a value PostgreSQL refuses: it takes the fallback path.
    events.push(odd("tiny-last", 3_600, br#"{"n":1e-20000}"#, None, None));
    let quarantined = vec![Quarantined::new(
        Bytes::from_static(b"{}"),
        "missing field 'id'",
    )];
    let b = batch("slices/a", Dataset::audit_logs(), events, quarantined);
    let report = sink.write(&b).await.unwrap();
    assert_eq!(
        (report.inserted, report.duplicates, report.quarantined),
        (4_501, 0, 1)
    );
    let (rows,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM audit_logs WHERE stream = 'slices/a'")
            .fetch_one(client.pool())
            .await
            .unwrap();
    assert_eq!(rows, 4_501);
    let (raw, ..) = stored(client.pool(), "tiny-last").await;
    assert_eq!(raw, r#""{\"n\":1e-20000}""#);
    let again = sink.write(&b).await.unwrap();
    assert_eq!(
        (again.inserted, again.duplicates, again.quarantined),
        (0, 4_501, 0)
    );
}

/// The audit table migration 0001 created is the one the sink derives from the `audit_logs`
/// schema: preparing it on an existing database adds no column and no index, and migration
/// 0002 gave the old indexes the derived names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrated_audit_table_is_the_one_the_schema_derives() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let shape = |pool: sqlx::PgPool| async move {
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_name = 'audit_logs' AND table_schema = current_schema() ORDER BY ordinal_position",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT indexname::text, indexdef::text FROM pg_indexes \
             WHERE tablename = 'audit_logs' AND schemaname = current_schema() ORDER BY indexname",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        (columns, indexes)
    };
    let migrated = shape(client.pool().clone()).await;
    let names: Vec<&str> = migrated.1.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "audit_logs_action_type_idx",
            "audit_logs_actor_email_idx",
            "audit_logs_ip_address_idx",
            "audit_logs_pkey",
            "audit_logs_resource_id_idx",
        ]
    );
    client
        .sink()
        .prepare(&samples::audit_schema())
        .await
        .unwrap();
    assert_eq!(
        shape(client.pool().clone()).await,
        migrated,
        "preparing the audit schema changes nothing in a migrated database"
    );
}

/// A column added to a dataset schema appears in the table the earlier schema made (the core's
/// suite), with its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_to_a_schema_is_added_to_its_table() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let probe = crate::common::Probe(client.pool().clone());
    cflogs_core::testing::conformance::analytics_schema_change(&client.sink(), &probe, "change")
        .await;
    let (indexed,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM pg_indexes WHERE indexname = 'probes_latency_ms_idx'")
            .fetch_one(client.pool())
            .await
            .unwrap();
    assert_eq!(indexed, 1, "the new column's index");
}

/// A write its caller gives up on (a timeout, a shutdown, a sibling's failure) leaves no
/// half-read connection in the pool: with one connection, every cut-short write is followed by
/// a checkpoint acquire and a count on that same connection, and each gets its own answer.
/// (A COPY dropped half-way used to leave the server's replies to it unread, and the next
/// query on the connection read them: `RowNotFound` from an `INSERT … RETURNING`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_short_by_its_caller_leaves_the_pool_usable() {
    use cflogs_core::CheckpointStore;
    use std::time::Duration;

    let db = TestDb::new().await;
    let config = db.config.clone().with_pool_size(1).unwrap();
    let client = cflogs_postgres::PostgresClient::connect(&config)
        .await
        .expect("connect");
    let sink = client.sink();
    let store = client.checkpoint_store();
    let events = audit_events("acc", 0, 20_000, t0(), chrono::Duration::milliseconds(1));
    let b = batch("cut/a", Dataset::audit_logs(), events, vec![]);
    sink.prepare(&b.schema).await.unwrap();
    let stream = StreamId::new("cut/probe").unwrap();

    let mut cut_short = 0;
    for step in 0..40u64 {
        // From 0.5 ms to 20 ms: most attempts end inside the COPY, some before or after it.
        let budget = Duration::from_micros(500 + step * 500);
        if tokio::time::timeout(budget, sink.write(&b)).await.is_err() {
            cut_short += 1;
        }
        let cp = store
            .acquire(&stream, t0())
            .await
            .unwrap_or_else(|e| panic!("acquire after a write cut short at {budget:?}: {e:?}"));
        assert_eq!(cp.epoch.0, step + 1);
        let (rows,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM audit_logs WHERE stream = 'cut/a'")
                .fetch_one(client.pool())
                .await
                .unwrap_or_else(|e| panic!("count after a write cut short at {budget:?}: {e:?}"));
        assert!(
            rows == 0 || rows == 20_000,
            "a write is whole or absent: {rows}"
        );
    }
    assert!(cut_short > 0, "no write was cut short");
    let report = sink.write(&b).await.unwrap();
    assert_eq!(report.inserted + report.duplicates, 20_000);
}
