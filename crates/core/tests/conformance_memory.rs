//! The conformance suites against the in-memory adapters, and proof that the suites catch a
//! broken adapter.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cflogs_core::schema::Value;
use cflogs_core::testing::conformance::{self, AnalyticsProbe, ArchiveProbe};
use cflogs_core::testing::samples::{self, audit_events};
use cflogs_core::testing::{
    ManualClock, MemoryAnalytics, MemoryArchive, MemoryCheckpointStore, MemorySource,
};
use cflogs_core::{
    Checkpoint, CheckpointStore, Clock, ColumnType, CommitGuard, Dataset, DatasetSchema, EventId,
    Result, StreamId, TimeFormat, Timestamp, Window,
};
use chrono::TimeZone;

fn now() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
        .unwrap()
}

#[tokio::test]
async fn memory_checkpoint_store_conforms() {
    conformance::checkpoint_store(&MemoryCheckpointStore::new(), "conf").await;
}

struct AnalyticsReader(Arc<MemoryAnalytics>);

#[async_trait]
impl AnalyticsProbe for AnalyticsReader {
    async fn event_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        Ok(self.0.event_ids(stream))
    }
    async fn quarantine_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        Ok(self.0.quarantine_ids(stream))
    }
    async fn rows(
        &self,
        stream: &StreamId,
        schema: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        Ok(self
            .0
            .events(stream)
            .into_iter()
            .map(|e| {
                let values = (0..schema.columns().len())
                    .map(|i| e.value(i).map_or(serde_json::Value::Null, Value::to_json))
                    .collect();
                (e.id, values)
            })
            .collect())
    }
}

/// Every built-in schema, the generic one, and one defined here as a user would.
fn every_schema() -> Vec<Arc<DatasetSchema>> {
    let mut schemas = samples::builtin_schemas();
    schemas.push(Arc::new(
        DatasetSchema::builder(
            Dataset::new("app_metrics").unwrap(),
            &["at"],
            TimeFormat::UnixNanos,
        )
        .id_field(&["uid"])
        .column("host", ColumnType::Text, &["host.name"])
        .column("cpu", ColumnType::Float, &["load.cpu"])
        .column("ok", ColumnType::Boolean, &["ok"])
        .column(
            "seen",
            ColumnType::Timestamp(TimeFormat::UnixSeconds),
            &["seen"],
        )
        .build()
        .unwrap(),
    ));
    schemas
}

#[tokio::test]
async fn memory_analytics_conforms_for_every_schema() {
    let sink = Arc::new(MemoryAnalytics::new());
    let probe = AnalyticsReader(sink.clone());
    for schema in every_schema() {
        conformance::analytics_schema(sink.as_ref(), &probe, "conf", &schema).await;
    }
}

#[tokio::test]
async fn memory_analytics_conforms_when_a_schema_gains_a_column() {
    let sink = Arc::new(MemoryAnalytics::new());
    conformance::analytics_schema_change(sink.as_ref(), &AnalyticsReader(sink.clone()), "conf")
        .await;
}

#[tokio::test]
async fn memory_archive_conforms_for_every_schema() {
    let clock = ManualClock::new(now());
    let archive = Arc::new(MemoryArchive::new(clock as Arc<dyn Clock>));
    let probe = ArchiveReader(archive.clone());
    for schema in every_schema() {
        conformance::archive_schema(archive.as_ref(), &probe, "conf", &schema).await;
    }
}

/// A probe that loses the last column of every row, as a sink with a forgotten column would.
struct Forgetful(AnalyticsReader);

#[async_trait]
impl AnalyticsProbe for Forgetful {
    async fn event_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        self.0.event_ids(stream).await
    }
    async fn quarantine_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        self.0.quarantine_ids(stream).await
    }
    async fn rows(
        &self,
        stream: &StreamId,
        schema: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        let mut rows = self.0.rows(stream, schema).await?;
        for (_, values) in &mut rows {
            if let Some(last) = values.last_mut() {
                *last = serde_json::Value::Null;
            }
        }
        Ok(rows)
    }
}

#[tokio::test]
#[should_panic(expected = "read back None")]
async fn the_schema_suite_catches_a_sink_that_loses_a_column() {
    let sink = Arc::new(MemoryAnalytics::new());
    let probe = Forgetful(AnalyticsReader(sink.clone()));
    let schema = Arc::new(DatasetSchema::builtin(
        &Dataset::new("http_requests").unwrap(),
    ));
    conformance::analytics_schema(sink.as_ref(), &probe, "broken", &schema).await;
}

#[tokio::test]
async fn memory_analytics_conforms() {
    let sink = Arc::new(MemoryAnalytics::new());
    conformance::analytics_sink(sink.as_ref(), &AnalyticsReader(sink.clone()), "conf").await;
}

struct ArchiveReader(Arc<MemoryArchive>);

#[async_trait]
impl ArchiveProbe for ArchiveReader {
    async fn published_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        self.0.published_ids(stream)
    }
    async fn staged_keys(&self, stream: &StreamId) -> Result<Vec<String>> {
        Ok(self.0.staged_keys(stream))
    }
    async fn published_rows(
        &self,
        stream: &StreamId,
        _: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        self.0.published_rows(stream)
    }
    async fn object(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.0.objects().get(key).map(|o| o.bytes.clone()))
    }
    async fn manifest_object(&self, stream: &StreamId, seq: u64) -> Result<Option<Bytes>> {
        self.object(&MemoryArchive::manifest_key(stream, seq)).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete_object(key);
        Ok(())
    }
}

#[tokio::test]
async fn memory_archive_conforms() {
    let clock = ManualClock::new(now());
    let archive = Arc::new(MemoryArchive::new(clock as Arc<dyn Clock>));
    conformance::archive_sink(archive.as_ref(), &ArchiveReader(archive.clone()), "conf").await;
}

#[tokio::test]
async fn memory_source_conforms_with_and_without_paging() {
    let clock = ManualClock::new(now());
    let stream = StreamId::new("conf/source").unwrap();
    let start = now() - chrono::Duration::hours(2);
    let events = audit_events("acc", 0, 50, start, chrono::Duration::seconds(30));
    for page_size in [None, Some(3)] {
        let mut source = MemorySource::new(
            stream.clone(),
            Dataset::audit_logs(),
            clock.clone() as Arc<dyn Clock>,
        );
        if let Some(p) = page_size {
            source = source.with_page_size(p);
        }
        for e in &events {
            source.push(e.clone(), e.occurred_at);
        }
        // One event not yet visible: the window holds only the visible ones.
        let late = audit_events("acc", 99, 1, start, chrono::Duration::seconds(1));
        source.push(late[0].clone(), now() + chrono::Duration::hours(1));
        let window = Window::new(start, start + chrono::Duration::minutes(10)).unwrap();
        let expected: Vec<EventId> = events
            .iter()
            .filter(|e| window.contains(e.occurred_at))
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(expected.len(), 20);
        conformance::window_source(&source, &window, &expected).await;
    }
}

/// A store that forgets to compare the epoch: a zombie could commit.
struct Unfenced(MemoryCheckpointStore);

#[async_trait]
impl CheckpointStore for Unfenced {
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
        self.0.acquire(stream, initial).await
    }
    async fn load(&self, stream: &StreamId) -> Result<Option<Checkpoint>> {
        self.0.load(stream).await
    }
    async fn commit(&self, guard: CommitGuard, next: &Checkpoint) -> Result<()> {
        let stored = self.0.load(&next.stream).await?;
        let guard = CommitGuard {
            epoch: stored.as_ref().map_or(guard.epoch, |s| s.epoch),
            lease: stored.as_ref().map_or(guard.lease, |s| s.lease),
            ..guard
        };
        let next = Checkpoint {
            epoch: guard.epoch,
            lease: guard.lease,
            ..next.clone()
        };
        self.0.commit(guard, &next).await
    }
    async fn claim(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: &cflogs_core::Claim,
    ) -> Result<Checkpoint> {
        self.0.claim(stream, initial, claim).await
    }
    async fn renew(&self, stream: &StreamId, lease: u64, ttl: std::time::Duration) -> Result<()> {
        self.0.renew(stream, lease, ttl).await
    }
    async fn release(&self, stream: &StreamId, lease: u64) -> Result<()> {
        self.0.release(stream, lease).await
    }
}

#[tokio::test]
#[should_panic(expected = "commit with a fenced epoch")]
async fn the_store_suite_catches_a_store_without_fencing() {
    conformance::checkpoint_store(&Unfenced(MemoryCheckpointStore::new()), "broken").await;
}

/// An analytics sink that is not idempotent: it appends.
#[derive(Default)]
struct Appending(std::sync::Mutex<Vec<(StreamId, EventId)>>);

#[async_trait]
impl cflogs_core::AnalyticsSink for Appending {
    async fn write(&self, batch: &cflogs_core::Batch) -> Result<cflogs_core::WriteReport> {
        let mut rows = self.0.lock().unwrap();
        for e in &batch.events {
            rows.push((batch.stream.clone(), e.id.clone()));
        }
        Ok(cflogs_core::WriteReport {
            inserted: batch.events.len() as u64,
            quarantined: batch.quarantined.len() as u64,
            ..Default::default()
        })
    }
}

#[async_trait]
impl AnalyticsProbe for Appending {
    async fn event_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, id)| id.clone())
            .collect())
    }
    async fn quarantine_ids(&self, _: &StreamId) -> Result<Vec<EventId>> {
        Ok(Vec::new())
    }
    async fn rows(
        &self,
        _: &StreamId,
        _: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
#[should_panic(expected = "a repeated batch MUST insert nothing")]
async fn the_analytics_suite_catches_a_sink_that_is_not_idempotent() {
    let sink = Appending::default();
    conformance::analytics_sink(&sink, &sink, "broken").await;
}
