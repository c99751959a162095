//! The exactly-once commit algorithm (`docs/architecture.md`, `exactly-once.md`), written
//! against the four ports only.

mod policy;
mod supervise;

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::domain::{
    Batch, Checkpoint, Epoch, Event, EventId, Manifest, Position, Quarantined, Read, ReadRequest,
    StreamId, Timestamp,
};
use crate::error::{Error, Result, error_chain};
use crate::ports::{
    AnalyticsSink, ArchiveSink, CheckpointStore, Claim, Clock, EventSource, StageRequest,
};

pub use policy::Policy;
pub use supervise::{PipelineFactory, Progress, StreamHealth, StreamMonitor, Supervisor};

/// What one cycle did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CycleOutcome {
    /// Nothing to read yet: the next window would end before it starts.
    Idle,
    /// The window held no new record; only the watermark moved.
    Advanced {
        /// The new watermark.
        watermark: Timestamp,
        /// Whether more settled time is waiting to be read right now.
        backlog: bool,
    },
    /// A batch was committed and published.
    Committed {
        /// Its sequence number.
        seq: u64,
        /// New events in it.
        events: usize,
        /// New quarantined records in it.
        quarantined: usize,
        /// The new watermark.
        watermark: Timestamp,
        /// Whether more settled time is waiting to be read right now.
        backlog: bool,
    },
}

impl CycleOutcome {
    /// Whether the pipeline should run again at once rather than wait for the poll interval.
    pub fn has_backlog(&self) -> bool {
        match self {
            Self::Idle => false,
            Self::Advanced { backlog, .. } | Self::Committed { backlog, .. } => *backlog,
        }
    }
}

/// What one cycle did and how long it took, for metrics (see [`CycleObserver`]).
#[derive(Debug)]
pub struct CycleReport<'a> {
    /// The stream.
    pub stream: &'a StreamId,
    /// The outcome, or the error that ended the cycle.
    pub outcome: std::result::Result<&'a CycleOutcome, &'a Error>,
    /// Time the whole cycle took.
    pub duration: Duration,
    /// Time the batch commit (the compare-and-set with the new manifest) took, when there was
    /// one.
    pub commit_duration: Option<Duration>,
    /// The stream's watermark after the cycle, when known.
    pub watermark: Option<Timestamp>,
}

/// Told about every cycle of a [`Pipeline`]: the hook for metrics. It runs inline, so it must
/// be quick and must not fail.
pub trait CycleObserver: Send + Sync {
    /// One cycle ended.
    fn cycle(&self, report: &CycleReport<'_>);
}

/// Where this instance stands with its stream's lease.
#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per pipeline")]
enum Lease {
    /// Not acquired yet.
    None,
    /// Held, and this is the stored checkpoint as of the last successful call.
    Held(Checkpoint),
    /// Held as `epoch` with lease token `lease`, but a call failed: reload before trusting
    /// anything.
    Stale(Epoch, u64),
    /// Another instance took the stream; this one must stop.
    Fenced,
}

impl Lease {
    /// What is known of the lease held as `epoch` with token `lease` after a call failed with
    /// `error`: fenced by a conflict, else to be reloaded.
    fn after(error: &Error, epoch: Epoch, lease: u64) -> Self {
        if error.is_conflict() {
            Self::Fenced
        } else {
            Self::Stale(epoch, lease)
        }
    }
}

/// Moves one stream's events from an [`EventSource`] into an [`AnalyticsSink`] and an
/// [`ArchiveSink`], exactly once, with progress in a [`CheckpointStore`].
///
/// One cycle ([`Pipeline::run_once`]):
/// 0. lease: the first cycle acquires a new epoch, fencing older instances;
/// 1. recover: publish a pending manifest left by a crash, then clear it;
/// 2. plan and 3. read, in one call of the source: from the checkpoint's position the
///    source's cursor kind plans the window or objects, drops what is committed, cuts to the
///    batch caps (see [`crate::cursors`]), and returns the position the batch completes;
/// 4. write to analytics (idempotent);
/// 5. stage the archive objects under keys carrying the epoch;
/// 6. commit the checkpoint (compare-and-set on `(seq, epoch)`) with the new position and the
///    manifest as pending;
/// 7. publish: copy staged objects to final keys, write the manifest, clear pending.
///
/// Any failure before 6 leaves nothing committed and the cycle is redone; between 6 and 7 the
/// next cycle (of this or any instance) publishes the pending manifest; a `Conflict` means
/// another instance holds the stream and this one stops.
pub struct Pipeline {
    source: Arc<dyn EventSource>,
    store: Arc<dyn CheckpointStore>,
    analytics: Arc<dyn AnalyticsSink>,
    archive: Arc<dyn ArchiveSink>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    lease: Lease,
    cycles: u64,
    observer: Option<Arc<dyn CycleObserver>>,
    last_commit: Option<Duration>,
    read_ahead: Option<ReadAhead>,
    claim: Option<Claim>,
    /// When the lease was last claimed or renewed.
    renewed: Option<tokio::time::Instant>,
    /// A claim was sent and its lease is not held yet (see [`Pipeline::stop`]).
    claiming: bool,
}

/// The next batch's read, started while the current batch is written, staged and committed:
/// the read from the position the current batch will commit. A source's read depends only on
/// its position, its request and what the source holds (the port's contract), so the answer
/// is as good as one made after the commit; it is used only if the checkpoint the next cycle
/// starts from is at that position, and dropped (the task aborted) otherwise. At most one
/// batch is read ahead, so memory stays at two batches.
struct ReadAhead {
    at: Position,
    task: tokio::task::JoinHandle<Result<Option<Read>>>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stream", self.source.stream())
            .field("policy", &self.policy)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Wires a pipeline for the source's stream.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the policy is invalid (see [`Policy::validate`]).
    pub fn new(
        source: Arc<dyn EventSource>,
        store: Arc<dyn CheckpointStore>,
        analytics: Arc<dyn AnalyticsSink>,
        archive: Arc<dyn ArchiveSink>,
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Result<Self> {
        policy.validate()?;
        Ok(Self {
            source,
            store,
            analytics,
            archive,
            clock,
            policy,
            lease: Lease::None,
            cycles: 0,
            observer: None,
            last_commit: None,
            read_ahead: None,
            claim: None,
            renewed: None,
            claiming: false,
        })
    }

    /// The same pipeline, telling `observer` about every cycle.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn CycleObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same pipeline, taking its stream with a lease for `claim.holder`
    /// ([`CheckpointStore::claim`]) instead of unconditionally: the first cycle fails with a
    /// `Conflict` while another holder's lease is live (unless `claim.take_over`), and the
    /// lease is renewed every `claim.ttl / 3`, between cycles and while idle.
    #[must_use]
    pub fn with_claim(mut self, claim: Claim) -> Self {
        self.claim = Some(claim);
        self
    }

    /// The claim this pipeline takes its stream with, if any.
    pub fn claim(&self) -> Option<&Claim> {
        self.claim.as_ref()
    }

    /// Ends this instance's lease (a one-off run that finished), so that a daemon waiting in
    /// standby takes the stream at once. Nothing to do without a claim or a lease.
    ///
    /// # Errors
    /// The store's.
    pub async fn release(&mut self) -> Result<()> {
        let lease = match &self.lease {
            Lease::Held(cp) => cp.lease,
            Lease::Stale(_, lease) => *lease,
            Lease::None | Lease::Fenced => return Ok(()),
        };
        if self.claim.is_none() {
            return Ok(());
        }
        self.read_ahead = None;
        self.lease = Lease::None;
        self.store.release(self.source.stream(), lease).await
    }

    /// Renews the lease when a third of its time has passed since the last claim or renewal.
    async fn keep_alive(&mut self) -> Result<()> {
        let (Some(claim), Lease::Held(cp)) = (&self.claim, &self.lease) else {
            return Ok(());
        };
        if self.renewed.is_some_and(|at| at.elapsed() < claim.ttl / 3) {
            return Ok(());
        }
        let (stream, lease, ttl, epoch) = (cp.stream.clone(), cp.lease, claim.ttl, cp.epoch);
        match self.store.renew(&stream, lease, ttl).await {
            Ok(()) => {
                self.renewed = Some(tokio::time::Instant::now());
                Ok(())
            }
            Err(e) => {
                self.lease = Lease::after(&e, epoch, lease);
                Err(e)
            }
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The epoch this instance holds, once it has acquired the lease.
    pub fn epoch(&self) -> Option<Epoch> {
        match &self.lease {
            Lease::Held(cp) => Some(cp.epoch),
            Lease::Stale(epoch, _) => Some(*epoch),
            Lease::None | Lease::Fenced => None,
        }
    }

    /// Runs one cycle.
    ///
    /// # Errors
    /// [`Error::Conflict`] when another instance holds the stream (stop this one);
    /// [`Error::Transient`] when a retry may succeed (the next call reloads the checkpoint
    /// first); [`Error::Fatal`] or [`Error::Invalid`] when it cannot.
    pub async fn run_once(&mut self) -> Result<CycleOutcome> {
        let started = std::time::Instant::now();
        self.last_commit = None;
        let result = self.run_cycle().await;
        if let Some(observer) = &self.observer {
            let watermark = match &self.lease {
                Lease::Held(cp) => Some(cp.watermark),
                _ => None,
            };
            observer.cycle(&CycleReport {
                stream: self.source.stream(),
                outcome: result.as_ref(),
                duration: started.elapsed(),
                commit_duration: self.last_commit,
                watermark,
            });
        }
        result
    }

    async fn run_cycle(&mut self) -> Result<CycleOutcome> {
        self.keep_alive().await?;
        let checkpoint = self.checkpoint().await?;
        let (epoch, lease) = (checkpoint.epoch, checkpoint.lease);
        let result = self.cycle(checkpoint).await;
        self.cycles += 1;
        match result {
            Ok((checkpoint, outcome)) => {
                self.lease = Lease::Held(checkpoint);
                Ok(outcome)
            }
            Err(e) => {
                self.lease = Lease::after(&e, epoch, lease);
                Err(e)
            }
        }
    }

    /// Runs cycles until `shutdown` completes, waiting the poll interval when caught up and
    /// backing off after transient failures. A cycle in flight when `shutdown` completes is
    /// abandoned, which the algorithm makes safe: whatever it did not commit is redone, and a
    /// commit it made is published by the next start. With a claim the lease is then released.
    ///
    /// # Errors
    /// The first error that is not transient: a `Conflict` (another instance took the stream) or
    /// a fatal one.
    pub async fn run<F>(mut self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let result = tokio::select! {
                biased;
                () = &mut shutdown => return self.stop().await,
                result = self.run_once() => result,
            };
            let pause = match result {
                Ok(outcome) => {
                    failures = 0;
                    if outcome.has_backlog() {
                        Duration::ZERO
                    } else {
                        self.policy.poll_interval
                    }
                }
                Err(e) if e.is_transient() => {
                    failures = failures.saturating_add(1);
                    let pause = self.policy.retry_delay(failures, jitter());
                    warn!(
                        stream = %self.source.stream(),
                        failures,
                        retry_in_ms = pause.as_millis() as u64,
                        error = %error_chain(&e),
                        "cycle failed, retrying"
                    );
                    pause
                }
                Err(e) => return Err(e),
            };
            if pause.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            // Idle: sleep in slices short enough to renew the lease in time.
            let until = tokio::time::Instant::now() + pause;
            loop {
                let slice = self
                    .claim
                    .as_ref()
                    .map_or(pause, |c| (c.ttl / 3).max(Duration::from_millis(10)));
                let wake = until.min(tokio::time::Instant::now() + slice);
                tokio::select! {
                    biased;
                    () = &mut shutdown => return self.stop().await,
                    () = tokio::time::sleep_until(wake) => {}
                }
                match self.keep_alive().await {
                    Err(e) if e.is_conflict() => return Err(e),
                    // The next cycle reloads the checkpoint and renews again.
                    Err(e) => {
                        warn!(stream = %self.source.stream(), error = %error_chain(&e), "lease renewal failed")
                    }
                    Ok(()) => {}
                }
                if wake >= until {
                    break;
                }
            }
        }
    }

    /// A shutdown: the lease is released (within 2 s, else left to expire) so that another
    /// instance takes the stream at once.
    async fn stop(&mut self) -> Result<()> {
        match tokio::time::timeout(Duration::from_secs(2), self.release_all()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(stream = %self.source.stream(), error = %error_chain(&e), "lease not released; it expires by itself");
            }
            Err(_) => {
                warn!(stream = %self.source.stream(), "lease release timed out; it expires by itself");
            }
        }
        Ok(())
    }

    /// [`release`](Self::release), and a claim the shutdown interrupted: it may have been
    /// granted with a token this instance never saw, so it is claimed again (the same holder
    /// re-claims at once; never a take-over) and that lease released.
    async fn release_all(&mut self) -> Result<()> {
        self.release().await?;
        let Some(claim) = self.claim.clone().filter(|_| self.claiming) else {
            return Ok(());
        };
        self.claiming = false;
        let stream = self.source.stream().clone();
        let claim = Claim {
            take_over: false,
            ..claim
        };
        match self
            .store
            .claim(&stream, self.policy.start_at, &claim)
            .await
        {
            Ok(cp) => self.store.release(&stream, cp.lease).await,
            // Held by another: the interrupted claim was refused, nothing of ours is left.
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The checkpoint to start a cycle from: acquire on first use, reload after a failure.
    async fn checkpoint(&mut self) -> Result<Checkpoint> {
        let stream = self.source.stream().clone();
        match &self.lease {
            Lease::Held(cp) => Ok(cp.clone()),
            Lease::Fenced => Err(Error::conflict(
                &stream,
                "this instance was fenced by a newer lease",
            )),
            Lease::None => {
                let cp = match &self.claim {
                    Some(claim) => {
                        // Until the lease is held, a shutdown may have left a claim in the
                        // store that this instance never saw: stop() takes it back to end it.
                        self.claiming = true;
                        let cp = self
                            .store
                            .claim(&stream, self.policy.start_at, claim)
                            .await?;
                        self.renewed = Some(tokio::time::Instant::now());
                        cp
                    }
                    None => self.store.acquire(&stream, self.policy.start_at).await?,
                };
                info!(stream = %stream, epoch = %cp.epoch, seq = cp.seq, watermark = %cp.watermark, "lease acquired");
                let cp = reconcile(self.store.as_ref(), self.archive.as_ref(), cp).await?;
                self.lease = Lease::Held(cp.clone());
                self.claiming = false;
                Ok(cp)
            }
            Lease::Stale(epoch, lease) => {
                let (epoch, lease) = (*epoch, *lease);
                let Some(cp) = self.store.load(&stream).await? else {
                    // The store lost the stream (a new database, a deleted row): acquire it
                    // again, which restores the checkpoint from the archive.
                    self.lease = Lease::None;
                    return Err(Error::transient(
                        "checkpoint reload",
                        format!(
                            "the checkpoint of {stream} vanished from the store; acquiring the \
                             stream again"
                        ),
                    ));
                };
                if cp.epoch != epoch || cp.lease != lease {
                    self.lease = Lease::Fenced;
                    return Err(Error::conflict(
                        &stream,
                        format!(
                            "epoch {epoch} was fenced by epoch {} (lease {})",
                            cp.epoch,
                            if cp.lease == lease {
                                "the same"
                            } else {
                                "another"
                            }
                        ),
                    ));
                }
                self.lease = Lease::Held(cp.clone());
                Ok(cp)
            }
        }
    }

    async fn cycle(&mut self, mut cp: Checkpoint) -> Result<(Checkpoint, CycleOutcome)> {
        // 1. Recover a manifest committed but not yet published.
        if cp.pending.is_some() {
            cp = self.publish(cp).await?;
        }
        if self.cycles.is_multiple_of(self.policy.sweep_every_cycles) {
            self.sweep(&cp).await;
        }

        // 2-3. Read from the stream's position (the source plans its own window or objects).
        let at = cp.position();
        let read = match self.read_ahead.take() {
            Some(mut ahead) if ahead.at == at => match (&mut ahead.task).await {
                Ok(read) => read?,
                Err(join) => {
                    return Err(Error::fatal(
                        "event source",
                        format!("the read ahead of {} failed: {join}", cp.stream),
                    ));
                }
            },
            // Another position (a failed cycle, another instance's commit): read afresh.
            _ => self.source.read(&at, &self.read_request()).await?,
        };
        let Some(read) = read else {
            return Ok((cp, CycleOutcome::Idle));
        };
        let Read {
            window,
            events,
            quarantined,
            next: position,
            backlog,
        } = read;
        let (events, quarantined) = once_each(events, quarantined);
        if position.watermark < cp.watermark {
            return Err(Error::fatal(
                "event source",
                format!(
                    "the source broke its contract: it moved the watermark back from {} to {}",
                    cp.watermark, position.watermark
                ),
            ));
        }
        let watermark = position.watermark;
        if backlog {
            // More is waiting: read it while this batch is written.
            let (source, next, request) =
                (self.source.clone(), position.clone(), self.read_request());
            self.read_ahead = Some(ReadAhead {
                at: position.clone(),
                task: tokio::spawn(async move { source.read(&next, &request).await }),
            });
        }
        let batch = Batch {
            stream: cp.stream.clone(),
            schema: self.source.schema().clone(),
            window,
            events,
            quarantined,
        };

        if batch.is_empty() {
            let next = Checkpoint {
                watermark,
                cursor: position.cursor,
                ..cp.clone()
            };
            if next == cp {
                return Ok((cp, CycleOutcome::Idle));
            }
            let cp = self.commit(&cp, next).await?;
            debug!(stream = %cp.stream, watermark = %cp.watermark, "watermark advanced");
            return Ok((cp, CycleOutcome::Advanced { watermark, backlog }));
        }

        // 4 and 5, side by side: analytics (idempotent) and staging (under keys of this epoch,
        // final only once committed and published). Both finish before the commit; a failure of
        // either commits nothing (rows written are true events, staged objects are swept).
        let seq = cp.seq + 1;
        let request = StageRequest {
            seq,
            epoch: cp.epoch,
            prev: cp.chain_head,
            now: self.clock.now(),
        };
        // `join`, not `try_join`: a failure of one never cuts the other short half-way (a
        // write dropped mid-flight can leave a sink's connection in a state it cannot tell).
        let (report, manifest) = tokio::join!(
            self.analytics.write(&batch),
            self.archive.stage(&batch, request)
        );
        let (report, mut manifest) = (report?, manifest?);
        if manifest.seq != seq
            || manifest.epoch != cp.epoch
            || manifest.prev != cp.chain_head
            || manifest.stream != cp.stream
        {
            return Err(Error::fatal(
                "archive stage",
                "the archive sink returned a manifest for another seq, epoch, stream or chain head",
            ));
        }

        // 6. Commit, the manifest recording the position it commits (so that the archive alone
        // can restore the checkpoint).
        manifest.resume = Some(position.clone());
        let next = Checkpoint {
            seq,
            watermark,
            cursor: position.cursor,
            chain_head: manifest.hash(),
            pending: Some(manifest),
            ..cp.clone()
        };
        let commit_started = std::time::Instant::now();
        let cp = self.commit(&cp, next).await?;
        self.last_commit = Some(commit_started.elapsed());
        info!(
            stream = %cp.stream,
            seq,
            events = batch.events.len(),
            inserted = report.inserted,
            duplicates = report.duplicates,
            quarantined = batch.quarantined.len(),
            watermark = %cp.watermark,
            "batch committed"
        );

        // 7. Publish.
        let cp = self.publish(cp).await?;
        Ok((
            cp,
            CycleOutcome::Committed {
                seq,
                events: batch.events.len(),
                quarantined: batch.quarantined.len(),
                watermark,
                backlog,
            },
        ))
    }

    /// The request of a read made now.
    fn read_request(&self) -> ReadRequest {
        ReadRequest {
            now: self.clock.now(),
            lookback: self.policy.lookback,
            settle_delay: self.policy.settle_delay,
            max_span: self.policy.max_span,
            limits: self.policy.limits,
        }
    }

    /// Publishes the pending manifest and clears it (compare-and-set).
    async fn publish(&self, cp: Checkpoint) -> Result<Checkpoint> {
        let Some(manifest) = &cp.pending else {
            return Ok(cp);
        };
        self.archive.publish(manifest).await?;
        let next = Checkpoint {
            pending: None,
            ..cp.clone()
        };
        self.commit(&cp, next).await
    }

    /// Compare-and-set, resolving an unknown outcome by reloading the checkpoint.
    async fn commit(&self, current: &Checkpoint, next: Checkpoint) -> Result<Checkpoint> {
        current.check_successor(&next)?;
        let error = match self.store.commit(current.guard(), &next).await {
            Ok(()) => return Ok(next),
            Err(e) if e.is_conflict() => return Err(e),
            Err(e) => e,
        };
        // The outcome is unknown: the stored checkpoint says which way it went.
        match self.store.load(&current.stream).await {
            Ok(Some(stored)) if stored == next => {
                debug!(stream = %current.stream, "commit outcome resolved: applied");
                Ok(next)
            }
            Ok(Some(stored)) if stored.guard() == current.guard() => Err(error),
            Ok(Some(stored)) => Err(Error::conflict(
                &current.stream,
                format!(
                    "expected seq {} epoch {}, found seq {} epoch {}",
                    current.seq, current.epoch, stored.seq, stored.epoch
                ),
            )),
            Ok(None) => Err(Error::transient(
                "checkpoint commit",
                format!(
                    "the checkpoint of {} vanished from the store during the commit",
                    current.stream
                ),
            )),
            Err(_) => Err(error),
        }
    }

    /// Deletes stale staged objects; garbage only, so a failure is logged, not raised.
    async fn sweep(&self, cp: &Checkpoint) {
        match self.archive.sweep(cp, self.policy.sweep_min_age).await {
            Ok(0) => {}
            Ok(deleted) => info!(stream = %cp.stream, deleted, "stale staged objects swept"),
            Err(e) => warn!(stream = %cp.stream, error = %error_chain(&e), "sweep failed"),
        }
    }
}

/// Puts a just-acquired checkpoint in step with the archive, the source of truth: when the
/// archive holds batches the checkpoint does not know, a checkpoint with nothing committed (a
/// new database, an empty store, a relative SQLite path run from elsewhere) is restored from
/// the archive's newest manifest ([`Checkpoint::restored_from`]) and committed; a checkpoint
/// that has committed batches but fewer than the archive holds (a store restored from an older
/// backup) is refused, since its own rows and the archive's disagree: `cflogs rehydrate`
/// restores both ([`restore_checkpoint`]).
///
/// # Errors
/// [`Error::Fatal`] for the refusal or a manifest that cannot restore a checkpoint; the
/// archive's and the store's errors as they come.
pub async fn reconcile(
    store: &dyn CheckpointStore,
    archive: &dyn ArchiveSink,
    cp: Checkpoint,
) -> Result<Checkpoint> {
    let Some(newest) = archive.newest_after(&cp.stream, cp.seq).await? else {
        return Ok(cp);
    };
    // Another instance may have taken the stream and published since we acquired it: the
    // archive is then ahead of our copy, not of the store. A publish follows its commit, so a
    // store still holding our guard after the listing really is behind.
    match store.load(&cp.stream).await? {
        Some(stored) if stored.guard() == cp.guard() => {}
        Some(stored) => {
            return Err(Error::conflict(
                &cp.stream,
                format!(
                    "epoch {} was fenced by epoch {} while it compared its checkpoint with the \
                     archive",
                    cp.epoch, stored.epoch
                ),
            ));
        }
        None => {
            return Err(Error::fatal(
                "checkpoint",
                format!("the checkpoint of {} vanished", cp.stream),
            ));
        }
    }
    if cp.seq > 0 {
        return Err(Error::fatal(
            "checkpoint",
            format!(
                "the checkpoint of {} is behind the archive: it has committed {} batches, the \
                 archive holds {} (a checkpoint store restored from an older backup, deleted \
                 rows?). Nothing was read or written. Run `cflogs rehydrate` to restore the rows \
                 and the checkpoint from the archive, then start the stream again",
                cp.stream, cp.seq, newest.seq
            ),
        ));
    }
    restore_checkpoint(store, &cp, &newest).await
}

/// Commits `cp` restored from `newest` (the archive's newest manifest of the stream, ahead of
/// it) and returns it; see [`Checkpoint::restored_from`].
///
/// # Errors
/// As [`Checkpoint::restored_from`] and [`CheckpointStore::commit`].
pub async fn restore_checkpoint(
    store: &dyn CheckpointStore,
    cp: &Checkpoint,
    newest: &Manifest,
) -> Result<Checkpoint> {
    let next = cp.restored_from(newest)?;
    store.commit(cp.guard(), &next).await?;
    warn!(
        stream = %cp.stream,
        from_seq = cp.seq,
        seq = next.seq,
        watermark = %next.watermark,
        "checkpoint restored from the archive's newest manifest: the checkpoint store was behind \
         the archive; rows of archived batches missing from the analytics store come back with \
         `cflogs rehydrate`"
    );
    Ok(next)
}

/// The records of a read sorted by `(occurred_at, id)`, each id once: what a source's contract
/// already promises, enforced here because the archive's guarantee depends on it.
fn once_each(
    mut events: Vec<Event>,
    quarantined: Vec<Quarantined>,
) -> (Vec<Event>, Vec<Quarantined>) {
    events.sort_unstable_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    let mut seen: HashSet<EventId> = HashSet::new();
    events.retain(|e| seen.insert(e.id.clone()));
    let mut seen: HashSet<EventId> = HashSet::new();
    let mut quarantined = quarantined;
    quarantined.retain(|q| seen.insert(q.id.clone()));
    (events, quarantined)
}

/// A number in `[0, 1)` that differs between calls, for retry jitter, without a random crate.
fn jitter() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
