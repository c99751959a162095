//! Per-account event storage, ordered by `(when, id)`, and the queries served from it.

use std::collections::BTreeMap;
use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{GenParams, LiveSpec};
use crate::generate::{AccountInfo, MalformedKind, StoredEvent, gen_live_second};

/// Ordering key of an event: `(when in unix micros, id)`.
pub(crate) type Key = (i64, String);

/// Sort direction of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Asc,
    Desc,
}

/// A malformed event as served, for the oracle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MalformedEvent {
    /// How the event is broken.
    pub kind: MalformedKind,
    /// The simulator's internal id (not served when `kind` is `MissingId`).
    pub internal_id: String,
    /// The instant that places the event in listings (it is not, or not correctly, served).
    pub position: DateTime<Utc>,
    /// When the event became (or becomes) visible.
    pub visible_at: DateTime<Utc>,
    /// The exact bytes served by audit logs v1 for this event.
    pub v1: String,
    /// The exact bytes served by audit logs v2 for this event.
    pub v2: String,
}

/// Summary of one stored event (well-formed or not), for tests that need to know the
/// ground truth, e.g. where bursts or late events are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventInfo {
    /// Event id (internal id for a malformed `MissingId` event).
    pub id: String,
    /// Event timestamp (v1 `when`, v2 `action.time`).
    pub when: DateTime<Utc>,
    /// First instant at which the API serves the event.
    pub visible_at: DateTime<Utc>,
    /// v1 `actor.type` (`user`, `admin`, `Cloudflare` or the undocumented `system`).
    pub actor_type: String,
    /// `Some` when the event is served malformed.
    pub malformed: Option<MalformedKind>,
}

/// Rounds an instant up to the next whole microsecond (events are microsecond-exact).
pub(crate) fn ceil_micros(t: DateTime<Utc>) -> i64 {
    let us = t.timestamp_micros();
    if t.timestamp_subsec_nanos().is_multiple_of(1000) {
        us
    } else {
        us.saturating_add(1)
    }
}

fn bounds_valid(lo: &Bound<Key>, hi: &Bound<Key>) -> bool {
    match (lo, hi) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Excluded(a), Bound::Excluded(b)) => a < b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a <= b
        }
    }
}

/// Events of one account.
#[derive(Debug)]
pub(crate) struct AccountState {
    pub info: AccountInfo,
    events: BTreeMap<Key, StoredEvent>,
    /// Next unix second for which live events have not been generated yet.
    live_next_sec: Option<i64>,
}

impl AccountState {
    pub fn new(info: AccountInfo, events: Vec<StoredEvent>, live_start: Option<i64>) -> Self {
        let events = events.into_iter().map(|e| (e.key(), e)).collect();
        Self {
            info,
            events,
            live_next_sec: live_start,
        }
    }

    /// Whether live events up to `now` still need generating.
    pub fn needs_live(&self, now: DateTime<Utc>) -> bool {
        self.live_next_sec.is_some_and(|s| s <= now.timestamp())
    }

    /// Generates live events for every whole second up to and including `now`'s.
    pub fn generate_live(&mut self, seed: u64, live: &LiveSpec, p: &GenParams, now: DateTime<Utc>) {
        let Some(mut sec) = self.live_next_sec else {
            return;
        };
        let target = now.timestamp();
        while sec <= target {
            for e in gen_live_second(seed, &self.info, sec, live.rate, p) {
                self.events.insert(e.key(), e);
            }
            sec += 1;
        }
        self.live_next_sec = Some(sec);
    }

    /// Events in the key range, in `dir` order, that are visible at `now`.
    fn visible_range(
        &self,
        now: DateTime<Utc>,
        lo: Bound<Key>,
        hi: Bound<Key>,
        dir: Direction,
    ) -> Box<dyn Iterator<Item = &StoredEvent> + '_> {
        if !bounds_valid(&lo, &hi) {
            return Box::new(std::iter::empty());
        }
        let range = self.events.range((lo, hi)).map(|(_, e)| e);
        let visible = move |e: &&StoredEvent| e.visible_at <= now;
        match dir {
            Direction::Asc => Box::new(range.filter(visible)),
            Direction::Desc => Box::new(range.rev().filter(visible)),
        }
    }

    fn time_bounds(
        since: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> (Bound<Key>, Bound<Key>) {
        let lo = since.map_or(Bound::Unbounded, |s| {
            Bound::Included((ceil_micros(s), String::new()))
        });
        let hi = before.map_or(Bound::Unbounded, |b| {
            Bound::Excluded((ceil_micros(b), String::new()))
        });
        (lo, hi)
    }

    /// Visible events with `since <= when < before`, in `dir` order.
    pub fn visible(
        &self,
        now: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
        dir: Direction,
    ) -> Box<dyn Iterator<Item = &StoredEvent> + '_> {
        let (lo, hi) = Self::time_bounds(since, before);
        self.visible_range(now, lo, hi, dir)
    }

    /// Like [`visible`](Self::visible) but strictly after (asc) / before (desc) `cursor`.
    pub fn visible_after_cursor(
        &self,
        now: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
        dir: Direction,
        cursor: Option<Key>,
    ) -> Box<dyn Iterator<Item = &StoredEvent> + '_> {
        let (mut lo, mut hi) = Self::time_bounds(since, before);
        if let Some(c) = cursor {
            match dir {
                Direction::Asc => {
                    let tighter = match &lo {
                        Bound::Included(l) => c >= *l,
                        _ => true,
                    };
                    if tighter {
                        lo = Bound::Excluded(c);
                    }
                }
                Direction::Desc => {
                    let tighter = match &hi {
                        Bound::Excluded(h) => c < *h,
                        _ => true,
                    };
                    if tighter {
                        hi = Bound::Excluded(c);
                    }
                }
            }
        }
        self.visible_range(now, lo, hi, dir)
    }

    /// Ids of well-formed events visible at `now` within `[since, before)`, sorted by id.
    pub fn visible_ids(
        &self,
        now: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> Vec<String> {
        let mut ids: Vec<String> = self
            .visible(now, since, before, Direction::Asc)
            .filter(|e| e.malformed.is_none())
            .map(|e| e.id.clone())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Malformed events visible at `now`, in `(when, id)` order.
    pub fn malformed(&self, now: DateTime<Utc>) -> Vec<MalformedEvent> {
        self.visible(now, None, None, Direction::Asc)
            .filter_map(|e| {
                e.malformed.map(|kind| MalformedEvent {
                    kind,
                    internal_id: e.id.clone(),
                    position: e.when,
                    visible_at: e.visible_at,
                    v1: e.v1.clone(),
                    v2: e.v2.clone(),
                })
            })
            .collect()
    }

    /// Every stored event (visible or not), in `(when, id)` order.
    pub fn all_events(&self) -> Vec<EventInfo> {
        self.events
            .values()
            .map(|e| EventInfo {
                id: e.id.clone(),
                when: e.when,
                visible_at: e.visible_at,
                actor_type: e.actor_type.to_owned(),
                malformed: e.malformed,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_micros_rounds_up_only_partial_micros() {
        let t = DateTime::parse_from_rfc3339("2026-11-20T10:00:00.000001Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ceil_micros(t), t.timestamp_micros());
        let t2 = DateTime::parse_from_rfc3339("2026-11-20T10:00:00.0000011Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ceil_micros(t2), t.timestamp_micros() + 1);
    }

    #[test]
    fn bounds_validity() {
        let k = |n: i64| (n, String::new());
        assert!(bounds_valid(&Bound::Included(k(1)), &Bound::Excluded(k(1))));
        assert!(!bounds_valid(
            &Bound::Excluded(k(1)),
            &Bound::Excluded(k(1))
        ));
        assert!(!bounds_valid(
            &Bound::Included(k(2)),
            &Bound::Excluded(k(1))
        ));
        assert!(bounds_valid(&Bound::Unbounded, &Bound::Excluded(k(1))));
    }
}
