//! Fault injection at port calls, for property tests of the algorithm and for adapters' own
//! failure tests.
//!
//! Every call through a [`Faulty`] wrapper sharing one [`FaultPlan`] gets a number (0, 1, 2…).
//! The plan says which numbers fail and how: before or after the call's effect, as an error the
//! pipeline sees or as a crash (the test then drops the pipeline and builds a new one from the
//! stores), or by letting another instance steal the lease at that moment.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::domain::schema::DatasetSchema;
use crate::domain::{
    Batch, Checkpoint, CommitGuard, Manifest, Position, Read, ReadRequest, StreamId, Timestamp,
};
use crate::error::{Error, Result};
use crate::ports::{
    AnalyticsSink, ArchiveSink, CheckpointStore, EventSource, StageRequest, WriteReport,
};

/// What happens at one port call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Fail with a transient error; the call has no effect.
    FailBefore,
    /// Make the call, then fail with a transient error: the effect happened, the caller does not
    /// know it (a lost response, a COMMIT whose outcome is unknown).
    FailAfter,
    /// Like `FailBefore`, and mark the plan crashed: the instance dies here.
    CrashBefore,
    /// Like `FailAfter`, and mark the plan crashed.
    CrashAfter,
    /// Before the call, run the steal hook (another instance takes the lease and works), then
    /// make the call: this instance is now a zombie.
    Steal,
}

/// The hook a [`Fault::Steal`] runs.
pub type StealHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Default)]
struct PlanState {
    calls: u64,
    faults: BTreeMap<u64, Fault>,
    crashed: bool,
    injected: Vec<(u64, &'static str, Fault)>,
    steal: Option<StealHook>,
}

/// Which port calls fail, shared by the wrappers of one instance (and its restarts).
#[derive(Default)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
}

impl std::fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("FaultPlan")
            .field("calls", &s.calls)
            .field("faults", &s.faults)
            .field("injected", &s.injected)
            .finish_non_exhaustive()
    }
}

impl FaultPlan {
    /// A plan injecting `faults` at the given call numbers.
    pub fn new(faults: impl IntoIterator<Item = (u64, Fault)>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(PlanState {
                faults: faults.into_iter().collect(),
                ..PlanState::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlanState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets what a [`Fault::Steal`] runs.
    pub fn on_steal(&self, hook: StealHook) {
        self.lock().steal = Some(hook);
    }

    /// Whether a crash was injected since the last call, and resets the flag.
    pub fn take_crash(&self) -> bool {
        std::mem::take(&mut self.lock().crashed)
    }

    /// Port calls numbered so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Faults injected so far: call number, port method, fault.
    pub fn injected(&self) -> Vec<(u64, &'static str, Fault)> {
        self.lock().injected.clone()
    }

    /// Stops injecting: the remaining faults are forgotten.
    pub fn disarm(&self) {
        self.lock().faults.clear();
    }

    /// Numbers the call and returns its fault, running the steal hook first if it is one.
    async fn enter(&self, method: &'static str) -> Option<Fault> {
        let (fault, hook) = {
            let mut s = self.lock();
            let n = s.calls;
            s.calls += 1;
            let fault = s.faults.remove(&n);
            if let Some(f) = fault {
                s.injected.push((n, method, f));
                if matches!(f, Fault::CrashBefore | Fault::CrashAfter) {
                    s.crashed = true;
                }
            }
            let hook = match fault {
                Some(Fault::Steal) => s.steal.clone(),
                _ => None,
            };
            (fault, hook)
        };
        if let Some(hook) = hook {
            hook().await;
        }
        fault
    }

    /// Runs `call` under the plan.
    async fn apply<T: Send>(
        &self,
        method: &'static str,
        call: impl std::future::Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        let injected = |when: &str| {
            Err(Error::transient(
                method,
                format!("injected fault {when} {method}"),
            ))
        };
        match self.enter(method).await {
            Some(Fault::FailBefore | Fault::CrashBefore) => injected("before"),
            Some(Fault::FailAfter | Fault::CrashAfter) => {
                // The effect happens; its result is lost.
                let _ = call.await;
                injected("after")
            }
            Some(Fault::Steal) | None => call.await,
        }
    }
}

/// A port wrapped so that its calls go through a [`FaultPlan`].
pub struct Faulty<T: ?Sized> {
    inner: Arc<T>,
    plan: Arc<FaultPlan>,
}

impl<T: ?Sized> Faulty<T> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<T>, plan: Arc<FaultPlan>) -> Arc<Self> {
        Arc::new(Self { inner, plan })
    }
}

#[async_trait]
impl<T: EventSource + ?Sized> EventSource for Faulty<T> {
    fn stream(&self) -> &StreamId {
        self.inner.stream()
    }

    fn schema(&self) -> &Arc<DatasetSchema> {
        self.inner.schema()
    }

    async fn read(&self, at: &Position, request: &ReadRequest) -> Result<Option<Read>> {
        self.plan
            .apply("source.read", self.inner.read(at, request))
            .await
    }
}

#[async_trait]
impl<T: CheckpointStore + ?Sized> CheckpointStore for Faulty<T> {
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
        self.plan
            .apply("store.acquire", self.inner.acquire(stream, initial))
            .await
    }

    async fn load(&self, stream: &StreamId) -> Result<Option<Checkpoint>> {
        self.plan.apply("store.load", self.inner.load(stream)).await
    }

    async fn commit(&self, guard: CommitGuard, next: &Checkpoint) -> Result<()> {
        self.plan
            .apply("store.commit", self.inner.commit(guard, next))
            .await
    }

    async fn claim(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: &crate::ports::Claim,
    ) -> Result<Checkpoint> {
        self.plan
            .apply("store.claim", self.inner.claim(stream, initial, claim))
            .await
    }

    async fn renew(&self, stream: &StreamId, lease: u64, ttl: std::time::Duration) -> Result<()> {
        self.plan
            .apply("store.renew", self.inner.renew(stream, lease, ttl))
            .await
    }

    async fn release(&self, stream: &StreamId, lease: u64) -> Result<()> {
        self.inner.release(stream, lease).await
    }
}

#[async_trait]
impl<T: AnalyticsSink + ?Sized> AnalyticsSink for Faulty<T> {
    async fn write(&self, batch: &Batch) -> Result<WriteReport> {
        self.plan
            .apply("analytics.write", self.inner.write(batch))
            .await
    }
}

#[async_trait]
impl<T: ArchiveSink + ?Sized> ArchiveSink for Faulty<T> {
    async fn stage(&self, batch: &Batch, request: StageRequest) -> Result<Manifest> {
        self.plan
            .apply("archive.stage", self.inner.stage(batch, request))
            .await
    }

    async fn publish(&self, manifest: &Manifest) -> Result<()> {
        self.plan
            .apply("archive.publish", self.inner.publish(manifest))
            .await
    }

    async fn sweep(&self, checkpoint: &Checkpoint, min_age: Duration) -> Result<u64> {
        self.plan
            .apply("archive.sweep", self.inner.sweep(checkpoint, min_age))
            .await
    }

    async fn newest_after(&self, stream: &StreamId, seq: u64) -> Result<Option<Manifest>> {
        self.plan
            .apply("archive.newest_after", self.inner.newest_after(stream, seq))
            .await
    }
}
