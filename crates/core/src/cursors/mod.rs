//! The kinds of source cursor, each with the smaller port a source implements to get it.
//!
//! The pipeline knows positions only as opaque [`Cursor`](crate::Cursor)s; these kinds give
//! them meaning.
//! Each turns a simple source port into an [`EventSource`](crate::EventSource) whose reads are
//! exactly-once under the pipeline's algorithm, and each is proven by its own property test
//! (`crates/core/tests/exactly_once.rs`) with faults, crashes and a zombie instance.
//!
//! | kind | for | source port | cursor state | bound |
//! |---|---|---|---|---|
//! | [`OverlappingWindows`] (`overlap`) | audit logs v1/v2 | [`WindowSource`] | ids committed in the last `lookback` | the events of one `lookback` |
//! | [`SettledWindows`] (`settled`) | Logpull | [`WindowSource`] | nothing: the watermark is the position | O(1) |
//! | [`ObjectLedger`] (`ledger`) | Logpush objects in a bucket | [`ObjectSource`] | keys committed in the last `lookback`, one partial object's line | the objects of one `lookback` |
//!
//! A new source picks the kind whose assumptions its API meets; a source whose progress is none
//! of these implements [`EventSource`](crate::EventSource) itself with a cursor kind of its own
//! ([`Cursor::encode`](crate::Cursor::encode)/[`Cursor::decode`](crate::Cursor::decode)).

mod assemble;
mod ledger;
mod overlap;
mod settled;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::schema::DatasetSchema;
use crate::domain::{BatchLimits, Event, FetchRequest, Fetched, Quarantined, StreamId, Timestamp};
use crate::error::Result;

pub use ledger::ObjectLedger;
pub use overlap::OverlappingWindows;
pub use settled::SettledWindows;

/// A source read by time windows: the port of [`OverlappingWindows`] and [`SettledWindows`].
///
/// # Contract
/// - `fetch(request)` MUST return every event of the stream whose `occurred_at` lies in
///   `[window.from, complete_to)` and is visible at the source at the time of the call, where
///   `complete_to` is [`Fetched::complete_to`] or, when that is `None`, `window.to`.
/// - A source MAY stop paging early to bound memory, setting `complete_to` below `window.to`,
///   only after it has read everything before `request.floor` and more records at or after the
///   floor than `request.limits` allow; `complete_to` MUST then lie in
///   `(max(window.from, floor), window.to)`. (Counting records before the floor, which were
///   committed by earlier cycles, could stop every cycle at the same place: no progress.)
///   Events at or after `complete_to` MAY be returned; they are ignored and asked again later.
/// - Events outside the window MAY be returned (they are ignored), duplicates MAY be returned
///   (they are dropped), order is free.
/// - The same event MUST come back with the same id and the same raw bytes on a later fetch.
/// - A record that cannot be mapped MUST be returned in [`Fetched::quarantined`] with its bytes
///   and a reason, never dropped and never turned into an error that blocks the stream.
///
/// # Errors
/// As [`EventSource::read`](crate::EventSource::read).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait WindowSource: Send + Sync {
    /// The stream this source reads.
    fn stream(&self) -> &StreamId;

    /// The schema of its events: their dataset, and the columns their `values` hold (in the
    /// schema's order).
    fn schema(&self) -> &Arc<DatasetSchema>;

    /// Reads the events of `request.window`; see the trait's contract.
    async fn fetch(&self, request: &FetchRequest) -> Result<Fetched>;

    /// How far the source's clock is ahead of the pipeline's (negative: behind). The cursors
    /// plan windows on the source's clock, `now + clock_offset()`, so that a window never ends
    /// in the source's future (which would lose the events it has not written yet) and never
    /// lags behind what it has settled. Default zero: the clocks agree. A source that measures
    /// the offset (the Cloudflare client reads it from every `Date` header) SHOULD bound it,
    /// so that a lying clock cannot push windows far ahead.
    async fn clock_offset(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::zero()
    }
}

/// One immutable object of an [`ObjectSource`] (a Logpush `.log.gz` file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// Its key; unique in the source, never reused for other content.
    pub key: String,
    /// The time it is kept by in the ledger: for Logpush the end of the interval its key names.
    pub at: Timestamp,
    /// Its size in bytes, when known.
    pub size: u64,
}

/// Records read from one object by [`ObjectSource::read_object`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectChunk {
    /// Events read.
    pub events: Vec<Event>,
    /// Records that could not be mapped.
    pub quarantined: Vec<Quarantined>,
    /// Where the next chunk starts (a line number) when the object goes on, `None` when the
    /// chunk reached the object's end.
    pub next_line: Option<u64>,
}

/// A source made of immutable objects that appear over time, possibly late (sorting before
/// objects already read): the port of [`ObjectLedger`].
///
/// # Contract
/// - `list(since)` MUST return every object visible now whose `at` is at or after `since`; it
///   MAY return older ones (they are ignored) and SHOULD list only the part of the bucket that
///   can hold objects from `since` on (a date prefix), never the whole bucket.
/// - An object's key, `at` and content MUST NOT change once listed.
/// - `read_object(object, from_line, limits)` MUST return the records of `object` from line
///   `from_line` (0-based) on, in line order, and MAY stop at a line boundary once it has read
///   more than `limits` allow, reporting where it stopped in [`ObjectChunk::next_line`]; it MUST
///   read at least one line when any is left. Reading from the same line MUST give the same
///   records with the same ids (for example `(key, line)`), and two lines never share an id.
/// - A line that cannot be mapped, or an object that cannot be decoded past some line, MUST be
///   quarantined with the key and line, and the rest kept where it can be.
///
/// # Errors
/// As [`EventSource::read`](crate::EventSource::read).
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// The stream this source reads.
    fn stream(&self) -> &StreamId;

    /// The schema of its events: their dataset, and the columns their `values` hold (in the
    /// schema's order).
    fn schema(&self) -> &Arc<DatasetSchema>;

    /// The objects from `since` on; see the trait's contract.
    async fn list(&self, since: Timestamp) -> Result<Vec<ObjectRef>>;

    /// Records of `object` from `from_line`; see the trait's contract.
    async fn read_object(
        &self,
        object: &ObjectRef,
        from_line: u64,
        limits: BatchLimits,
    ) -> Result<ObjectChunk>;
}

/// A validated policy duration as chrono's (the policy keeps them below 10 years).
pub(crate) fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
