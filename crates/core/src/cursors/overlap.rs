//! The `overlap` cursor kind: windows that reach back by the lookback, with the ids committed in
//! that overlap kept in the cursor (account audit logs v1 and v2).

use std::sync::Arc;

use super::assemble::assemble;
use super::{WindowSource, chrono};
use crate::domain::schema::DatasetSchema;
use crate::domain::{
    FetchRequest, Position, Read, ReadRequest, RecentId, StreamId, Window,
    overlap_cursor as cursor, overlap_recent as recent,
};
use crate::error::Result;
use crate::ports::EventSource;
use async_trait::async_trait;

/// Reads a [`WindowSource`] by windows `[watermark - lookback, min(now - settle_delay, from +
/// max_span))`, dropping what the cursor says was committed in the overlap.
///
/// For sources whose events become visible late and whose time filter is coarse (audit logs:
/// `since` inclusive, whole seconds), so that windows must overlap.
///
/// - **Watermark**: every source event with `occurred_at < watermark - lookback` is committed.
/// - **Cursor**: the ids (with times) of committed records at or after `watermark - lookback`:
///   bounded by the events of one lookback (for audit logs, a few thousand at most).
/// - **Batch**: all new events of `[from, to')`, `to'` cut back to the caps at a timestamp
///   boundary (one timestamp is never split, so a single timestamp above the caps is one
///   batch).
/// - **Assumption**: an event is visible at the source no later than `lookback + settle_delay -
///   poll interval` after its `occurred_at`; a later one can be missed (`cflogs reconcile`).
#[derive(Debug)]
pub struct OverlappingWindows<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: ?Sized> OverlappingWindows<S> {
    /// Reads `inner` with an `overlap` cursor.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }

    /// The window source.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

#[async_trait]
impl<S: WindowSource + ?Sized> EventSource for OverlappingWindows<S> {
    fn stream(&self) -> &StreamId {
        self.inner.stream()
    }

    fn schema(&self) -> &Arc<DatasetSchema> {
        self.inner.schema()
    }

    async fn read(&self, at: &Position, request: &ReadRequest) -> Result<Option<Read>> {
        let committed = recent(&at.cursor)?;
        let lookback = chrono(request.lookback);
        let from = at.watermark - lookback;
        let settled = request.now - chrono(request.settle_delay);
        let to = settled.min(from + chrono(request.max_span));
        if to <= from {
            return Ok(None);
        }
        let fetch = FetchRequest {
            window: Window::new(from, to)?,
            floor: at.watermark,
            limits: request.limits,
        };
        let fetched = self.inner.fetch(&fetch).await?;
        let assembled = assemble(&fetch, fetched, &committed)?;
        let watermark = at.watermark.max(assembled.to);
        let keep_from = watermark - lookback;
        let mut kept: Vec<RecentId> = committed
            .iter()
            .filter(|r| r.at >= keep_from)
            .cloned()
            .chain(assembled.events.iter().map(|e| RecentId {
                at: e.occurred_at,
                id: e.id.clone(),
            }))
            .chain(assembled.quarantined.iter().map(|q| RecentId {
                // Later than the record's true time, so it is kept as long as it can be re-read.
                at: to,
                id: q.id.clone(),
            }))
            .filter(|r| r.at >= keep_from)
            .collect();
        kept.sort_unstable();
        kept.dedup();
        let nothing_new = assembled.events.is_empty() && assembled.quarantined.is_empty();
        if nothing_new && watermark == at.watermark && kept == committed {
            return Ok(None);
        }
        Ok(Some(Read {
            window: Window::new(from, assembled.to)?,
            events: assembled.events,
            quarantined: assembled.quarantined,
            next: Position {
                watermark,
                cursor: cursor(kept),
            },
            backlog: assembled.to < settled,
        }))
    }
}
