//! Unit tests of the cycle: mocks make a port fail at one precise moment.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use mockall::Sequence;

use super::*;
use crate::cursors::{MockWindowSource, OverlappingWindows};
use crate::domain::Window;
use crate::domain::{
    Cursor, Digest, Event, EventId, Fetched, Manifest, Position, Quarantined, StreamId,
};
use crate::ports::{
    MockAnalyticsSink, MockArchiveSink, MockCheckpointStore, MockEventSource, WriteReport,
};
use crate::testing::ManualClock;
use crate::testing::samples::audit_schema;

fn t(s: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn stream() -> StreamId {
    StreamId::new("audit-v1/account/unit").unwrap()
}

fn policy() -> Policy {
    let mut p = Policy::new(t(0));
    p.lookback = Duration::from_secs(60);
    p.settle_delay = Duration::from_secs(10);
    p.max_span = Duration::from_secs(600);
    p.sweep_every_cycles = 1_000;
    p
}

fn events() -> Vec<Event> {
    (0..3)
        .map(|i| {
            Event::new(
                EventId::new(format!("e{i}")).unwrap(),
                t(i),
                Bytes::from(format!("{{\"id\":\"e{i}\"}}")),
            )
        })
        .collect()
}

/// A mocked window source on our clock.
fn mock_source() -> MockWindowSource {
    let mut source = MockWindowSource::new();
    source
        .expect_clock_offset()
        .returning(chrono::TimeDelta::zero);
    source
}

fn source_with(events: Vec<Event>, times: usize) -> MockWindowSource {
    let mut source = mock_source();
    source.expect_stream().return_const(stream());
    source.expect_schema().return_const(audit_schema());
    source.expect_fetch().times(times).returning(move |_| {
        Ok(Fetched {
            events: events.clone(),
            ..Fetched::default()
        })
    });
    source
}

fn genesis(epoch: u64) -> Checkpoint {
    Checkpoint {
        epoch: Epoch(epoch),
        ..Checkpoint::genesis(stream(), t(0))
    }
}

fn manifest_for(batch: &Batch, r: StageRequest) -> Manifest {
    Manifest {
        version: Manifest::VERSION,
        stream: batch.stream.clone(),
        dataset: batch.dataset().clone(),
        seq: r.seq,
        epoch: r.epoch,
        window: batch.window,
        events: batch.events.len() as u64,
        quarantined: 0,
        objects: Vec::new(),
        prev: r.prev,
        created_at: r.now,
        resume: None,
    }
}

/// An archive mock holding no batch the checkpoint does not know.
fn archive_mock() -> MockArchiveSink {
    let mut archive = MockArchiveSink::new();
    archive.expect_newest_after().returning(|_, _| Ok(None));
    archive
}

fn archive_staging() -> MockArchiveSink {
    let mut archive = archive_mock();
    archive
        .expect_stage()
        .returning(|batch, r| Ok(manifest_for(batch, r)));
    archive
}

fn pipeline(
    source: MockWindowSource,
    store: MockCheckpointStore,
    analytics: MockAnalyticsSink,
    archive: MockArchiveSink,
) -> Pipeline {
    pipeline_of(overlapping(source), store, analytics, archive)
}

/// The mock window source read with an `overlap` cursor, as audit logs are.
fn overlapping(source: MockWindowSource) -> Arc<dyn EventSource> {
    Arc::new(OverlappingWindows::new(Arc::new(source)))
}

fn transient() -> Error {
    Error::transient("test", "connection reset")
}

#[tokio::test]
async fn an_analytics_failure_commits_and_publishes_nothing() {
    let mut store = MockCheckpointStore::new();
    store
        .expect_acquire()
        .times(1)
        .returning(|_, _| Ok(genesis(1)));
    store.expect_commit().times(0);
    let mut analytics = MockAnalyticsSink::new();
    analytics
        .expect_write()
        .times(1)
        .returning(|_| Err(transient()));
    // Staging runs beside the write: it may have staged (garbage for the sweeper), never more.
    let mut archive = archive_mock();
    archive
        .expect_stage()
        .times(0..=1)
        .returning(|b, r| Ok(manifest_for(b, r)));
    archive.expect_publish().times(0);
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source_with(events(), 1), store, analytics, archive);
    let e = p.run_once().await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(
        p.epoch(),
        Some(Epoch(1)),
        "still the holder, to be reloaded"
    );
}

#[tokio::test]
async fn a_conflict_on_commit_publishes_nothing_and_fences_the_instance() {
    let mut store = MockCheckpointStore::new();
    store
        .expect_acquire()
        .times(1)
        .returning(|_, _| Ok(genesis(1)));
    store
        .expect_commit()
        .times(1)
        .returning(|_, next| Err(Error::conflict(&next.stream, "epoch 2 holds it")));
    store.expect_load().times(0);
    let mut analytics = MockAnalyticsSink::new();
    analytics
        .expect_write()
        .returning(|_| Ok(WriteReport::default()));
    let mut archive = archive_staging();
    archive.expect_publish().times(0);
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source_with(events(), 1), store, analytics, archive);
    assert!(p.run_once().await.unwrap_err().is_conflict());
    // A fenced instance does nothing more: no fetch, no reload.
    assert!(p.run_once().await.unwrap_err().is_conflict());
    assert_eq!(p.epoch(), None);
}

#[tokio::test]
async fn a_commit_with_unknown_outcome_that_applied_is_published() {
    let stored: Arc<Mutex<Option<Checkpoint>>> = Arc::default();
    let mut store = MockCheckpointStore::new();
    let mut seq = Sequence::new();
    store
        .expect_acquire()
        .times(1)
        .returning(|_, _| Ok(genesis(1)));
    let s = stored.clone();
    store
        .expect_commit()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, next| {
            // Applied, but the connection dropped before the answer.
            *s.lock().unwrap() = Some(next.clone());
            Err(transient())
        });
    let s = stored.clone();
    store
        .expect_load()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(s.lock().unwrap().clone()));
    store
        .expect_commit()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|guard, next| guard.seq == 1 && next.seq == 1 && next.pending.is_none())
        .returning(|_, _| Ok(()));
    let mut analytics = MockAnalyticsSink::new();
    analytics
        .expect_write()
        .returning(|_| Ok(WriteReport::default()));
    let mut archive = archive_staging();
    archive
        .expect_publish()
        .times(1)
        .withf(|m| m.seq == 1 && m.prev == Digest::GENESIS)
        .returning(|_| Ok(()));
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source_with(events(), 1), store, analytics, archive);
    let outcome = p.run_once().await.unwrap();
    assert!(
        matches!(
            outcome,
            CycleOutcome::Committed {
                seq: 1,
                events: 3,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_commit_with_unknown_outcome_that_did_not_apply_is_retried_after_a_reload() {
    let mut store = MockCheckpointStore::new();
    store
        .expect_acquire()
        .times(1)
        .returning(|_, _| Ok(genesis(1)));
    let mut seq = Sequence::new();
    store
        .expect_commit()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(transient()));
    // Resolving the outcome, then the next cycle's reload: both find the old checkpoint.
    store
        .expect_load()
        .times(2)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Some(genesis(1))));
    store
        .expect_commit()
        .times(2)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let mut analytics = MockAnalyticsSink::new();
    analytics
        .expect_write()
        .times(2)
        .returning(|_| Ok(WriteReport::default()));
    let mut archive = archive_staging();
    archive.expect_publish().times(1).returning(|_| Ok(()));
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source_with(events(), 2), store, analytics, archive);
    assert!(p.run_once().await.unwrap_err().is_transient());
    let outcome = p.run_once().await.unwrap();
    assert!(
        matches!(outcome, CycleOutcome::Committed { seq: 1, .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_reload_that_finds_a_newer_epoch_is_a_conflict() {
    let mut store = MockCheckpointStore::new();
    store
        .expect_acquire()
        .times(1)
        .returning(|_, _| Ok(genesis(1)));
    store
        .expect_load()
        .times(1)
        .returning(|_| Ok(Some(genesis(2))));
    let mut source = mock_source();
    source.expect_stream().return_const(stream());
    source.expect_schema().return_const(audit_schema());
    source
        .expect_fetch()
        .times(1)
        .returning(|_| Err(transient()));
    let mut archive = archive_mock();
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source, store, MockAnalyticsSink::new(), archive);
    assert!(p.run_once().await.unwrap_err().is_transient());
    let e = p.run_once().await.unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
}

#[tokio::test]
async fn a_pending_manifest_is_published_before_anything_is_fetched() {
    let pending = {
        let batch = Batch {
            stream: stream(),
            schema: audit_schema(),
            window: Window::new(t(-60), t(0)).unwrap(),
            events: Vec::new(),
            quarantined: Vec::new(),
        };
        manifest_for(
            &batch,
            StageRequest {
                seq: 1,
                epoch: Epoch(1),
                prev: Digest::GENESIS,
                now: t(0),
            },
        )
    };
    let crashed = Checkpoint {
        seq: 1,
        epoch: Epoch(2),
        chain_head: pending.hash(),
        pending: Some(pending.clone()),
        ..genesis(2)
    };
    let mut order = Sequence::new();
    let mut store = MockCheckpointStore::new();
    store
        .expect_acquire()
        .times(1)
        .returning(move |_, _| Ok(crashed.clone()));
    let mut archive = archive_mock();
    let expected = pending.clone();
    archive
        .expect_publish()
        .times(1)
        .in_sequence(&mut order)
        .withf(move |m| *m == expected)
        .returning(|_| Ok(()));
    store
        .expect_commit()
        .times(1)
        .in_sequence(&mut order)
        .withf(|_, next| next.seq == 1 && next.pending.is_none())
        .returning(|_, _| Ok(()));
    let mut source = mock_source();
    source.expect_stream().return_const(stream());
    source.expect_schema().return_const(audit_schema());
    source
        .expect_fetch()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(Fetched::default()));
    store.expect_commit().returning(|_, _| Ok(()));
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source, store, MockAnalyticsSink::new(), archive);
    let outcome = p.run_once().await.unwrap();
    assert!(
        matches!(outcome, CycleOutcome::Advanced { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_source_breaking_its_contract_is_fatal() {
    let mut store = MockCheckpointStore::new();
    store.expect_acquire().returning(|_, _| Ok(genesis(1)));
    let mut source = mock_source();
    source.expect_stream().return_const(stream());
    source.expect_schema().return_const(audit_schema());
    source.expect_fetch().returning(|r| {
        Ok(Fetched {
            complete_to: Some(r.window.from()),
            ..Fetched::default()
        })
    });
    let mut archive = archive_mock();
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source, store, MockAnalyticsSink::new(), archive);
    assert!(matches!(p.run_once().await, Err(Error::Fatal { .. })));
}

#[tokio::test]
async fn nothing_is_fetched_before_the_window_has_settled() {
    let mut store = MockCheckpointStore::new();
    // Watermark in the future of the clock (t(300)) less the settle delay.
    store.expect_acquire().returning(|_, _| {
        Ok(Checkpoint {
            watermark: t(400),
            ..genesis(1)
        })
    });
    let mut source = mock_source();
    source.expect_stream().return_const(stream());
    source.expect_fetch().times(0);
    let mut archive = archive_mock();
    archive.expect_sweep().returning(|_, _| Ok(0));
    let mut p = pipeline(source, store, MockAnalyticsSink::new(), archive);
    assert_eq!(p.run_once().await.unwrap(), CycleOutcome::Idle);
}

#[tokio::test]
async fn a_sweep_failure_does_not_fail_the_cycle() {
    let mut store = MockCheckpointStore::new();
    store.expect_acquire().returning(|_, _| Ok(genesis(1)));
    store.expect_commit().returning(|_, _| Ok(()));
    let mut archive = archive_mock();
    archive
        .expect_sweep()
        .times(1)
        .returning(|_, _| Err(transient()));
    let mut p = Pipeline::new(
        overlapping(source_with(Vec::new(), 1)),
        Arc::new(store),
        Arc::new(MockAnalyticsSink::new()),
        Arc::new(archive),
        ManualClock::new(t(300)),
        Policy {
            sweep_every_cycles: 1,
            ..policy()
        },
    )
    .unwrap();
    assert!(p.run_once().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn run_waits_the_poll_interval_and_stops_on_shutdown() {
    let mut store = MockCheckpointStore::new();
    store.expect_acquire().returning(|_, _| Ok(genesis(1)));
    store.expect_commit().returning(|_, _| Ok(()));
    let mut archive = archive_mock();
    archive.expect_sweep().returning(|_, _| Ok(0));
    let fetches = Arc::new(Mutex::new(0));
    let mut source = mock_source();
    source.expect_stream().return_const(stream());
    source.expect_schema().return_const(audit_schema());
    let f = fetches.clone();
    source.expect_fetch().returning(move |_| {
        *f.lock().unwrap() += 1;
        Ok(Fetched::default())
    });
    let p = pipeline(source, store, MockAnalyticsSink::new(), archive);
    // 60 s poll interval: cycles at 0 s, 60 s and 120 s fit before a shutdown at 150 s.
    p.run(tokio::time::sleep(Duration::from_secs(150)))
        .await
        .unwrap();
    assert_eq!(*fetches.lock().unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn run_retries_transient_failures_and_returns_a_conflict() {
    let mut store = MockCheckpointStore::new();
    store.expect_acquire().returning(|_, _| Ok(genesis(1)));
    let loads = Arc::new(Mutex::new(0));
    let l = loads.clone();
    store.expect_load().returning(move |_| {
        let mut n = l.lock().unwrap();
        *n += 1;
        // The second reload finds that another instance took the stream.
        Ok(Some(genesis(if *n < 2 { 1 } else { 2 })))
    });
    let mut source = mock_source();
    source.expect_stream().return_const(stream());
    source.expect_schema().return_const(audit_schema());
    source.expect_fetch().returning(|_| Err(transient()));
    let mut archive = archive_mock();
    archive.expect_sweep().returning(|_, _| Ok(0));
    let p = pipeline(source, store, MockAnalyticsSink::new(), archive);
    let e = p.run(std::future::pending()).await.unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
    assert_eq!(*loads.lock().unwrap(), 2);
}

/// Per cycle: succeeded, commit time, watermark.
type Seen = (bool, Option<Duration>, Option<Timestamp>);

#[derive(Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl CycleObserver for Recorder {
    fn cycle(&self, report: &CycleReport<'_>) {
        assert_eq!(report.stream, &stream());
        self.0.lock().unwrap().push((
            report.outcome.is_ok(),
            report.commit_duration,
            report.watermark,
        ));
    }
}

#[tokio::test]
async fn an_observer_hears_of_every_cycle_with_its_commit_time() {
    let mut store = MockCheckpointStore::new();
    store.expect_acquire().returning(|_, _| Ok(genesis(1)));
    store.expect_commit().returning(|_, _| Ok(()));
    let mut analytics = MockAnalyticsSink::new();
    analytics
        .expect_write()
        .returning(|_| Ok(WriteReport::default()));
    let mut archive = archive_staging();
    archive.expect_publish().returning(|_| Ok(()));
    archive.expect_sweep().returning(|_, _| Ok(0));
    let recorder = Arc::new(Recorder::default());
    let mut p = pipeline(source_with(events(), 1), store, analytics, archive)
        .with_observer(recorder.clone());
    p.run_once().await.unwrap();
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].0, "the cycle succeeded");
    assert!(
        seen[0].1.is_some(),
        "a batch was committed, so its commit was timed"
    );
    assert_eq!(seen[0].2, Some(t(290)), "watermark = now - settle delay");
}

/// A source answering every read with `read` (its position fields filled from `at`).
fn reading(read: impl Fn(&Position) -> Read + Send + Sync + 'static) -> Arc<dyn EventSource> {
    let mut source = MockEventSource::new();
    source.expect_stream().return_const(stream());
    source.expect_schema().return_const(audit_schema());
    source
        .expect_read()
        .returning(move |at, _| Ok(Some(read(at))));
    Arc::new(source)
}

fn pipeline_of(
    source: Arc<dyn EventSource>,
    store: MockCheckpointStore,
    analytics: MockAnalyticsSink,
    archive: MockArchiveSink,
) -> Pipeline {
    Pipeline::new(
        source,
        Arc::new(store),
        Arc::new(analytics),
        Arc::new(archive),
        ManualClock::new(t(300)),
        policy(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_source_moving_the_watermark_back_is_fatal_and_commits_nothing() {
    let mut store = MockCheckpointStore::new();
    store.expect_acquire().returning(|_, _| {
        Ok(Checkpoint {
            watermark: t(100),
            ..genesis(1)
        })
    });
    store.expect_commit().times(0);
    let mut analytics = MockAnalyticsSink::new();
    analytics.expect_write().times(0);
    let mut archive = archive_mock();
    archive.expect_sweep().returning(|_, _| Ok(0));
    archive.expect_stage().times(0);
    let source = reading(|at| Read {
        window: Window::new(t(0), t(50)).unwrap(),
        events: events(),
        quarantined: Vec::new(),
        next: Position {
            watermark: at.watermark - chrono::Duration::nanoseconds(1),
            cursor: Cursor::start(),
        },
        backlog: false,
    });
    let mut p = pipeline_of(source, store, analytics, archive);
    let e = p.run_once().await.unwrap_err();
    assert!(matches!(e, Error::Fatal { .. }), "{e:?}");
}

#[tokio::test]
async fn a_read_returning_an_id_twice_is_written_and_archived_once_in_order() {
    let mut store = MockCheckpointStore::new();
    store.expect_acquire().returning(|_, _| Ok(genesis(1)));
    store.expect_commit().returning(|_, _| Ok(()));
    let mut analytics = MockAnalyticsSink::new();
    analytics
        .expect_write()
        .times(1)
        .withf(|b| {
            let ids: Vec<&str> = b.events.iter().map(|e| e.id.as_str()).collect();
            ids == ["e0", "e1", "e2"] && b.quarantined.len() == 1
        })
        .returning(|_| Ok(WriteReport::default()));
    let mut archive = archive_mock();
    archive
        .expect_stage()
        .times(1)
        .withf(|b, _| b.events.len() == 3 && b.quarantined.len() == 1)
        .returning(|batch, r| Ok(manifest_for(batch, r)));
    archive.expect_publish().returning(|_| Ok(()));
    archive.expect_sweep().returning(|_, _| Ok(0));
    let q = Quarantined::new(Bytes::from_static(b"{bad"), "not JSON");
    let source = reading(move |at| {
        let mut twice = events();
        twice.reverse();
        twice.push(events()[1].clone());
        Read {
            window: Window::new(t(0), t(60)).unwrap(),
            events: twice,
            quarantined: vec![q.clone(), q.clone()],
            next: Position {
                watermark: at.watermark + chrono::Duration::seconds(60),
                cursor: Cursor::encode("unit", 1, &3u32).unwrap(),
            },
            backlog: false,
        }
    });
    let mut p = pipeline_of(source, store, analytics, archive);
    let outcome = p.run_once().await.unwrap();
    assert!(
        matches!(
            outcome,
            CycleOutcome::Committed {
                events: 3,
                quarantined: 1,
                ..
            }
        ),
        "{outcome:?}"
    );
}
