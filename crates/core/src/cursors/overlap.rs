//! The `overlap` cursor kind: windows that reach back by the lookback, with the ids committed in
//! that overlap kept in the cursor (account audit logs v1 and v2).

use std::sync::Arc;

use super::assemble::assemble;
use super::{WindowSource, chrono};
use crate::domain::schema::DatasetSchema;
use crate::domain::{
    FetchRequest, OverlapCursor, Position, Read, ReadRequest, RecentId, StreamId, Window,
    overlap_cursor as cursor, overlap_state as state,
};
use crate::error::Result;
use crate::ports::EventSource;
use async_trait::async_trait;

/// Reads a [`WindowSource`] by windows `[from, min(now - settle_delay, from + max_span))`,
/// `from = max(watermark - lookback, complete_before)`, dropping what the cursor says was
/// committed in the overlap.
///
/// For sources whose events become visible late and whose time filter is coarse (audit logs:
/// `since` inclusive, whole seconds), so that windows must overlap at the live edge.
///
/// - **Watermark**: every source event with `occurred_at < watermark - lookback` is committed.
/// - **Cursor**: the ids (with times) of committed records at or after `from`, and
///   `complete_before`: every event before it is committed too. A read of `[from, to)` at `now`
///   makes `min(to, now - settle_delay - lookback)` complete (by the assumption below, nothing
///   older can still appear), so a catch-up, whose windows are all that old, never re-reads
///   the lookback; at the live edge `complete_before` is `watermark - lookback`. Bounded by
///   the events of one lookback (for audit logs, a few thousand at most).
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
        let OverlapCursor {
            recent: committed,
            complete_before,
        } = state(&at.cursor)?;
        let lookback = chrono(request.lookback);
        let from =
            complete_before.map_or(at.watermark - lookback, |c| c.max(at.watermark - lookback));
        // Planned on the source's clock: what is settled there, not here.
        let now = request.now + self.inner.clock_offset().await;
        let settled = now - chrono(request.settle_delay);
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
        // What this read makes complete: `[from, assembled.to)` was read whole, and an event of
        // it older than `now - lookback - settle_delay` was visible by now (the assumption), so
        // it was read. During a catch-up that is the whole window: the next one starts at the
        // watermark instead of re-reading the lookback.
        let complete_before = from
            .max(watermark - lookback)
            .max(assembled.to.min(settled - lookback));
        let keep_from = complete_before;
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
                cursor: cursor(OverlapCursor {
                    recent: kept,
                    complete_before: (complete_before > watermark - lookback)
                        .then_some(complete_before),
                }),
            },
            backlog: assembled.to < settled,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::{BatchLimits, Dataset, Event, EventId, Timestamp};
    use crate::ports::Clock;
    use crate::testing::{ManualClock, MemorySource};

    fn t(minutes: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    /// One event a minute over `[0, minutes)`, each visible `late` minutes after its time.
    fn source(clock: &Arc<ManualClock>, minutes: i64, late: i64) -> Arc<MemorySource> {
        Arc::new(memory_source(clock, minutes, late))
    }

    fn memory_source(clock: &Arc<ManualClock>, minutes: i64, late: i64) -> MemorySource {
        let inner = MemorySource::new(
            StreamId::new("audit-v1/account/a").unwrap(),
            Dataset::audit_logs(),
            clock.clone() as Arc<dyn Clock>,
        );
        for m in 0..minutes {
            let id = EventId::new(format!("ev-{m:04}")).unwrap();
            inner.push(Event::new(id, t(m), Bytes::from_static(b"{}")), t(m + late));
        }
        inner
    }

    fn request(now: Timestamp) -> ReadRequest {
        ReadRequest {
            now,
            lookback: Duration::from_secs(10 * 60),
            settle_delay: Duration::from_secs(60),
            max_span: Duration::from_secs(3600),
            limits: BatchLimits::new(30, 1 << 20).unwrap(),
        }
    }

    /// Reads until caught up, appending the ids and windows read.
    async fn drain(
        windows: &OverlappingWindows<MemorySource>,
        at: &mut Position,
        now: Timestamp,
        ids: &mut Vec<EventId>,
        read_windows: &mut Vec<Window>,
    ) {
        while let Some(read) = windows.read(at, &request(now)).await.unwrap() {
            ids.extend(read.events.iter().map(|e| e.id.clone()));
            read_windows.push(read.window);
            *at = read.next;
        }
    }

    #[tokio::test]
    async fn a_backlog_is_read_once_and_a_live_edge_with_its_lookback() {
        // Three hours of events read ten hours later: nothing in them can still appear, so no
        // window reaches back into one already read.
        let clock = ManualClock::new(t(600));
        let windows = OverlappingWindows::new(source(&clock, 180, 0));
        let mut at = Position::start(t(0));
        let (mut ids, mut read) = (Vec::new(), Vec::new());
        drain(&windows, &mut at, clock.now(), &mut ids, &mut read).await;
        assert_eq!(ids.len(), 180);
        assert_eq!(read[0].from(), t(-10), "the first read reaches back");
        for pair in read.windows(2) {
            assert_eq!(pair[1].from(), pair[0].to(), "{read:?}");
        }

        // At the live edge (events visible up to 8 minutes late), windows reach back by the
        // lookback again, and the late events are still found.
        let clock = ManualClock::new(t(0));
        let windows = OverlappingWindows::new(source(&clock, 120, 8));
        let mut at = Position::start(t(0));
        let (mut ids, mut read) = (Vec::new(), Vec::new());
        for minute in (0..=140).step_by(2) {
            clock.set(t(minute));
            drain(&windows, &mut at, clock.now(), &mut ids, &mut read).await;
        }
        assert_eq!(ids.len(), 120, "every late event, once");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 120, "no event twice");
        let overlapping = read.windows(2).filter(|p| p[1].from() < p[0].to()).count();
        assert!(overlapping > 50, "{overlapping} of {} windows", read.len());
    }

    #[tokio::test]
    async fn windows_are_planned_on_the_source_clock() {
        // The source's clock runs 9 minutes ahead of or behind ours: more than the lookback
        // (10 min) and the settle delay (1 min) leave for events visible 4 minutes late.
        for skew in [9, -9] {
            let offset = chrono::Duration::minutes(skew);
            let read_all = |reported: bool| async move {
                let clock = ManualClock::new(t(0));
                let mut inner = memory_source(&clock, 120, 4);
                if reported {
                    inner = inner.with_clock_offset(offset);
                }
                let windows = OverlappingWindows::new(Arc::new(inner));
                let mut at = Position::start(t(0));
                let (mut ids, mut read) = (Vec::new(), Vec::new());
                for minute in (0..=140).step_by(2) {
                    clock.set(t(minute));
                    // Our clock: the source's minus the offset.
                    drain(&windows, &mut at, clock.now() - offset, &mut ids, &mut read).await;
                    let settled = clock.now() - chrono::Duration::minutes(1);
                    assert!(!reported || read.iter().all(|w| w.to() <= settled));
                }
                ids.sort();
                let before = ids.len();
                ids.dedup();
                assert_eq!(ids.len(), before, "no event twice");
                (ids.len(), at.watermark)
            };
            assert_eq!(
                read_all(true).await,
                (120, t(139)),
                "skew {skew} min: every event once, up to the source's settled edge"
            );
            // Unreported, a source ahead of us is read late (its last 9 minutes stay unread)
            // and one behind us loses the events its clock had not reached yet.
            let (found, watermark) = read_all(false).await;
            if skew > 0 {
                assert_eq!((found, watermark), (120, t(130)));
            } else {
                assert!(found < 120, "skew {skew} min unreported: {found} found");
            }
        }
    }
}
