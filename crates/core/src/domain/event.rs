//! Events as received, with their mapped columns, and quarantined records.

use bytes::Bytes;

use super::schema::Value;
use super::{EventId, Timestamp};

/// One source event.
///
/// `raw` holds the bytes exactly as the source sent them (one JSON object); sinks that store a
/// parsed form must still keep these bytes somewhere (the archive does). `values` are the
/// columns of the batch's [`DatasetSchema`](crate::schema::DatasetSchema), mapped from it for
/// fast queries: one per column, in the schema's order; a value missing at the end (or an event
/// made with [`Event::new`], which has none) is NULL.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Identity inside the stream.
    pub id: EventId,
    /// When it happened at the source (audit `when`, HTTP `EdgeStartTimestamp`).
    pub occurred_at: Timestamp,
    /// The event exactly as received.
    pub raw: Bytes,
    /// The schema's columns mapped from the event, in the schema's order.
    pub values: Vec<Option<Value>>,
}

impl Event {
    /// An event with no mapped columns (every column NULL).
    pub fn new(id: EventId, occurred_at: Timestamp, raw: impl Into<Bytes>) -> Self {
        Self {
            id,
            occurred_at,
            raw: raw.into(),
            values: Vec::new(),
        }
    }

    /// The same event with mapped columns, in the schema's order.
    #[must_use]
    pub fn with_values(mut self, values: Vec<Option<Value>>) -> Self {
        self.values = values;
        self
    }

    /// The value of column `index` of the schema, `None` when NULL.
    pub fn value(&self, index: usize) -> Option<&Value> {
        self.values.get(index).and_then(Option::as_ref)
    }

    /// Size that counts against a batch's byte cap: the raw bytes.
    pub fn size(&self) -> usize {
        self.raw.len()
    }
}

/// A record the source could not turn into an [`Event`] (no id, no time, unparsable time, not
/// JSON…). It is kept with its exact bytes and the reason, written to the sinks with the batch,
/// and never blocks the stream.
///
/// Its id is the content hash of its bytes, so a record seen again in an overlapping window is
/// recognised and stored once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// `sha256:<hex>` of `raw`.
    pub id: EventId,
    /// The record exactly as received.
    pub raw: Bytes,
    /// Why it was quarantined, e.g. `"missing field 'id'"`.
    pub reason: String,
    /// Its time, when that much could be read.
    pub occurred_at: Option<Timestamp>,
}

impl Quarantined {
    /// Quarantines `raw` for `reason`.
    pub fn new(raw: impl Into<Bytes>, reason: impl Into<String>) -> Self {
        let raw = raw.into();
        Self {
            id: EventId::content_hash(&raw),
            raw,
            reason: reason.into(),
            occurred_at: None,
        }
    }

    /// The same record with the time that could be read from it.
    #[must_use]
    pub fn with_time(mut self, occurred_at: Timestamp) -> Self {
        self.occurred_at = Some(occurred_at);
        self
    }
}
