//! What the pipeline asks of a source and what it gets back, what the sinks receive, and the
//! caps that bound a batch.

use std::sync::Arc;
use std::time::Duration;

use super::schema::DatasetSchema;
use super::{Dataset, Event, Position, Quarantined, StreamId, Timestamp, Window};
use crate::error::{Error, Result};

/// Caps on one batch, so memory stays bounded whatever the backlog.
///
/// A batch never splits one timestamp: when the events of a single timestamp alone pass a cap,
/// the batch holds all of them and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    max_events: usize,
    max_bytes: usize,
}

impl BatchLimits {
    /// Caps of `max_events` events and `max_bytes` bytes of raw event data.
    ///
    /// # Errors
    /// [`Error::Invalid`] when either is zero.
    pub fn new(max_events: usize, max_bytes: usize) -> Result<Self> {
        if max_events == 0 || max_bytes == 0 {
            return Err(Error::invalid(
                "batch limits",
                "max events and max bytes must be at least 1",
            ));
        }
        Ok(Self {
            max_events,
            max_bytes,
        })
    }

    /// Most events in a batch.
    pub fn max_events(&self) -> usize {
        self.max_events
    }

    /// Most raw bytes in a batch.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Whether `events` events totalling `bytes` bytes pass a cap.
    pub fn exceeded_by(&self, events: usize, bytes: usize) -> bool {
        events > self.max_events || bytes > self.max_bytes
    }
}

impl Default for BatchLimits {
    /// 10,000 events or 64 MiB.
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_bytes: 64 << 20,
        }
    }
}

/// What the pipeline asks of [`EventSource::read`](crate::EventSource::read): the time and the
/// stream's policy. Each cursor kind says how it uses the durations (see [`crate::cursors`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// Now, by the pipeline's clock.
    pub now: Timestamp,
    /// How far a read reaches back for records that became visible late.
    pub lookback: Duration,
    /// How far behind `now` the source is considered complete.
    pub settle_delay: Duration,
    /// The longest time range one read covers.
    pub max_span: Duration,
    /// Caps on one batch.
    pub limits: BatchLimits,
}

/// What [`EventSource::read`](crate::EventSource::read) returns: the next batch and the
/// position that completes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Read {
    /// The time range the batch covers (every record's time lies in it).
    pub window: Window,
    /// New events, each id once.
    pub events: Vec<Event>,
    /// New quarantined records, each id once.
    pub quarantined: Vec<Quarantined>,
    /// The position once this batch is committed.
    pub next: Position,
    /// Whether more is waiting to be read right now.
    pub backlog: bool,
}

impl Read {
    /// Whether the read found no record (it may still move the position).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.quarantined.is_empty()
    }
}

/// What the window cursor kinds ask of
/// [`WindowSource::fetch`](crate::cursors::WindowSource::fetch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// The window to read.
    pub window: Window,
    /// The stream's watermark: records before it were most likely committed already (the
    /// window reaches back before it by the lookback). A source that stops early MUST have read
    /// everything before the floor and MUST count only records at or after it against
    /// `limits`, so that every cycle makes progress.
    pub floor: Timestamp,
    /// Caps on one batch; a source MAY stop paging once it has read more than these allow.
    pub limits: BatchLimits,
}

/// What [`WindowSource::fetch`](crate::cursors::WindowSource::fetch) returns for a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fetched {
    /// Events read; the pipeline keeps those in `[window.from, complete_to)`.
    pub events: Vec<Event>,
    /// Records that could not be mapped.
    pub quarantined: Vec<Quarantined>,
    /// The end of the part of the window that was read completely; `None` means the window's
    /// end. Set only when the source stopped early to bound memory (see the port's contract).
    pub complete_to: Option<Timestamp>,
}

/// All new events of one window `[from, to')`, as the sinks receive them.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The stream they belong to.
    pub stream: StreamId,
    /// Their dataset's schema: each event's `values` are its columns, in order. Sinks derive
    /// their tables and files from it.
    pub schema: Arc<DatasetSchema>,
    /// The window the batch covers completely.
    pub window: Window,
    /// New events, sorted by `(occurred_at, id)`, each id once.
    pub events: Vec<Event>,
    /// New quarantined records, each id once.
    pub quarantined: Vec<Quarantined>,
}

impl Batch {
    /// Their dataset.
    pub fn dataset(&self) -> &Dataset {
        self.schema.dataset()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.quarantined.is_empty()
    }
}
