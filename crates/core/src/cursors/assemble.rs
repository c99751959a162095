//! Step 3 of the cycle, pure: from what the source returned to the batch that will be committed.

use std::collections::HashSet;

use crate::domain::{Event, EventId, FetchRequest, Fetched, Quarantined, RecentId, Timestamp};
use crate::error::{Error, Result};

/// The new records of a window, cut to the caps.
#[derive(Debug)]
pub(crate) struct Assembled {
    /// New events in `[from, to)`, sorted by `(occurred_at, id)`.
    pub(crate) events: Vec<Event>,
    /// New quarantined records.
    pub(crate) quarantined: Vec<Quarantined>,
    /// The end of the range the batch covers completely.
    pub(crate) to: Timestamp,
}

/// Drops what is already committed (`recent`) and duplicates inside the window, then cuts the
/// window end back to the first timestamp that does not fit the caps, never splitting one
/// timestamp, so the result is *all* new events of `[window.from, to)`.
pub(crate) fn assemble(
    request: &FetchRequest,
    fetched: Fetched,
    recent: &[RecentId],
) -> Result<Assembled> {
    let window = &request.window;
    let limits = &request.limits;
    let complete_to = fetched.complete_to.unwrap_or(window.to());
    let lowest = window.from().max(request.floor);
    if complete_to > window.to() || (complete_to < window.to() && complete_to <= lowest) {
        return Err(Error::fatal(
            "event source",
            format!(
                "the source broke its contract: complete_to {complete_to} is outside \
                 ({lowest}, {}]",
                window.to()
            ),
        ));
    }
    let committed: HashSet<&EventId> = recent.iter().map(|r| &r.id).collect();
    let mut fresh: HashSet<EventId> = HashSet::new();
    let mut is_new = |id: &EventId| !committed.contains(id) && fresh.insert(id.clone());
    let mut events: Vec<Event> = fetched
        .events
        .into_iter()
        .filter(|e| window.from() <= e.occurred_at && e.occurred_at < complete_to)
        .filter(|e| is_new(&e.id))
        .collect();
    events.sort_unstable_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));

    // Take whole timestamp groups while they fit; the first group is always taken.
    let mut taken = 0;
    let mut bytes = 0;
    let mut to = complete_to;
    while taken < events.len() {
        let at = events[taken].occurred_at;
        let group_len = events[taken..]
            .iter()
            .take_while(|e| e.occurred_at == at)
            .count();
        let group_bytes: usize = events[taken..taken + group_len]
            .iter()
            .map(Event::size)
            .sum();
        if taken > 0 && limits.exceeded_by(taken + group_len, bytes + group_bytes) {
            to = at;
            break;
        }
        taken += group_len;
        bytes += group_bytes;
    }
    events.truncate(taken);
    let quarantined: Vec<Quarantined> = fetched
        .quarantined
        .into_iter()
        .filter(|q| is_new(&q.id))
        .collect();
    Ok(Assembled {
        events,
        quarantined,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BatchLimits, Window};
    use bytes::Bytes;
    use chrono::{TimeZone, Utc};

    fn t(s: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn ev(id: &str, at: i64, size: usize) -> Event {
        Event::new(
            EventId::new(id).unwrap(),
            t(at),
            Bytes::from(vec![b'x'; size]),
        )
    }

    fn request(from: i64, to: i64, max_events: usize, max_bytes: usize) -> FetchRequest {
        FetchRequest {
            window: Window::new(t(from), t(to)).unwrap(),
            floor: t(from),
            limits: BatchLimits::new(max_events, max_bytes).unwrap(),
        }
    }

    fn ids(a: &Assembled) -> Vec<&str> {
        a.events.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn drops_recent_ids_duplicates_and_out_of_window_events_and_sorts() {
        let fetched = Fetched {
            events: vec![
                ev("c", 30, 1),
                ev("a", 10, 1),
                ev("old", 5, 1),
                ev("late", 100, 1),
                ev("b", 10, 1),
                ev("a", 10, 1),
                ev("seen", 20, 1),
            ],
            ..Fetched::default()
        };
        let recent = vec![RecentId {
            at: t(20),
            id: EventId::new("seen").unwrap(),
        }];
        let a = assemble(&request(10, 100, 100, 100), fetched, &recent).unwrap();
        assert_eq!(ids(&a), ["a", "b", "c"]);
        assert_eq!(a.to, t(100));
    }

    #[test]
    fn cuts_at_the_first_timestamp_that_does_not_fit_without_splitting_it() {
        let fetched = Fetched {
            events: vec![
                ev("a", 10, 1),
                ev("b", 11, 1),
                ev("c", 11, 1),
                ev("d", 12, 1),
            ],
            ..Fetched::default()
        };
        // Two events fit; the group at 11 has two, so the cut is at 11.
        let a = assemble(&request(0, 100, 2, 100), fetched.clone(), &[]).unwrap();
        assert_eq!(ids(&a), ["a"]);
        assert_eq!(a.to, t(11));
        // The byte cap bites the same way.
        let a = assemble(&request(0, 100, 100, 3), fetched, &[]).unwrap();
        assert_eq!(ids(&a), ["a", "b", "c"]);
        assert_eq!(a.to, t(12));
    }

    #[test]
    fn a_first_timestamp_larger_than_the_cap_is_taken_whole() {
        let fetched = Fetched {
            events: vec![
                ev("a", 10, 5),
                ev("b", 10, 5),
                ev("c", 10, 5),
                ev("d", 12, 1),
            ],
            ..Fetched::default()
        };
        let a = assemble(&request(0, 100, 1, 1), fetched, &[]).unwrap();
        assert_eq!(ids(&a), ["a", "b", "c"]);
        assert_eq!(a.to, t(12));
    }

    #[test]
    fn an_early_stop_bounds_the_batch_and_is_checked() {
        let fetched = Fetched {
            events: vec![ev("a", 10, 1), ev("b", 20, 1)],
            complete_to: Some(t(20)),
            ..Fetched::default()
        };
        let a = assemble(&request(0, 100, 100, 100), fetched, &[]).unwrap();
        assert_eq!(
            ids(&a),
            ["a"],
            "events at or after complete_to wait for the next cycle"
        );
        assert_eq!(a.to, t(20));

        for bad in [t(0), t(101)] {
            let fetched = Fetched {
                complete_to: Some(bad),
                ..Fetched::default()
            };
            let e = assemble(&request(0, 100, 1, 1), fetched, &[]).unwrap_err();
            assert!(matches!(e, Error::Fatal { .. }), "{e:?}");
        }
        // An early stop at or before the floor would make no progress.
        let mut r = request(0, 100, 1, 1);
        r.floor = t(50);
        let fetched = Fetched {
            complete_to: Some(t(50)),
            ..Fetched::default()
        };
        assert!(assemble(&r, fetched, &[]).is_err());
    }

    #[test]
    fn quarantined_records_are_deduplicated_by_content() {
        let q = Quarantined::new(Bytes::from_static(b"{bad"), "not JSON");
        let fetched = Fetched {
            quarantined: vec![q.clone(), q.clone()],
            ..Fetched::default()
        };
        let a = assemble(&request(0, 100, 10, 10), fetched.clone(), &[]).unwrap();
        assert_eq!(a.quarantined, vec![q.clone()]);
        let recent = vec![RecentId {
            at: t(100),
            id: q.id.clone(),
        }];
        let a = assemble(&request(0, 100, 10, 10), fetched, &recent).unwrap();
        assert!(a.quarantined.is_empty());
    }
}
