//! The `settled` cursor kind: consecutive windows, each read once it is complete at the source
//! and committed whole (Logpull).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::assemble::assemble;
use super::{WindowSource, chrono};
use crate::domain::schema::DatasetSchema;
use crate::domain::{
    BatchLimits, Cursor, FetchRequest, Position, Read, ReadRequest, StreamId, Window,
};
use crate::error::{Error, Result};
use crate::ports::EventSource;

const KIND: &str = "settled";
const VERSION: u32 = 1;

/// Nothing but the kind and version: the watermark is the whole position.
#[derive(Serialize, Deserialize)]
struct State {}

/// Reads a [`WindowSource`] by consecutive windows `[watermark, min(now - settle_delay,
/// watermark + max_span))` that never overlap; `lookback` is not used.
///
/// For sources that serve a time range completely and deterministically once it has settled
/// (Logpull: `start` inclusive, `end` exclusive, the same records for the same settled window),
/// where an id set per window would be far too large (millions of HTTP requests an hour).
///
/// - **Watermark**: every source event with `occurred_at < watermark` is committed, none after.
/// - **Cursor**: empty: O(1) whatever the traffic.
/// - **Batch**: all records of `[from, to')`, `to'` cut back to the caps at a timestamp
///   boundary (a source that must hold a whole window to sort it keeps its windows small, see
///   `max_span`). A window holding a quarantined record without a time is never cut (the
///   record's place in it is unknown), so such a batch may pass the caps. Duplicates of one id inside a window are dropped, so a source whose records
///   have no unique id gives each one an id that does not depend on the window (for Logpull:
///   content hash and occurrence).
/// - **Assumption**: a record is visible no later than `settle_delay` after its time, and a
///   settled window returns the same records on every read. A window that could not be read
///   whole MUST be an error of the source, never a partial answer.
#[derive(Debug)]
pub struct SettledWindows<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: ?Sized> SettledWindows<S> {
    /// Reads `inner` with a `settled` cursor.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }

    /// The window source.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

#[async_trait]
impl<S: WindowSource + ?Sized> EventSource for SettledWindows<S> {
    fn stream(&self) -> &StreamId {
        self.inner.stream()
    }

    fn schema(&self) -> &Arc<DatasetSchema> {
        self.inner.schema()
    }

    async fn read(&self, at: &Position, request: &ReadRequest) -> Result<Option<Read>> {
        at.cursor.decode::<State>(KIND, &[VERSION])?;
        let from = at.watermark;
        // Planned on the source's clock: what is settled there, not here.
        let now = request.now + self.inner.clock_offset().await;
        let settled = now - chrono(request.settle_delay);
        let to = settled.min(from + chrono(request.max_span));
        if to <= from {
            return Ok(None);
        }
        let fetch = FetchRequest {
            window: Window::new(from, to)?,
            floor: from,
            limits: request.limits,
        };
        let fetched = self.inner.fetch(&fetch).await?;
        // A record without a time belongs somewhere in the window: only a batch that takes the
        // whole window can commit it exactly once.
        let untimed = fetched.quarantined.iter().any(|q| q.occurred_at.is_none());
        if untimed && fetched.complete_to.is_some() {
            return Err(Error::fatal(
                "event source",
                "the source broke its contract: it stopped a settled window early while \
                 returning quarantined records without a time",
            ));
        }
        let assembly = if untimed {
            FetchRequest {
                limits: BatchLimits::new(usize::MAX, usize::MAX)?,
                ..fetch
            }
        } else {
            fetch
        };
        let mut assembled = assemble(&assembly, fetched, &[])?;
        let window = Window::new(from, assembled.to)?;
        assembled
            .quarantined
            .retain(|q| q.occurred_at.is_none_or(|t| window.contains(t)));
        Ok(Some(Read {
            window,
            events: assembled.events,
            quarantined: assembled.quarantined,
            next: Position {
                watermark: assembled.to,
                cursor: Cursor::encode(KIND, VERSION, &State {})?,
            },
            backlog: assembled.to < settled,
        }))
    }
}
