//! The four ports the algorithm is written against, and the clock.
//!
//! The cursor kinds' smaller source ports ([`WindowSource`](crate::cursors::WindowSource),
//! [`ObjectSource`](crate::cursors::ObjectSource)) live with their kinds in [`crate::cursors`].
//!
//! Every port is an `async_trait` object-safe trait used as `Arc<dyn …>`. Each carries its
//! contract: what an adapter MUST do for the exactly-once guarantee to hold. The conformance
//! suites in `cflogs_core::testing::conformance` (feature `testing`) check these contracts against
//! any adapter.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::schema::DatasetSchema;
use crate::domain::{
    Batch, Checkpoint, CommitGuard, Digest, Epoch, Manifest, ManifestObject, Position, Read,
    ReadRequest, StreamId, Timestamp,
};
use crate::error::Result;

/// Reads one stream's events from its source (a Cloudflare API, a bucket, an HTTP endpoint,
/// memory), from a [`Position`] the source itself defines.
///
/// The position's [`Cursor`](crate::Cursor) is the source's business: the pipeline stores it
/// and hands it back, never looks inside. Most sources do not implement this trait by hand:
/// they implement the smaller [`WindowSource`](crate::cursors::WindowSource) or
/// [`ObjectSource`](crate::cursors::ObjectSource) and get it from one of the cursor kinds of
/// [`crate::cursors`], which carry the proofs.
///
/// # Contract
/// - `read(at, request)` MUST return the next batch after `at` with the position `next` that
///   batch completes, or `None` when there is nothing to read now. The pipeline commits
///   `next` atomically with the batch, so: a record returned by a read MUST NOT be returned by
///   any read from a position committed after it (no record twice), and every source record
///   MUST eventually be returned as positions are committed (nothing lost), under the
///   assumptions the cursor kind states.
/// - `read` MUST depend only on `at`, `request` and what the source holds: the pipeline may
///   call it again at the same position (after a crash or a failed write) and commit any one
///   of the answers.
/// - Each id at most once in a read; `next.watermark >= at.watermark`; `read.window` covers
///   every returned record's time.
/// - The same event MUST come back with the same id and the same raw bytes on a later read.
/// - A record that cannot be mapped MUST be returned in [`Read::quarantined`] with its bytes
///   and a reason, never dropped and never turned into an error that blocks the stream.
/// - A read SHOULD hold at most about `request.limits` records (memory stays bounded whatever
///   the backlog); a kind documents when one read may pass it (one timestamp or one source
///   unit that cannot be split).
///
/// # Errors
/// [`Error::Transient`](crate::Error::Transient) for what a retry may fix (network, 5xx, rate
/// limits after the source's own retries); [`Error::Fatal`](crate::Error::Fatal) for bad
/// credentials or missing permissions, naming the permission;
/// [`Error::Invalid`](crate::Error::Invalid) for a cursor this source cannot read.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EventSource: Send + Sync {
    /// The stream this source reads.
    fn stream(&self) -> &StreamId;

    /// The schema of its events: their dataset, and the columns their `values` hold (in the
    /// schema's order).
    fn schema(&self) -> &Arc<DatasetSchema>;

    /// The next batch after `at`; see the trait's contract.
    async fn read(&self, at: &Position, request: &ReadRequest) -> Result<Option<Read>>;
}

/// Who claims a stream's lease ([`CheckpointStore::claim`]), for how long, and whether to take
/// it from a holder whose lease is still live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The holder's identity (`CFLOGS_INSTANCE_ID`, by default `hostname:pid`; a one-off command
    /// adds a suffix): shown to the others, and the same holder claims its own lease again at
    /// once (a restart).
    pub holder: String,
    /// How long the lease lasts without a renewal; the holder renews it well before.
    pub ttl: Duration,
    /// Take the lease even when another holder's is live (`--take-over`): that holder is fenced
    /// at its next commit or renewal.
    pub take_over: bool,
}

/// Keeps each stream's [`Checkpoint`] and its lease.
///
/// # Contract
/// - `acquire(stream, initial)` MUST atomically create the stream's genesis checkpoint
///   ([`Checkpoint::genesis`]: watermark `initial`, the start cursor) if there is none, set its
///   epoch to a value strictly greater than any epoch it holds for that stream and its
///   [`lease`](Checkpoint::lease) to a new [`fresh_lease`](crate::fresh_lease), and return the
///   checkpoint with them. From then on every commit carrying an older epoch or another lease
///   token MUST fail with `Conflict`.
/// - `commit(guard, next)` MUST replace the checkpoint of `next.stream` by `next` atomically
///   if and only if the stored `(seq, epoch, lease)` equals `guard`, and MUST return
///   [`Error::Conflict`](crate::Error::Conflict) when it differs or no checkpoint exists
///   ([`Checkpoint::check_commit`] makes these checks). It SHOULD reject a `next` that breaks
///   [`Checkpoint::check_successor`].
/// - `load(stream)` MUST return exactly what the last successful commit or acquire stored,
///   every field intact (timestamps to the nanosecond, the pending manifest hashing the same).
/// - A store whose commit outcome is unknown (connection lost during COMMIT) MUST return
///   [`Error::Transient`](crate::Error::Transient); the caller resolves it by `load`.
/// - `claim(stream, initial, claim)` MUST do what `acquire` does, and record `claim.holder`
///   with an expiry `claim.ttl` after the store's own clock (a database's `now()`, never the
///   caller's), if and only if no other holder's lease is live: none is recorded, it expired,
///   it is `claim.holder`'s own, or `claim.take_over`. Otherwise it MUST change nothing and
///   return [`Error::Conflict`](crate::Error::Conflict) naming the holder and how long its
///   lease still runs. `acquire` is a claim by nobody that takes over.
/// - `renew(stream, lease, ttl)` MUST move the expiry of the lease whose token is `lease` to
///   `ttl` after the store's clock, and return `Conflict` when the stream's lease token is
///   another (the caller was fenced). `release(stream, lease)` MUST end that lease at once
///   (others may claim it) and do nothing when the token is another.
/// - The lease never decides what is committed: commits are fenced by `(seq, epoch, lease)`
///   alone, so a holder whose lease expired unnoticed still cannot commit after another
///   claimed the stream.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// Takes the stream's lease; see the contract.
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint>;

    /// The stream's checkpoint, or `None` if it was never acquired.
    async fn load(&self, stream: &StreamId) -> Result<Option<Checkpoint>>;

    /// Compare-and-set on `(seq, epoch, lease)`; see the contract.
    async fn commit(&self, guard: CommitGuard, next: &Checkpoint) -> Result<()>;

    /// Takes the stream's lease for `claim.holder` unless another's is live; see the contract.
    async fn claim(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: &Claim,
    ) -> Result<Checkpoint>;

    /// Extends the lease whose token is `lease` by `ttl` from now; see the contract.
    async fn renew(&self, stream: &StreamId, lease: u64, ttl: Duration) -> Result<()>;

    /// Ends the lease whose token is `lease`; see the contract.
    async fn release(&self, stream: &StreamId, lease: u64) -> Result<()>;
}

/// The `Conflict` a [`CheckpointStore::claim`] returns when `holder`'s lease on `stream` still
/// runs for `remaining`, in the same words for every store.
pub fn lease_held(stream: &StreamId, holder: &str, remaining: Duration) -> crate::Error {
    crate::Error::conflict(
        stream,
        format!(
            "held by {holder} (its lease runs {:.1} s more without a renewal): wait until it \
             is released or expires, or take the stream with --take-over",
            remaining.as_secs_f64()
        ),
    )
}

/// What a [`CheckpointStore::renew`] answers for the `rows` it updated: `Ok` for one, else the
/// `Conflict` of a lease another instance took, in the same words for every store.
///
/// # Errors
/// `Conflict` when `rows` is not 1.
pub fn lease_renewed(stream: &StreamId, rows: u64) -> crate::Result<()> {
    if rows == 1 {
        Ok(())
    } else {
        Err(crate::Error::conflict(
            stream,
            "the lease was taken by another instance",
        ))
    }
}

/// What an [`AnalyticsSink::write`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Events newly stored.
    pub inserted: u64,
    /// Events already stored (a retried batch, a late duplicate).
    pub duplicates: u64,
    /// Quarantined records newly stored.
    pub quarantined: u64,
}

/// The queryable store (PostgreSQL/TimescaleDB, SQLite, memory).
///
/// # Contract
/// - `write(batch)` MUST be idempotent per `(stream, event id)` and per `(stream, quarantine
///   id)`: writing an event that is already stored changes nothing.
/// - It MUST NOT return `Ok` unless every event and quarantined record of the batch is durably
///   stored. It MAY store part of a batch and then fail: those rows are true events, and the
///   retry rewrites them as no-ops.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AnalyticsSink: Send + Sync {
    /// Stores the batch's events and quarantined records; see the contract.
    async fn write(&self, batch: &Batch) -> Result<WriteReport>;
}

/// Everything [`ArchiveSink::stage`] needs besides the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageRequest {
    /// The batch's sequence number if committed (`checkpoint.seq + 1`).
    pub seq: u64,
    /// The stager's epoch; it MUST appear in every staged key.
    pub epoch: Epoch,
    /// The current chain head, the manifest's `prev`.
    pub prev: Digest,
    /// The manifest's `created_at`.
    pub now: Timestamp,
}

impl StageRequest {
    /// The manifest of `batch` staged as `objects` under this request: the fields every
    /// [`ArchiveSink::stage`] fills the same way.
    pub fn manifest(&self, batch: &Batch, objects: Vec<ManifestObject>) -> Manifest {
        Manifest {
            version: Manifest::VERSION,
            stream: batch.stream.clone(),
            dataset: batch.dataset().clone(),
            seq: self.seq,
            epoch: self.epoch,
            window: batch.window,
            events: batch.events.len() as u64,
            quarantined: batch.quarantined.len() as u64,
            objects,
            prev: self.prev,
            created_at: self.now,
            resume: None,
        }
    }
}

/// The long-term archive (Parquet on S3, a local directory, memory).
///
/// # Contract
/// - `stage` MUST write every event and quarantined record of the batch to objects under keys
///   that include the epoch and the seq and that no final key can equal, and MUST return a
///   manifest naming each object with its final key, staged key, SHA-256, rows and size, with
///   `prev` and `created_at` from the request. Nothing staged may be visible under a final key.
/// - `publish(manifest)` MUST make every object available under its final key with exactly
///   the staged bytes, then write the manifest object (the manifest's canonical bytes), then
///   delete the staged objects. It MUST be idempotent: publishing a manifest again, including
///   after an earlier publish completed and its staged objects are gone, MUST succeed and change
///   nothing. If a staged object is gone and its final object is missing too, it MUST fail with
///   [`Error::Fatal`](crate::Error::Fatal): that is lost data, never success.
/// - Publishing is create-only: it MUST NOT replace or delete an object already at a final key
///   or a manifest key unless that object holds exactly the bytes it would write (a publish
///   run again). Finding other bytes there, it MUST fail with
///   [`Error::Fatal`](crate::Error::Fatal), before writing the manifest, and SHOULD check the
///   manifest's key before any object's.
/// - Publishing is the only way anything reaches a final key.
/// - `newest_after(stream, seq)` MUST return the published manifest of `stream` with the
///   highest seq above `seq`, or `None` when it has none: how the pipeline finds out that its
///   checkpoint store is behind the archive.
/// - `sweep(checkpoint, min_age)` MUST delete the staged objects of `checkpoint.stream` that
///   the checkpoint's pending manifest does not name, that are older than `min_age`, and whose
///   epoch is older than `checkpoint.epoch` or whose seq is at most `checkpoint.seq`; it MUST
///   keep every other staged object (an in-flight batch of the lease holder). It returns how
///   many it deleted.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ArchiveSink: Send + Sync {
    /// Writes the batch to staging keys and returns its manifest; see the contract.
    async fn stage(&self, batch: &Batch, request: StageRequest) -> Result<Manifest>;

    /// Copies staged objects to their final keys, writes the manifest, deletes staging.
    async fn publish(&self, manifest: &Manifest) -> Result<()>;

    /// Deletes stale staged objects of a stream; see the contract.
    async fn sweep(&self, checkpoint: &Checkpoint, min_age: Duration) -> Result<u64>;

    /// The stream's published manifest with the highest seq above `seq`; see the contract.
    async fn newest_after(&self, stream: &StreamId, seq: u64) -> Result<Option<Manifest>>;
}

/// The time, as the pipeline sees it. Tests drive a manual clock; services use [`SystemClock`].
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}
