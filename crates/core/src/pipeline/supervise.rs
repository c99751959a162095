//! Catching a stream up ([`Pipeline::catch_up`]) and keeping it running ([`Supervisor`]):
//! the loops every embedding needs around [`Pipeline::run_once`], so that no binary writes its
//! own.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tracing::{error, info, warn};

use super::{CycleObserver, CycleOutcome, CycleReport, Pipeline, jitter};
use crate::domain::{StreamId, Timestamp};
use crate::error::{Error, Result, error_chain};

/// What [`Pipeline::catch_up`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Batches committed.
    pub batches: u64,
    /// Events committed.
    pub events: u64,
    /// Quarantined records committed.
    pub quarantined: u64,
    /// Cycles run.
    pub cycles: u64,
}

impl Pipeline {
    /// Runs cycles until the stream has no backlog, or its watermark reaches `until`; calls
    /// `on_cycle` after each successful cycle. A transient failure is retried with the
    /// policy's backoff, up to [`Pipeline::CATCH_UP_RETRIES`] times in a row.
    ///
    /// # Errors
    /// The first error that is not transient, or a transient one that outlasted the retries.
    pub async fn catch_up(
        &mut self,
        until: Option<Timestamp>,
        mut on_cycle: impl FnMut(&Progress, &CycleOutcome),
    ) -> Result<Progress> {
        let mut progress = Progress::default();
        let mut failures = 0;
        loop {
            progress.cycles += 1;
            match self.run_once().await {
                Ok(outcome) => {
                    failures = 0;
                    let watermark = match &outcome {
                        CycleOutcome::Committed {
                            events,
                            quarantined,
                            watermark,
                            ..
                        } => {
                            progress.batches += 1;
                            progress.events += *events as u64;
                            progress.quarantined += *quarantined as u64;
                            Some(*watermark)
                        }
                        CycleOutcome::Advanced { watermark, .. } => Some(*watermark),
                        CycleOutcome::Idle => None,
                    };
                    on_cycle(&progress, &outcome);
                    let reached = until.is_some_and(|u| watermark.is_some_and(|w| w >= u));
                    if !outcome.has_backlog() || reached {
                        return Ok(progress);
                    }
                }
                Err(e) if e.is_transient() && failures < Self::CATCH_UP_RETRIES => {
                    failures += 1;
                    let pause = self.policy.retry_delay(failures, jitter());
                    warn!(stream = %self.source.stream(), error = %error_chain(&e), retry_in_ms = pause.as_millis() as u64, "cycle failed, retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Transient failures in a row [`Pipeline::catch_up`] retries before it gives up.
    pub const CATCH_UP_RETRIES: u32 = 5;
}

/// Where a supervised stream stands, as told to a [`StreamMonitor`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamHealth {
    /// Started, no successful cycle yet.
    Starting,
    /// Its last cycle, or a recent one, succeeded; transient failures are retried inside.
    Running,
    /// It stopped with an error and starts again after `retry_in`.
    Restarting {
        /// Restarts so far.
        restarts: u64,
        /// The error, as a chain of causes (secrets never reach errors).
        error: String,
        /// The wait before the next start.
        retry_in: Duration,
    },
    /// Another instance holds the stream's lease (a pipeline with a
    /// [`Claim`](crate::Claim)): this one waits and claims it again once that lease expires or
    /// is released.
    Standby {
        /// Who holds it and for how long, or how this one was fenced.
        error: String,
        /// The wait before the next claim.
        retry_in: Duration,
    },
    /// Another instance took the stream's lease (a pipeline without a claim): this one stopped
    /// and does not take it back (that would fence the other one in turn).
    Fenced {
        /// The conflict, as a chain of causes.
        error: String,
    },
    /// Shut down on request.
    Stopped,
}

impl StreamHealth {
    /// A short name: `starting`, `running`, `restarting`, `standby`, `fenced`, `stopped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting { .. } => "restarting",
            Self::Standby { .. } => "standby",
            Self::Fenced { .. } => "fenced",
            Self::Stopped => "stopped",
        }
    }

    /// Whether the stream is doing its job: starting, running, or in standby behind another
    /// instance that holds it (scale-out: each stream runs on one instance).
    pub fn is_healthy(&self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Standby { .. })
    }
}

/// Told whenever a supervised stream's [`StreamHealth`] changes: the hook for `/healthz` and
/// restart metrics. It runs inline, so it must be quick and must not fail.
pub trait StreamMonitor: Send + Sync {
    /// `stream` is now `health`.
    fn health(&self, stream: &StreamId, health: &StreamHealth);
}

/// Builds a fresh [`Pipeline`] for each start of a supervised stream.
pub type PipelineFactory = Box<dyn FnMut() -> Result<Pipeline> + Send>;

/// Keeps one stream running: runs its pipeline, and when the pipeline stops with an error
/// (fatal, invalid, or a panic) builds a new one and starts it again after a capped
/// exponential backoff, telling a [`StreamMonitor`] each change. A stream is never silently
/// gone: it is running, restarting (with the error and the wait), in standby while another
/// instance's lease is live (pipelines with a [`Claim`](crate::Claim), which never take a live
/// lease), fenced by another instance (a `Conflict` without a claim: not restarted, so two
/// instances do not take the stream from each other in turn), or stopped on request.
pub struct Supervisor {
    stream: StreamId,
    build: PipelineFactory,
    observer: Option<Arc<dyn CycleObserver>>,
    monitor: Option<Arc<dyn StreamMonitor>>,
    restart_initial: Duration,
    restart_max: Duration,
    standby_retry: Duration,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("stream", &self.stream)
            .field("restart_initial", &self.restart_initial)
            .field("restart_max", &self.restart_max)
            .finish_non_exhaustive()
    }
}

/// Forwards cycles to the embedding's observer and marks the stream running after a success.
struct Watch {
    inner: Option<Arc<dyn CycleObserver>>,
    monitor: Option<Arc<dyn StreamMonitor>>,
    running: AtomicBool,
    failures: Arc<AtomicU32>,
}

impl CycleObserver for Watch {
    fn cycle(&self, report: &CycleReport<'_>) {
        if let Some(inner) = &self.inner {
            inner.cycle(report);
        }
        if report.outcome.is_ok() {
            // A successful cycle ends a run of restarts: the next failure waits the first step.
            self.failures.store(0, Ordering::Relaxed);
            if !self.running.swap(true, Ordering::Relaxed) {
                set(&self.monitor, report.stream, StreamHealth::Running);
            }
        }
    }
}

fn set(monitor: &Option<Arc<dyn StreamMonitor>>, stream: &StreamId, health: StreamHealth) {
    if let Some(m) = monitor {
        m.health(stream, &health);
    }
}

impl Supervisor {
    /// Supervises `stream`, building each run's pipeline with `build`; restarts wait from 1 s,
    /// doubling up to 5 min.
    pub fn new(stream: StreamId, build: PipelineFactory) -> Self {
        Self {
            stream,
            build,
            observer: None,
            monitor: None,
            restart_initial: Duration::from_secs(1),
            restart_max: Duration::from_secs(300),
            standby_retry: Duration::from_secs(10),
        }
    }

    /// Tells `observer` about every cycle of every run.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn CycleObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Tells `monitor` about every change of the stream's health.
    #[must_use]
    pub fn with_monitor(mut self, monitor: Arc<dyn StreamMonitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// Restart backoff: the first wait, doubling up to `max` (with jitter, never below a tenth
    /// of the step).
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.restart_initial = initial.max(Duration::from_millis(1));
        self.restart_max = max.max(self.restart_initial);
        self
    }

    /// How often a stream in standby claims its lease again (default 10 s; a third of the
    /// lease's time to live bounds how long a dead holder keeps its streams unclaimed).
    #[must_use]
    pub fn with_standby_retry(mut self, every: Duration) -> Self {
        self.standby_retry = every.max(Duration::from_millis(1));
        self
    }

    /// The delay before restart number `restarts` (1-based).
    fn delay(&self, restarts: u32) -> Duration {
        super::policy::backoff(self.restart_initial, self.restart_max, restarts, jitter())
    }

    /// Runs the stream until `shutdown` completes (`Ok`), or until it is fenced by another
    /// instance (the `Conflict`) when its pipelines take the stream without a
    /// [`Claim`](crate::Claim); with one, a conflict is a standby and the stream is claimed
    /// again every [`with_standby_retry`](Self::with_standby_retry). A run in flight at shutdown is abandoned, which the algorithm
    /// makes safe (see [`Pipeline::run`]).
    ///
    /// # Errors
    /// [`Error::Conflict`] when another instance took the stream.
    pub async fn run<F>(mut self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let failures = Arc::new(AtomicU32::new(0));
        let mut restarts: u64 = 0;
        set(&self.monitor, &self.stream, StreamHealth::Starting);
        loop {
            let watch = Arc::new(Watch {
                inner: self.observer.clone(),
                monitor: self.monitor.clone(),
                running: AtomicBool::new(false),
                failures: failures.clone(),
            });
            let mut claims = false;
            let error = match (self.build)() {
                Err(e) => e,
                Ok(pipeline) => {
                    claims = pipeline.claim().is_some();
                    // On its own task, so that a panic in an adapter ends this run, not the
                    // process.
                    let pipeline = pipeline.with_observer(watch);
                    let stop = Arc::new(tokio::sync::Notify::new());
                    let told = stop.clone();
                    let mut task = tokio::spawn(pipeline.run(async move { told.notified().await }));
                    let joined = tokio::select! {
                        biased;
                        () = &mut shutdown => {
                            // The pipeline abandons its cycle and releases its lease.
                            stop.notify_one();
                            if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
                                task.abort();
                            }
                            set(&self.monitor, &self.stream, StreamHealth::Stopped);
                            return Ok(());
                        }
                        joined = &mut task => joined,
                    };
                    match joined {
                        Ok(Ok(())) => Error::fatal(
                            "supervisor",
                            format!(
                                "the pipeline of {} returned without a shutdown",
                                self.stream
                            ),
                        ),
                        Ok(Err(e)) => e,
                        Err(join) => Error::fatal(
                            "supervisor",
                            format!("the pipeline of {} panicked: {join}", self.stream),
                        ),
                    }
                }
            };
            let chain = error_chain(&error);
            if error.is_conflict() && claims {
                let retry_in = self.standby_retry;
                info!(stream = %self.stream, reason = %chain, retry_in_ms = retry_in.as_millis() as u64, "stream in standby: another instance holds it");
                set(
                    &self.monitor,
                    &self.stream,
                    StreamHealth::Standby {
                        error: chain,
                        retry_in,
                    },
                );
                if stopped_during(&self.monitor, &self.stream, &mut shutdown, retry_in).await {
                    return Ok(());
                }
                continue;
            }
            if error.is_conflict() {
                error!(stream = %self.stream, error = %chain, "stream fenced by another instance; not restarting it");
                set(
                    &self.monitor,
                    &self.stream,
                    StreamHealth::Fenced { error: chain },
                );
                return Err(error);
            }
            restarts += 1;
            let attempt = failures.fetch_add(1, Ordering::Relaxed) + 1;
            let retry_in = self.delay(attempt);
            error!(stream = %self.stream, error = %chain, restarts, retry_in_ms = retry_in.as_millis() as u64, "stream stopped; restarting it");
            set(
                &self.monitor,
                &self.stream,
                StreamHealth::Restarting {
                    restarts,
                    error: chain,
                    retry_in,
                },
            );
            if stopped_during(&self.monitor, &self.stream, &mut shutdown, retry_in).await {
                return Ok(());
            }
            info!(stream = %self.stream, restarts, "restarting stream");
        }
    }
}

/// Waits `pause` unless `shutdown` completes first (then reports the stream stopped and says
/// so).
async fn stopped_during<F: Future<Output = ()>>(
    monitor: &Option<Arc<dyn StreamMonitor>>,
    stream: &StreamId,
    shutdown: &mut std::pin::Pin<&mut F>,
    pause: Duration,
) -> bool {
    tokio::select! {
        biased;
        () = shutdown.as_mut() => {
            set(monitor, stream, StreamHealth::Stopped);
            true
        }
        () = tokio::time::sleep(pause) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::cursors::OverlappingWindows;
    use crate::domain::schema::DatasetSchema;
    use crate::domain::{Dataset, Position, Read, ReadRequest};
    use crate::ports::{AnalyticsSink, ArchiveSink, CheckpointStore, Clock, EventSource};
    use crate::testing::samples::audit_event;
    use crate::testing::{
        ManualClock, MemoryAnalytics, MemoryArchive, MemoryCheckpointStore, MemorySource,
    };
    use crate::{Checkpoint, Claim, Policy};

    /// What the next reads of a [`Scripted`] source do before it reads for real.
    #[derive(Clone, Copy, Debug)]
    enum Act {
        Fatal,
        Panic,
    }

    /// A source that fails or panics as its script says, then reads its memory source.
    struct Scripted {
        inner: Arc<dyn EventSource>,
        script: Mutex<VecDeque<Act>>,
    }

    #[async_trait]
    impl EventSource for Scripted {
        fn stream(&self) -> &StreamId {
            self.inner.stream()
        }
        fn schema(&self) -> &Arc<DatasetSchema> {
            self.inner.schema()
        }
        async fn read(&self, at: &Position, request: &ReadRequest) -> Result<Option<Read>> {
            let act = self.script.lock().unwrap().pop_front();
            match act {
                Some(Act::Fatal) => Err(Error::fatal("scripted", "permission denied")),
                Some(Act::Panic) => panic!("scripted panic in an adapter"),
                None => self.inner.read(at, request).await,
            }
        }
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<StreamHealth>>);

    impl StreamMonitor for Seen {
        fn health(&self, _: &StreamId, health: &StreamHealth) {
            self.0.lock().unwrap().push(health.clone());
        }
    }

    impl Seen {
        fn names(&self) -> Vec<&'static str> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(StreamHealth::as_str)
                .collect()
        }
    }

    struct World {
        stream: StreamId,
        memory: Arc<MemorySource>,
        source: Arc<Scripted>,
        store: Arc<MemoryCheckpointStore>,
        analytics: Arc<MemoryAnalytics>,
        archive: Arc<MemoryArchive>,
        clock: Arc<ManualClock>,
        policy: Policy,
    }

    fn t(s: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn world(script: &[Act]) -> World {
        let stream = StreamId::new("audit-v1/account/sup").unwrap();
        let clock = ManualClock::new(t(3600));
        let memory = Arc::new(MemorySource::new(
            stream.clone(),
            Dataset::audit_logs(),
            clock.clone(),
        ));
        for n in 0..20 {
            memory.push(audit_event("sup", n, t(n as i64 * 10)), t(0));
        }
        let source = Arc::new(Scripted {
            inner: Arc::new(OverlappingWindows::new(memory.clone())),
            script: Mutex::new(script.iter().copied().collect()),
        });
        let mut policy = Policy::new(t(0));
        policy.poll_interval = Duration::from_millis(5);
        World {
            stream,
            memory,
            source,
            store: Arc::new(MemoryCheckpointStore::new()),
            analytics: Arc::new(MemoryAnalytics::new()),
            archive: Arc::new(MemoryArchive::new(clock.clone())),
            clock,
            policy,
        }
    }

    impl World {
        fn factory(&self) -> PipelineFactory {
            let (source, store, analytics, archive, clock, policy) = (
                self.source.clone() as Arc<dyn EventSource>,
                self.store.clone() as Arc<dyn CheckpointStore>,
                self.analytics.clone() as Arc<dyn AnalyticsSink>,
                self.archive.clone() as Arc<dyn ArchiveSink>,
                self.clock.clone() as Arc<dyn Clock>,
                self.policy.clone(),
            );
            Box::new(move || {
                Pipeline::new(
                    source.clone(),
                    store.clone(),
                    analytics.clone(),
                    archive.clone(),
                    clock.clone(),
                    policy.clone(),
                )
            })
        }

        /// The factory of a daemon that claims the stream as `holder`.
        fn claiming(&self, holder: &str, ttl: Duration) -> PipelineFactory {
            let mut build = self.factory();
            let claim = Claim {
                holder: holder.to_owned(),
                ttl,
                take_over: false,
            };
            Box::new(move || Ok(build()?.with_claim(claim.clone())))
        }

        /// Waits until `holder` holds the stream (`None`: nobody).
        async fn wait_for_holder(&self, holder: Option<&str>) {
            for _ in 0..2_000 {
                if self.store.holder(&self.stream).as_deref() == holder {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!(
                "{holder:?} never held the stream (holder {:?})",
                self.store.holder(&self.stream)
            );
        }

        async fn wait_for_events(&self, n: usize) {
            for _ in 0..2_000 {
                if self.analytics.event_ids(&self.stream).len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("the stream never stored {n} events");
        }
    }

    #[tokio::test]
    async fn a_stream_that_fails_or_panics_is_restarted_with_backoff_and_loses_nothing() {
        let w = world(&[Act::Fatal, Act::Panic, Act::Fatal]);
        let seen = Arc::new(Seen::default());
        let supervisor = Supervisor::new(w.stream.clone(), w.factory())
            .with_monitor(seen.clone())
            .with_backoff(Duration::from_millis(2), Duration::from_millis(8));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(supervisor.run(async {
            let _ = stopped.await;
        }));
        w.wait_for_events(20).await;
        let _ = stop.send(());
        task.await.unwrap().unwrap();

        let mut ids = w.analytics.event_ids(&w.stream);
        let stored = ids.len();
        ids.dedup();
        assert_eq!(stored, ids.len(), "an event stored twice");
        assert_eq!(ids, w.memory.all_ids(), "input = output");
        assert_eq!(
            seen.names(),
            [
                "starting",
                "restarting",
                "restarting",
                "restarting",
                "running",
                "stopped"
            ]
        );
        let restarts: Vec<u64> = seen
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|h| match h {
                StreamHealth::Restarting {
                    restarts, error, ..
                } => {
                    assert!(
                        error.contains("permission denied") || error.contains("panicked"),
                        "{error}"
                    );
                    Some(*restarts)
                }
                _ => None,
            })
            .collect();
        assert_eq!(restarts, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_stream_fenced_by_another_instance_is_reported_and_not_taken_back() {
        let w = world(&[]);
        let seen = Arc::new(Seen::default());
        let supervisor = Supervisor::new(w.stream.clone(), w.factory()).with_monitor(seen.clone());
        let task = tokio::spawn(supervisor.run(std::future::pending()));
        w.wait_for_events(20).await;
        // Another instance takes the lease; the supervised one meets it on its next commit.
        let newer = w.store.acquire(&w.stream, t(0)).await.unwrap();
        // A new event after the watermark, and time for a window that holds it.
        w.memory.push(audit_event("sup", 99, t(3_700)), t(0));
        w.clock.advance(Duration::from_secs(3_600));
        let result = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the fenced stream stopped")
            .unwrap();
        assert!(result.unwrap_err().is_conflict());
        assert_eq!(seen.names(), ["starting", "running", "fenced"]);
        let after = w.store.load(&w.stream).await.unwrap().unwrap();
        assert_eq!(
            after.epoch, newer.epoch,
            "the lease stays with the newer instance"
        );
    }

    #[tokio::test]
    async fn a_daemon_whose_stream_was_taken_waits_in_standby_and_takes_it_back_when_released() {
        let w = world(&[]);
        let seen = Arc::new(Seen::default());
        let ttl = Duration::from_millis(300);
        let supervisor = Supervisor::new(w.stream.clone(), w.claiming("daemon", ttl))
            .with_monitor(seen.clone())
            .with_standby_retry(Duration::from_millis(50));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(supervisor.run(async {
            let _ = stopped.await;
        }));
        w.wait_for_events(20).await;
        w.wait_for_holder(Some("daemon")).await;

        // A one-off run takes the stream over (`once --take-over`) and holds it a while: the
        // daemon meets the take-over at its next renewal and waits in standby, not fenced.
        let once = Claim {
            holder: "once".to_owned(),
            ttl: Duration::from_secs(60),
            take_over: true,
        };
        let taken = w.store.claim(&w.stream, t(0), &once).await.unwrap();
        tokio::time::sleep(ttl * 2).await;
        assert_eq!(w.store.holder(&w.stream).as_deref(), Some("once"));
        assert!(
            seen.names().contains(&"standby"),
            "the daemon reports standby: {:?}",
            seen.names()
        );
        assert!(!task.is_finished(), "the daemon keeps running");

        // Released: the daemon takes the stream back and goes on with new events.
        w.store.release(&w.stream, taken.lease).await.unwrap();
        w.wait_for_holder(Some("daemon")).await;
        w.memory.push(audit_event("sup", 99, t(3_700)), t(0));
        w.clock.advance(Duration::from_secs(3_600));
        w.wait_for_events(21).await;

        // Stopped, it releases the lease: another instance may take the stream at once.
        let _ = stop.send(());
        task.await.unwrap().unwrap();
        assert_eq!(w.store.holder(&w.stream), None, "released at shutdown");
        let mut ids = w.analytics.event_ids(&w.stream);
        let stored = ids.len();
        ids.dedup();
        assert_eq!(stored, ids.len(), "an event stored twice");
        assert_eq!(ids, w.memory.all_ids(), "input = output");
        let names = seen.names();
        assert_eq!(names.first(), Some(&"starting"));
        assert_eq!(names.last(), Some(&"stopped"));
        assert!(!names.contains(&"fenced"), "{names:?}");
    }

    /// A store whose first claim is granted but answered late (a reply lost in flight).
    struct LateClaims(Arc<MemoryCheckpointStore>, std::sync::atomic::AtomicBool);

    #[async_trait]
    impl CheckpointStore for LateClaims {
        async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
            self.0.acquire(stream, initial).await
        }
        async fn load(&self, stream: &StreamId) -> Result<Option<Checkpoint>> {
            self.0.load(stream).await
        }
        async fn commit(&self, guard: crate::CommitGuard, next: &Checkpoint) -> Result<()> {
            self.0.commit(guard, next).await
        }
        async fn claim(&self, s: &StreamId, initial: Timestamp, c: &Claim) -> Result<Checkpoint> {
            let granted = self.0.claim(s, initial, c).await;
            if !self.1.swap(true, std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            granted
        }
        async fn renew(&self, stream: &StreamId, lease: u64, ttl: Duration) -> Result<()> {
            self.0.renew(stream, lease, ttl).await
        }
        async fn release(&self, stream: &StreamId, lease: u64) -> Result<()> {
            self.0.release(stream, lease).await
        }
    }

    #[tokio::test]
    async fn a_claim_granted_while_shutting_down_is_released_too() {
        let w = world(&[]);
        let store = Arc::new(LateClaims(w.store.clone(), false.into()));
        let pipeline = Pipeline::new(
            w.source.clone(),
            store,
            w.analytics.clone(),
            w.archive.clone(),
            w.clock.clone(),
            w.policy.clone(),
        )
        .unwrap()
        .with_claim(Claim {
            holder: "daemon".to_owned(),
            ttl: Duration::from_secs(60),
            take_over: false,
        });
        // The shutdown comes while the granted claim's answer is still on its way.
        pipeline
            .run(tokio::time::sleep(Duration::from_millis(200)))
            .await
            .unwrap();
        assert_eq!(
            w.store.holder(&w.stream),
            None,
            "the claim the shutdown interrupted was released, not left to expire"
        );
    }
}
