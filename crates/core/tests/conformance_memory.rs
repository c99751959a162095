//! The conformance suites against the in-memory adapters, and proof that the suites catch a
//! broken adapter.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cflogs_core::testing::conformance::{self, AnalyticsProbe, ArchiveProbe};
use cflogs_core::testing::samples::audit_events;
use cflogs_core::testing::{
    ManualClock, MemoryAnalytics, MemoryArchive, MemoryCheckpointStore, MemorySource,
};
use cflogs_core::{
    Checkpoint, CheckpointStore, Clock, CommitGuard, Dataset, EventId, Result, StreamId, Timestamp,
    Window,
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
            epoch: stored.map_or(guard.epoch, |s| s.epoch),
            ..guard
        };
        let next = Checkpoint {
            epoch: guard.epoch,
            ..next.clone()
        };
        self.0.commit(guard, &next).await
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
}

#[tokio::test]
#[should_panic(expected = "a repeated batch MUST insert nothing")]
async fn the_analytics_suite_catches_a_sink_that_is_not_idempotent() {
    let sink = Appending::default();
    conformance::analytics_sink(&sink, &sink, "broken").await;
}
