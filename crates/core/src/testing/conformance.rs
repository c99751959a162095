//! One conformance suite per port. Each suite takes an adapter (and, for sinks, a probe that
//! reads back what the adapter stored) and panics with a message naming the broken contract
//! clause. The in-memory adapters run them in this crate's tests; every real adapter runs them
//! against a real database, bucket or API simulator.
//!
//! Suites use stream ids under the given `prefix`, so one database or bucket can host several
//! runs.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{TimeZone, Utc};

use super::samples::{audit_events, batch_of, schema_events};
use crate::cursors::WindowSource;
use crate::domain::schema::{DatasetSchema, Value};
use crate::domain::{
    Batch, BatchLimits, Checkpoint, Cursor, Dataset, Digest, Epoch, EventId, FetchRequest,
    Manifest, ManifestObject, Quarantined, RecentId, StreamId, Timestamp, Window,
};
use crate::error::{Error, Result};
use crate::ports::{AnalyticsSink, ArchiveSink, CheckpointStore, StageRequest};

fn stream(prefix: &str, name: &str) -> StreamId {
    StreamId::new(format!("{prefix}/{name}"))
        .unwrap_or_else(|e| panic!("conformance prefix {prefix:?} makes a bad stream id: {e}"))
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, nanos: u32) -> Timestamp {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .unwrap_or_else(|| panic!("bad test time"))
        + chrono::Duration::nanoseconds(i64::from(nanos))
}

/// A manifest for tests of stores: plausible, not backed by objects.
pub fn sample_manifest(stream: &StreamId, seq: u64, epoch: Epoch, prev: Digest) -> Manifest {
    let t = at(2026, 11, 25, 10, 0, 0, 123_456_789);
    Manifest {
        version: Manifest::VERSION,
        stream: stream.clone(),
        dataset: Dataset::audit_logs(),
        seq,
        epoch,
        window: Window::new(t, t + chrono::Duration::minutes(5)).unwrap_or_else(|e| panic!("{e}")),
        events: 2,
        quarantined: 0,
        objects: vec![ManifestObject {
            final_key: format!(
                "audit_logs/stream={}/year=2026/part-{}-{seq}.parquet",
                stream.key_segment(),
                stream.key_segment()
            ),
            staged_key: format!(
                "_staging/{}/{seq}-e{}/0.parquet",
                stream.key_segment(),
                epoch
            ),
            sha256: Digest::of(b"object"),
            rows: 2,
            bytes: 6,
        }],
        prev,
        created_at: t,
        resume: None,
    }
}

/// The batch commit that follows `current`: `seq + 1` with its manifest pending and chained,
/// the watermark `step` later.
pub fn successor(current: &Checkpoint, step: chrono::Duration) -> Checkpoint {
    let m = sample_manifest(
        &current.stream,
        current.seq + 1,
        current.epoch,
        current.chain_head,
    );
    Checkpoint {
        seq: current.seq + 1,
        watermark: current.watermark + step,
        chain_head: m.hash(),
        pending: Some(m),
        ..current.clone()
    }
}

/// `rounds` rounds of 8 concurrent batch commits with one guard on `stream`, sent through
/// `stores` in turn (one store over a pool, or several clients of one database): in each round
/// exactly one MUST win, the others MUST get `Conflict`, and every store MUST then load the
/// winner.
pub async fn commit_race(stores: &[&dyn CheckpointStore], stream: &StreamId, rounds: u64) {
    assert!(!stores.is_empty(), "at least one store");
    let mut current = stores[0]
        .acquire(stream, at(2026, 11, 25, 9, 0, 0, 123_456_789))
        .await
        .expect("acquire");
    for round in 0..rounds {
        let candidates: Vec<Checkpoint> = (0..8)
            .map(|i| successor(&current, chrono::Duration::nanoseconds(i + 1)))
            .collect();
        let results = futures::future::join_all(
            candidates
                .iter()
                .enumerate()
                .map(|(i, c)| stores[i % stores.len()].commit(current.guard(), c)),
        )
        .await;
        let mut winners = Vec::new();
        for (candidate, result) in candidates.iter().zip(&results) {
            match result {
                Ok(()) => winners.push(candidate),
                Err(e) => assert!(
                    e.is_conflict(),
                    "round {round}: a losing commit MUST be a Conflict, got {e:?}"
                ),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of 8 committers MUST win"
        );
        for store in stores {
            let stored = store.load(stream).await.expect("load").expect("stored");
            assert_eq!(
                &stored, winners[0],
                "round {round}: every store sees the winner"
            );
            assert_eq!(stored.seq, round + 1);
        }
        current = winners[0].clone();
    }
}

fn expect_conflict<T: std::fmt::Debug>(result: Result<T>, clause: &str) {
    match result {
        Err(Error::Conflict { .. }) => {}
        other => panic!("CheckpointStore contract: {clause}: expected Conflict, got {other:?}"),
    }
}

/// The [`CheckpointStore`] contract: leases fence, commits are compare-and-set on
/// `(seq, epoch)`, loads return exactly what was stored, streams are independent, and of
/// concurrent commits with one guard exactly one wins.
pub async fn checkpoint_store(store: &dyn CheckpointStore, prefix: &str) {
    let a = stream(prefix, "cp-a");
    let b = stream(prefix, "cp-b");
    let initial = at(2026, 11, 25, 9, 0, 0, 1);

    assert_eq!(
        store.load(&a).await.expect("load of an unknown stream"),
        None,
        "load MUST return None for a stream never acquired"
    );
    expect_conflict(
        store
            .commit(
                Checkpoint::genesis(a.clone(), initial).guard(),
                &Checkpoint::genesis(a.clone(), initial),
            )
            .await,
        "commit on a stream never acquired",
    );

    let first = store.acquire(&a, initial).await.expect("acquire");
    assert_eq!(first.seq, 0, "genesis seq");
    assert_eq!(
        first.watermark, initial,
        "genesis watermark MUST be `initial`, to the nanosecond"
    );
    assert_eq!(first.chain_head, Digest::GENESIS, "genesis chain head");
    assert!(
        first.pending.is_none() && first.cursor.is_start(),
        "genesis is empty"
    );
    assert!(
        first.epoch > Epoch::NONE,
        "an acquired epoch is above Epoch::NONE"
    );
    assert_eq!(
        store.load(&a).await.expect("load"),
        Some(first.clone()),
        "load after acquire"
    );

    let second = store
        .acquire(&a, initial + chrono::Duration::days(1))
        .await
        .expect("second acquire");
    assert!(
        second.epoch > first.epoch,
        "acquire MUST return a strictly greater epoch"
    );
    assert_eq!(
        second.watermark, initial,
        "acquire MUST NOT reset an existing checkpoint"
    );

    // The fenced holder cannot commit.
    let mut stale_next = first.clone();
    stale_next.watermark = initial + chrono::Duration::minutes(1);
    expect_conflict(
        store.commit(first.guard(), &stale_next).await,
        "commit with a fenced epoch",
    );

    // The same epoch with another lease token: an instance that held this epoch before the
    // store lost the row (epochs count from 1 again) is fenced too.
    assert_ne!(
        first.lease, second.lease,
        "every acquire MUST draw a new lease token"
    );
    assert_eq!(
        store.load(&a).await.expect("load").map(|c| c.lease),
        Some(second.lease),
        "the lease token MUST be stored"
    );
    let impostor = Checkpoint {
        lease: second.lease ^ 1,
        ..second.clone()
    };
    let mut impostor_next = impostor.clone();
    impostor_next.watermark = initial + chrono::Duration::minutes(1);
    expect_conflict(
        store.commit(impostor.guard(), &impostor_next).await,
        "commit with the holder's epoch but another lease token",
    );

    // A batch commit: every field round-trips exactly.
    let manifest = sample_manifest(&a, 1, second.epoch, second.chain_head);
    let next = Checkpoint {
        seq: 1,
        watermark: at(2026, 11, 25, 10, 5, 0, 987_654_321),
        cursor: crate::domain::overlap_cursor(crate::domain::OverlapCursor {
            recent: vec![
                RecentId {
                    at: at(2026, 11, 25, 10, 4, 59, 999_999_999),
                    id: EventId::new("ev-1").expect("id"),
                },
                RecentId {
                    at: at(2026, 11, 25, 10, 5, 0, 1),
                    id: EventId::content_hash(b"malformed"),
                },
            ],
            complete_before: Some(at(2026, 11, 25, 10, 4, 0, 123_456_789)),
        }),
        chain_head: manifest.hash(),
        pending: Some(manifest.clone()),
        ..second.clone()
    };
    store
        .commit(second.guard(), &next)
        .await
        .expect("commit with the current guard");
    let loaded = store
        .load(&a)
        .await
        .expect("load")
        .expect("checkpoint exists");
    assert_eq!(loaded, next, "load MUST return exactly what commit stored");
    assert_eq!(
        loaded.pending.as_ref().map(Manifest::hash),
        Some(manifest.hash()),
        "the pending manifest MUST hash the same after a round trip"
    );

    // Replaying the same guard fails: seq moved.
    expect_conflict(
        store.commit(second.guard(), &next).await,
        "commit with a stale seq",
    );

    // Clearing pending and a watermark-only commit keep seq.
    let cleared = Checkpoint {
        pending: None,
        ..next.clone()
    };
    store
        .commit(next.guard(), &cleared)
        .await
        .expect("clear pending");
    // Any kind of cursor, whatever its state holds, comes back intact.
    let advanced = Checkpoint {
        watermark: cleared.watermark + chrono::Duration::minutes(3),
        cursor: Cursor::encode(
            "conformance",
            7,
            &serde_json::json!({
                "done": {"logs/20261125/a.log.gz": "2026-11-25T10:05:00.000000001Z", "b": "x"},
                "partial": {"key": "logs/\u{e9}/\"q\"", "line": 9_007_199_254_740_993u64},
                "empty": [],
                "flag": true,
            }),
        )
        .expect("cursor"),
        ..cleared.clone()
    };
    store
        .commit(cleared.guard(), &advanced)
        .await
        .expect("watermark-only commit");
    assert_eq!(store.load(&a).await.expect("load"), Some(advanced.clone()));

    // Streams are independent.
    let other = store.acquire(&b, initial).await.expect("acquire b");
    assert_eq!(other.seq, 0, "a new stream starts at seq 0");
    assert_eq!(
        store.load(&a).await.expect("load"),
        Some(advanced.clone()),
        "b left a alone"
    );

    // Concurrent commits with one guard: exactly one wins.
    let candidates: Vec<Checkpoint> = (1..=8)
        .map(|i| Checkpoint {
            watermark: advanced.watermark + chrono::Duration::seconds(i),
            ..advanced.clone()
        })
        .collect();
    let results =
        futures::future::join_all(candidates.iter().map(|c| store.commit(advanced.guard(), c)))
            .await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    // Watermark-only commits keep (seq, epoch), so several may apply one after the other; a
    // batch commit moves seq and must be exclusive.
    assert!(
        wins >= 1,
        "one of the concurrent watermark commits MUST win"
    );
    let current = store.load(&a).await.expect("load").expect("exists");
    let batch_candidates: Vec<Checkpoint> = (1..=8)
        .map(|i| successor(&current, chrono::Duration::seconds(i)))
        .collect();
    let results = futures::future::join_all(
        batch_candidates
            .iter()
            .map(|c| store.commit(current.guard(), c)),
    )
    .await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 8 concurrent batch commits MUST win: {results:?}"
    );
    for r in &results {
        if let Err(e) = r {
            assert!(
                e.is_conflict(),
                "a losing commit MUST be a Conflict, got {e:?}"
            );
        }
    }
    let stored = store.load(&a).await.expect("load").expect("exists");
    assert_eq!(
        stored, batch_candidates[winners[0]],
        "the winner is what is stored"
    );

    // A restore from the archive: a fresh stream jumps to the archive's newest batch, with an
    // earlier watermark than its configured start, and is stored exactly.
    let c = stream(prefix, "cp-restore");
    let fresh = store.acquire(&c, initial).await.expect("acquire");
    let mut newest = sample_manifest(&c, 41, Epoch(3), Digest::of(b"batch 40"));
    newest.resume = Some(crate::Position::start(at(
        2026,
        11,
        24,
        23,
        59,
        59,
        999_999_999,
    )));
    let restored = fresh.restored_from(&newest).expect("restorable");
    store
        .commit(fresh.guard(), &restored)
        .await
        .expect("a restore commit MUST be accepted");
    assert_eq!(
        store.load(&c).await.expect("load"),
        Some(restored.clone()),
        "the restored checkpoint, pending manifest and position included"
    );

    checkpoint_leases(store, prefix).await;
}

/// The lease clauses of the [`CheckpointStore`] contract: a live lease of another holder is
/// refused unless taken over, the same holder claims again, renewals and releases act only for
/// the current token, and an expired lease is free (about 2 s of waiting).
async fn checkpoint_leases(store: &dyn CheckpointStore, prefix: &str) {
    use crate::ports::Claim;
    let s = stream(prefix, "cp-lease");
    let initial = at(2026, 11, 25, 9, 0, 0, 0);
    let claim = |holder: &str, ttl_ms: u64, take_over: bool| Claim {
        holder: holder.to_owned(),
        ttl: std::time::Duration::from_millis(ttl_ms),
        take_over,
    };
    let alpha = store
        .claim(&s, initial, &claim("alpha", 60_000, false))
        .await
        .expect("a first claim");
    match store
        .claim(&s, initial, &claim("beta", 60_000, false))
        .await
    {
        Err(Error::Conflict { detail, .. }) => assert!(
            detail.contains("alpha"),
            "CheckpointStore contract: a refused claim MUST name the holder: {detail}"
        ),
        other => panic!(
            "CheckpointStore contract: a claim of a live lease: expected Conflict, got {other:?}"
        ),
    }
    assert_eq!(
        store.load(&s).await.expect("load").map(|c| c.epoch),
        Some(alpha.epoch),
        "a refused claim MUST change nothing"
    );
    let alpha = store
        .claim(&s, initial, &claim("alpha", 60_000, false))
        .await
        .expect("the holder claims its own lease again (a restart)");
    let beta = store
        .claim(&s, initial, &claim("beta", 60_000, true))
        .await
        .expect("a take-over");
    assert!(beta.epoch > alpha.epoch, "a take-over is a new epoch");
    let mut moved = alpha.clone();
    moved.watermark = initial + chrono::Duration::minutes(1);
    expect_conflict(
        store.commit(alpha.guard(), &moved).await,
        "commit of the holder taken over",
    );
    expect_conflict(
        store
            .renew(&s, alpha.lease, std::time::Duration::from_secs(60))
            .await,
        "renewal by the holder taken over",
    );
    store
        .release(&s, alpha.lease)
        .await
        .expect("a release with an old token");
    expect_conflict(
        store
            .claim(&s, initial, &claim("alpha", 60_000, false))
            .await,
        "a release with an old token MUST NOT free the lease",
    );
    store
        .renew(&s, beta.lease, std::time::Duration::from_secs(60))
        .await
        .expect("renewal by the holder");
    store.release(&s, beta.lease).await.expect("release");
    let alpha = store
        .claim(&s, initial, &claim("alpha", 1_000, false))
        .await
        .expect("a released lease is free");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    store
        .renew(&s, alpha.lease, std::time::Duration::from_millis(1_000))
        .await
        .expect("renewal");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    expect_conflict(
        store
            .claim(&s, initial, &claim("beta", 60_000, false))
            .await,
        "a claim of a renewed lease",
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let beta = store
        .claim(&s, initial, &claim("beta", 60_000, false))
        .await
        .expect("an expired lease is free");
    assert_eq!(beta.seq, alpha.seq, "a claim MUST NOT reset the checkpoint");
}

/// Reads back what an [`AnalyticsSink`] stored, for [`analytics_sink`].
#[async_trait]
pub trait AnalyticsProbe: Send + Sync {
    /// Ids of the events stored for `stream`, one entry per stored row.
    async fn event_ids(&self, stream: &StreamId) -> Result<Vec<EventId>>;
    /// Ids of the quarantined records stored for `stream`, one entry per stored row.
    async fn quarantine_ids(&self, stream: &StreamId) -> Result<Vec<EventId>>;
    /// The events stored for `stream` in `schema`'s table, one entry per stored row: the id and
    /// the schema's columns in order, each in [`Value::to_json`]'s form (`null` for NULL).
    async fn rows(
        &self,
        stream: &StreamId,
        schema: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>>;
}

fn batch(stream: &StreamId, events: Vec<crate::Event>, quarantined: Vec<Quarantined>) -> Batch {
    super::samples::batch(stream, Dataset::audit_logs(), events, quarantined)
}

fn ids_of(events: &[crate::Event]) -> Vec<EventId> {
    let mut ids: Vec<EventId> = events.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    ids
}

async fn sorted(ids: Result<Vec<EventId>>) -> Vec<EventId> {
    let mut ids = ids.expect("probe read");
    ids.sort();
    ids
}

/// The [`AnalyticsSink`] contract: every event and quarantined record stored once per stream,
/// however often and in whatever overlap it is written.
pub async fn analytics_sink(sink: &dyn AnalyticsSink, probe: &dyn AnalyticsProbe, prefix: &str) {
    let a = stream(prefix, "an-a");
    let b = stream(prefix, "an-b");
    let start = at(2026, 11, 25, 10, 0, 0, 500_000_000);
    let events = audit_events("acc", 0, 300, start, chrono::Duration::milliseconds(250));
    let malformed = vec![
        Quarantined::new(
            Bytes::from_static(b"{\"when\":\"yesterday\"}"),
            "unparsable time",
        ),
        Quarantined::new(Bytes::from_static(b"not json at all"), "not JSON"),
    ];

    let first = batch(&a, events[..200].to_vec(), malformed.clone());
    let report = sink.write(&first).await.expect("first write");
    assert_eq!(report.inserted, 200, "a fresh batch inserts every event");
    assert_eq!(
        report.quarantined, 2,
        "a fresh batch stores every quarantined record"
    );
    assert_eq!(
        sorted(probe.event_ids(&a).await).await,
        ids_of(&events[..200])
    );

    let again = sink.write(&first).await.expect("repeated write");
    assert_eq!(again.inserted, 0, "a repeated batch MUST insert nothing");
    assert_eq!(
        again.quarantined, 0,
        "a repeated batch MUST store no quarantined record again"
    );

    let overlap = batch(&a, events[150..].to_vec(), malformed[..1].to_vec());
    let report = sink.write(&overlap).await.expect("overlapping write");
    assert_eq!(
        report.inserted, 100,
        "an overlapping batch inserts only the new events"
    );
    assert_eq!(
        sorted(probe.event_ids(&a).await).await,
        ids_of(&events),
        "each event exactly once"
    );
    let mut q: Vec<EventId> = malformed.iter().map(|q| q.id.clone()).collect();
    q.sort();
    assert_eq!(
        sorted(probe.quarantine_ids(&a).await).await,
        q,
        "each quarantined record once"
    );

    // The same ids in another stream are other rows.
    let report = sink
        .write(&batch(&b, events[..10].to_vec(), Vec::new()))
        .await
        .expect("write to stream b");
    assert_eq!(report.inserted, 10, "ids are per stream");
    assert_eq!(
        sorted(probe.event_ids(&b).await).await,
        ids_of(&events[..10])
    );
    assert_eq!(
        probe.event_ids(&a).await.expect("probe").len(),
        300,
        "stream a unchanged"
    );

    // Events without mapped columns, and an empty batch.
    let bare: Vec<crate::Event> = (0..3)
        .map(|i| {
            crate::Event::new(
                EventId::new(format!("bare-{i}")).expect("id"),
                start + chrono::Duration::seconds(i),
                Bytes::from(format!("{{\"id\":\"bare-{i}\"}}")),
            )
        })
        .collect();
    sink.write(&batch(&b, bare, Vec::new()))
        .await
        .expect("events without mapped columns");
    assert_eq!(probe.event_ids(&b).await.expect("probe").len(), 13);
    let empty = sink
        .write(&batch(&b, Vec::new(), Vec::new()))
        .await
        .expect("empty batch");
    assert_eq!(empty.inserted, 0);
}

/// Whether a value read back is the value written, at what every sink keeps: timestamps to the
/// microsecond, JSON documents as documents (key order and spacing are the store's).
fn same_value(written: Option<&Value>, read: Option<&Value>) -> bool {
    match (written, read) {
        (Some(Value::Timestamp(a)), Some(Value::Timestamp(b))) => {
            a.timestamp_micros() == b.timestamp_micros()
        }
        (Some(Value::Json(a)), Some(Value::Json(b))) => {
            serde_json::from_str::<serde_json::Value>(a).ok()
                == serde_json::from_str::<serde_json::Value>(b).ok()
        }
        (Some(Value::Float(a)), Some(Value::Float(b))) => a.to_bits() == b.to_bits(),
        (a, b) => a == b,
    }
}

/// Checks that `rows` (read back from `what`) hold exactly `events`, column by column.
fn check_rows(
    what: &str,
    schema: &DatasetSchema,
    events: &[crate::Event],
    mut rows: Vec<(EventId, Vec<serde_json::Value>)>,
) {
    let dataset = schema.dataset();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut events: Vec<&crate::Event> = events.iter().collect();
    events.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        rows.iter().map(|r| &r.0).collect::<Vec<_>>(),
        events.iter().map(|e| &e.id).collect::<Vec<_>>(),
        "{what} {dataset}: each event exactly once"
    );
    let columns = schema.columns();
    for (event, (id, stored)) in events.iter().zip(&rows) {
        assert_eq!(
            stored.len(),
            columns.len(),
            "{what} {dataset}: one value per column"
        );
        for (i, column) in columns.iter().enumerate() {
            let read = Value::from_json(column.ty(), &stored[i]);
            assert!(
                same_value(event.value(i), read.as_ref()),
                "{what} {dataset}.{} of {id}: wrote {:?}, read back {read:?} (stored as {})",
                column.name(),
                event.value(i),
                stored[i]
            );
        }
    }
    // The comparison above means something only if the events hold values and NULLs (except
    // in columns every event has: from the context, the key, the id or the time).
    let always: Vec<&crate::domain::schema::JsonPath> = match schema.id_rule() {
        crate::domain::schema::IdRule::Field(paths) => paths.iter().collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .chain(schema.time().0)
    .collect();
    for (i, column) in columns.iter().enumerate() {
        let set = events.iter().filter(|e| e.value(i).is_some()).count();
        assert!(set > 0, "{dataset}.{}: the sample sets it", column.name());
        let required = column.context_key().is_some()
            || column.is_key()
            || column.paths().first().is_some_and(|p| always.contains(&p));
        if !required {
            assert!(
                set < events.len(),
                "{dataset}.{}: the sample leaves it NULL somewhere",
                column.name()
            );
        }
    }
}

/// The stream, the 120 sample events and their batch of the per-schema suites.
fn schema_batch(
    prefix: &str,
    schema: &std::sync::Arc<DatasetSchema>,
) -> (StreamId, Vec<crate::Event>, Batch) {
    let s = stream(prefix, &format!("sc-{}", schema.dataset()));
    let events = schema_events(schema, 0, 120, at(2026, 11, 25, 10, 0, 0, 0));
    let b = batch_of(&s, schema.clone(), events.clone(), Vec::new());
    (s, events, b)
}

/// The [`AnalyticsSink`] contract for events of `schema`: a batch of its sample events
/// ([`schema_events`]) is stored once, however often it is written, each column's value
/// read back as written (timestamps to the microsecond), NULL where the event has none. Sinks
/// run it for every built-in schema and for schemas defined by their tests.
pub async fn analytics_schema(
    sink: &dyn AnalyticsSink,
    probe: &dyn AnalyticsProbe,
    prefix: &str,
    schema: &std::sync::Arc<DatasetSchema>,
) {
    let dataset = schema.dataset();
    let (s, events, b) = schema_batch(prefix, schema);
    let report = sink.write(&b).await.expect("write of schema sample events");
    assert_eq!(
        report.inserted, 120,
        "{dataset}: a fresh batch inserts every event"
    );
    let again = sink.write(&b).await.expect("repeated write");
    assert_eq!(
        again.inserted, 0,
        "{dataset}: a repeated batch MUST insert nothing"
    );
    let rows = probe.rows(&s, schema).await.expect("probe read");
    check_rows("analytics", schema, &events, rows);
}

/// The first and second version of the dataset `probes` of [`analytics_schema_change`]: the
/// second adds the indexed integer column `latency_ms`.
pub fn changing_schemas() -> (std::sync::Arc<DatasetSchema>, std::sync::Arc<DatasetSchema>) {
    use crate::domain::schema::{ColumnType, TimeFormat};
    let v1 = || {
        DatasetSchema::builder(
            Dataset::new("probes").unwrap_or_else(|e| unreachable!("{e}")),
            &["at"],
            TimeFormat::Any,
        )
        .id_field(&["id"])
        .column("host", ColumnType::Text, &["host"])
    };
    let build = |b: crate::domain::schema::SchemaBuilder| {
        std::sync::Arc::new(b.build().unwrap_or_else(|e| unreachable!("{e}")))
    };
    (
        build(v1()),
        build(
            v1().column("latency_ms", ColumnType::Integer, &["ms"])
                .index(&["latency_ms"]),
        ),
    )
}

/// A dataset whose schema gains a column ([`changing_schemas`]): the sink stores events of the
/// second schema in the table the first made, the new column read back as written, NULL in the
/// rows written before. (The sink's own test checks the new column's index.)
pub async fn analytics_schema_change(
    sink: &dyn AnalyticsSink,
    probe: &dyn AnalyticsProbe,
    prefix: &str,
) {
    let (first, second) = changing_schemas();
    let s = stream(prefix, "sc-probes");
    let start = at(2026, 11, 25, 10, 0, 0, 0);
    let old = schema_events(&first, 0, 30, start);
    let new = schema_events(&second, 100, 30, start);
    for (schema, events) in [(&first, &old), (&second, &new)] {
        let b = batch_of(&s, schema.clone(), events.clone(), Vec::new());
        let report = sink.write(&b).await.expect("write");
        assert_eq!(
            report.inserted,
            30,
            "{}: every event inserted",
            schema.dataset()
        );
    }
    // The events of the first schema, as the second reads them: NULL in the new column.
    let widened: Vec<crate::Event> = old
        .iter()
        .map(|e| e.clone().with_values(vec![e.value(0).cloned(), None]))
        .collect();
    let all: Vec<crate::Event> = widened.into_iter().chain(new).collect();
    let rows = probe.rows(&s, &second).await.expect("probe read");
    check_rows("analytics (schema changed)", &second, &all, rows);
}

/// The [`ArchiveSink`] contract for events of `schema`: a staged and published batch of its
/// sample events is in the published objects once, each column's value as written
/// (timestamps to the microsecond). Sinks run it for every built-in schema and for schemas
/// defined by their tests.
pub async fn archive_schema(
    archive: &dyn ArchiveSink,
    probe: &dyn ArchiveProbe,
    prefix: &str,
    schema: &std::sync::Arc<DatasetSchema>,
) {
    let dataset = schema.dataset();
    let (s, events, b) = schema_batch(prefix, schema);
    let manifest = archive
        .stage(
            &b,
            StageRequest {
                seq: 1,
                epoch: Epoch(1),
                prev: Digest::GENESIS,
                now: at(2026, 11, 25, 12, 0, 0, 0),
            },
        )
        .await
        .expect("stage of schema sample events");
    assert_eq!(manifest.dataset, *dataset, "the manifest names the dataset");
    archive.publish(&manifest).await.expect("publish");
    let rows = probe.published_rows(&s, schema).await.expect("probe read");
    check_rows("archive", schema, &events, rows);
}

/// Reads back what an [`ArchiveSink`] stored, for [`archive_sink`].
#[async_trait]
pub trait ArchiveProbe: Send + Sync {
    /// Ids of every record in the published (final) data objects of `stream`, one entry per
    /// occurrence.
    async fn published_ids(&self, stream: &StreamId) -> Result<Vec<EventId>>;
    /// Keys of the staged objects of `stream`.
    async fn staged_keys(&self, stream: &StreamId) -> Result<Vec<String>>;
    /// The events in the published data objects of `stream`, read as `schema`'s: the id and
    /// the schema's columns in order, each in [`Value::to_json`]'s form (`null` for NULL).
    async fn published_rows(
        &self,
        stream: &StreamId,
        schema: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>>;
    /// The bytes of the object at `key`, if any.
    async fn object(&self, key: &str) -> Result<Option<Bytes>>;
    /// The bytes of the manifest object of `stream`'s batch `seq`, if published.
    async fn manifest_object(&self, stream: &StreamId, seq: u64) -> Result<Option<Bytes>>;
    /// Deletes the object at `key` (to simulate loss).
    async fn delete(&self, key: &str) -> Result<()>;
}

/// The [`ArchiveSink`] contract: staging is invisible, publishing is exact, idempotent and the
/// only way to a final key, losses are reported, and the sweeper deletes exactly the garbage.
pub async fn archive_sink(archive: &dyn ArchiveSink, probe: &dyn ArchiveProbe, prefix: &str) {
    let s = stream(prefix, "ar-a");
    // Two hours, so the batch needs at least two partition objects.
    let start = at(2026, 11, 25, 10, 58, 0, 0);
    let events = audit_events("acc", 1000, 240, start, chrono::Duration::seconds(1));
    let malformed = vec![Quarantined::new(
        Bytes::from_static(b"{\"id\":7}"),
        "id is not a string",
    )];
    let b1 = batch(&s, events[..120].to_vec(), malformed.clone());
    let now = at(2026, 11, 25, 12, 0, 0, 0);
    let epoch = Epoch(3);

    let m1 = archive
        .stage(
            &b1,
            StageRequest {
                seq: 1,
                epoch,
                prev: Digest::GENESIS,
                now,
            },
        )
        .await
        .expect("stage");
    assert_eq!(
        (m1.seq, m1.epoch, m1.prev, m1.created_at),
        (1, epoch, Digest::GENESIS, now)
    );
    assert_eq!(m1.stream, s);
    assert_eq!(m1.events, 120);
    assert_eq!(m1.quarantined, 1);
    assert_eq!(
        m1.rows(),
        121,
        "the objects hold every event and quarantined record"
    );
    assert!(
        m1.objects.len() >= 2,
        "events of two hours go to two partition objects"
    );
    for o in &m1.objects {
        assert_ne!(o.final_key, o.staged_key);
        let bytes = probe
            .object(&o.staged_key)
            .await
            .expect("probe")
            .unwrap_or_else(|| panic!("staged object {} missing after stage", o.staged_key));
        assert_eq!(
            Digest::of(&bytes),
            o.sha256,
            "manifest sha256 MUST match the staged bytes"
        );
        assert_eq!(bytes.len() as u64, o.bytes, "manifest size MUST match");
        assert!(
            probe.object(&o.final_key).await.expect("probe").is_none(),
            "staging MUST NOT reach a final key"
        );
    }
    assert!(
        probe.published_ids(&s).await.expect("probe").is_empty(),
        "nothing published by stage"
    );

    // A zombie stages the same seq under an older epoch: its keys differ.
    let zombie = archive
        .stage(
            &b1,
            StageRequest {
                seq: 1,
                epoch: Epoch(2),
                prev: Digest::GENESIS,
                now,
            },
        )
        .await
        .expect("zombie stage");
    let staged: BTreeSet<&str> = m1.objects.iter().map(|o| o.staged_key.as_str()).collect();
    assert!(
        zombie
            .objects
            .iter()
            .all(|o| !staged.contains(o.staged_key.as_str())),
        "staged keys MUST differ between epochs"
    );

    archive.publish(&m1).await.expect("publish");
    let mut want: Vec<EventId> = b1.events.iter().map(|e| e.id.clone()).collect();
    want.extend(malformed.iter().map(|q| q.id.clone()));
    want.sort();
    assert_eq!(
        sorted(probe.published_ids(&s).await).await,
        want,
        "publish makes every record final, once"
    );
    assert_eq!(
        probe
            .manifest_object(&s, 1)
            .await
            .expect("probe")
            .as_deref(),
        Some(m1.canonical_bytes().as_slice()),
        "the manifest object holds the manifest's canonical bytes"
    );
    for o in &m1.objects {
        assert!(
            probe.object(&o.staged_key).await.expect("probe").is_none(),
            "publish deletes staging"
        );
        let bytes = probe
            .object(&o.final_key)
            .await
            .expect("probe")
            .expect("final object");
        assert_eq!(
            Digest::of(&bytes),
            o.sha256,
            "final bytes are the staged bytes"
        );
    }
    archive
        .publish(&m1)
        .await
        .expect("publishing again MUST succeed");
    assert_eq!(
        sorted(probe.published_ids(&s).await).await,
        want,
        "a repeated publish changes nothing"
    );

    // Sweep: the zombie's objects go, the holder's in-flight batch stays, the pending one stays.
    let m2 = archive
        .stage(
            &batch(&s, events[120..].to_vec(), Vec::new()),
            StageRequest {
                seq: 2,
                epoch,
                prev: m1.hash(),
                now,
            },
        )
        .await
        .expect("stage 2");
    let holder = Checkpoint {
        seq: 1,
        epoch,
        chain_head: m1.hash(),
        pending: None,
        ..Checkpoint::genesis(s.clone(), start)
    };
    let kept_young = archive
        .sweep(&holder, Duration::from_secs(365 * 86_400))
        .await
        .expect("sweep");
    assert_eq!(
        kept_young, 0,
        "sweep MUST keep objects younger than min_age"
    );
    let deleted = archive.sweep(&holder, Duration::ZERO).await.expect("sweep");
    assert_eq!(
        deleted as usize,
        zombie.objects.len(),
        "sweep deletes exactly the zombie's objects"
    );
    let left: BTreeSet<String> = probe
        .staged_keys(&s)
        .await
        .expect("probe")
        .into_iter()
        .collect();
    let in_flight: BTreeSet<String> = m2.objects.iter().map(|o| o.staged_key.clone()).collect();
    assert_eq!(
        left, in_flight,
        "the lease holder's in-flight batch MUST survive a sweep"
    );
    let committed = Checkpoint {
        seq: 2,
        chain_head: m2.hash(),
        pending: Some(m2.clone()),
        ..holder.clone()
    };
    assert_eq!(
        archive
            .sweep(&committed, Duration::ZERO)
            .await
            .expect("sweep"),
        0,
        "pending objects are kept"
    );
    // The pipeline records the position the batch commits in its manifest.
    let mut m2 = m2;
    m2.resume = Some(crate::Position::start(at(
        2026,
        11,
        25,
        12,
        59,
        59,
        123_456_789,
    )));
    archive.publish(&m2).await.expect("publish 2");
    assert_eq!(
        probe.published_ids(&s).await.expect("probe").len(),
        241,
        "240 events and 1 quarantined record"
    );
    assert_eq!(
        archive.newest_after(&s, 0).await.expect("newest"),
        Some(m2.clone()),
        "newest_after returns the newest manifest, the recorded position included"
    );
    assert_eq!(
        archive.newest_after(&s, 1).await.expect("newest"),
        Some(m2.clone())
    );
    assert_eq!(archive.newest_after(&s, 2).await.expect("newest"), None);
    assert_eq!(
        archive
            .newest_after(&stream(prefix, "ar-none"), 0)
            .await
            .expect("newest"),
        None
    );

    // Create-only: a chain started again over this archive (a checkpoint store that lost its
    // state) stages other batches under numbers the archive holds; publishing them MUST be
    // refused and MUST leave every byte of the archive as it was.
    let history_ids = sorted(probe.published_ids(&s).await).await;
    let mut prev = Digest::GENESIS;
    for seq in [1u64, 2] {
        let other = batch(
            &s,
            audit_events(
                "acc",
                9000 + seq * 100,
                5,
                start,
                chrono::Duration::seconds(7),
            ),
            Vec::new(),
        );
        let m = archive
            .stage(
                &other,
                StageRequest {
                    seq,
                    epoch: Epoch(9),
                    prev,
                    now,
                },
            )
            .await
            .expect("stage over history");
        match archive.publish(&m).await {
            Err(Error::Fatal { .. }) => {}
            other => panic!(
                "publishing batch {seq} over another batch {seq} MUST be Fatal, got {other:?}"
            ),
        }
        prev = m.hash();
    }
    assert_eq!(
        sorted(probe.published_ids(&s).await).await,
        history_ids,
        "a refused publish changes no published record"
    );
    for (seq, m) in [(1, &m1), (2, &m2)] {
        assert_eq!(
            probe
                .manifest_object(&s, seq)
                .await
                .expect("probe")
                .as_deref(),
            Some(m.canonical_bytes().as_slice()),
            "a refused publish MUST NOT replace manifest {seq}"
        );
    }
    archive
        .publish(&m2)
        .await
        .expect("the archive's own batch publishes again as a no-op");

    // Losing a staged object before its first publish is reported, never success.
    let m3_batch = batch(
        &s,
        audit_events("acc", 5000, 3, start, chrono::Duration::seconds(1)),
        Vec::new(),
    );
    let m3 = archive
        .stage(
            &m3_batch,
            StageRequest {
                seq: 3,
                epoch,
                prev: m2.hash(),
                now,
            },
        )
        .await
        .expect("stage 3");
    probe
        .delete(&m3.objects[0].staged_key)
        .await
        .expect("delete staged");
    match archive.publish(&m3).await {
        Err(Error::Fatal { .. }) => {}
        other => panic!(
            "publishing a manifest whose staged and final object are both gone MUST be Fatal, got {other:?}"
        ),
    }
}

/// The [`WindowSource`] contract over `window`, where the source holds exactly `expected`
/// (visible) events in that window.
pub async fn window_source(source: &dyn WindowSource, window: &Window, expected: &[EventId]) {
    let request = |limits| FetchRequest {
        window: *window,
        floor: window.from(),
        limits,
    };
    let roomy = BatchLimits::new(usize::MAX, usize::MAX).expect("limits");
    let whole = source.fetch(&request(roomy)).await.expect("fetch");
    let complete_to = whole.complete_to.unwrap_or(window.to());
    assert_eq!(
        complete_to,
        window.to(),
        "without caps a source MUST read the whole window"
    );
    let got: BTreeSet<&EventId> = whole
        .events
        .iter()
        .filter(|e| window.contains(e.occurred_at))
        .map(|e| &e.id)
        .collect();
    let want: BTreeSet<&EventId> = expected.iter().collect();
    assert_eq!(got, want, "fetch MUST return every event of the window");

    let again = source.fetch(&request(roomy)).await.expect("fetch again");
    for e in &again.events {
        if let Some(first) = whole.events.iter().find(|f| f.id == e.id) {
            assert_eq!(
                first.raw, e.raw,
                "an event MUST come back with the same bytes"
            );
            assert_eq!(first.occurred_at, e.occurred_at, "and the same time");
        }
    }

    let tight = BatchLimits::new(1, 1).expect("limits");
    let part = source
        .fetch(&request(tight))
        .await
        .expect("fetch with caps");
    if let Some(cut) = part.complete_to {
        assert!(
            window.from() < cut && cut <= window.to(),
            "complete_to MUST lie in (from, to]"
        );
        let got: BTreeSet<&EventId> = part
            .events
            .iter()
            .filter(|e| window.from() <= e.occurred_at && e.occurred_at < cut)
            .map(|e| &e.id)
            .collect();
        let want: BTreeSet<&EventId> = whole
            .events
            .iter()
            .filter(|e| window.from() <= e.occurred_at && e.occurred_at < cut)
            .map(|e| &e.id)
            .collect();
        assert_eq!(
            got, want,
            "a source that stops early MUST be complete up to complete_to"
        );
    }
}
