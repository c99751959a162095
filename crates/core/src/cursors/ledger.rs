//! The `ledger` cursor kind: which objects of a bucket are committed, over the lookback, and how
//! far into a large one (Logpush output).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{ObjectRef, ObjectSource, chrono};
use crate::domain::schema::DatasetSchema;
use crate::domain::{
    BatchLimits, Cursor, Event, Position, Quarantined, Read, ReadRequest, StreamId, Timestamp,
    Window, rfc3339_nanos,
};
use crate::error::{Error, Result};
use crate::ports::EventSource;

const KIND: &str = "ledger";
const VERSION: u32 = 1;

/// The object being read when a batch filled up, and the line the next batch starts at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Partial {
    key: String,
    #[serde(with = "rfc3339_nanos")]
    at: Timestamp,
    line: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// Committed objects whose `at` is at or after `watermark - lookback`, by key.
    #[serde(default)]
    done: BTreeMap<String, Stamp>,
    #[serde(default)]
    partial: Option<Partial>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Stamp(#[serde(with = "rfc3339_nanos")] Timestamp);

/// Reads an [`ObjectSource`] object by object, keeping a ledger of committed keys.
///
/// For buckets that receive immutable objects over time, where an object for an older interval
/// can land after newer ones (Logpush), so "list after the last key seen" would lose data.
///
/// - **Watermark**: the largest `at` of a committed object. Objects are listed from the
///   watermark less the lookback on; one that lands later than that after newer ones is not
///   seen (choose the lookback above the source's worst delivery delay; Logpush retries for
///   minutes).
/// - **Cursor**: the keys (with `at`) of committed objects with `at >= watermark - lookback`,
///   plus the key and line of one object read in part: bounded by the objects of one lookback
///   (one Logpush job writes at most one object per 30 s: 120 keys for an hour).
/// - **Batch**: the partial object first, then new objects in `(at, key)` order, whole or, when
///   one passes the caps, up to a line boundary (the rest in the next batches); at least one
///   line per read, so a single line above the caps is one batch.
/// - **Assumption**: objects are immutable once listed, and each line's id is unique and
///   stable (see the port).
#[derive(Debug)]
pub struct ObjectLedger<S: ?Sized> {
    inner: Arc<S>,
}

impl<S: ?Sized> ObjectLedger<S> {
    /// Reads `inner` with a `ledger` cursor.
    pub fn new(inner: Arc<S>) -> Self {
        Self { inner }
    }

    /// The object source.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

/// Records gathered for one batch, counted against the caps.
#[derive(Default)]
struct Gathered {
    events: Vec<Event>,
    quarantined: Vec<Quarantined>,
    bytes: usize,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

impl Gathered {
    fn count(&self) -> usize {
        self.events.len() + self.quarantined.len()
    }

    fn see(&mut self, t: Timestamp) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }

    /// What is left of `limits` (at least one record, so every read progresses).
    fn room(&self, limits: &BatchLimits) -> Result<BatchLimits> {
        BatchLimits::new(
            limits.max_events().saturating_sub(self.count()).max(1),
            limits.max_bytes().saturating_sub(self.bytes).max(1),
        )
    }
}

#[async_trait]
impl<S: ObjectSource + ?Sized> EventSource for ObjectLedger<S> {
    fn stream(&self) -> &StreamId {
        self.inner.stream()
    }

    fn schema(&self) -> &Arc<DatasetSchema> {
        self.inner.schema()
    }

    async fn read(&self, at: &Position, request: &ReadRequest) -> Result<Option<Read>> {
        let mut state: State = at.cursor.decode(KIND, &[VERSION])?.unwrap_or_default();
        let lookback = chrono(request.lookback);
        let horizon = at.watermark - lookback;
        let mut seen = HashSet::new();
        let mut todo: Vec<ObjectRef> = self
            .inner
            .list(horizon)
            .await?
            .into_iter()
            .filter(|o| o.at >= horizon && !state.done.contains_key(&o.key))
            .filter(|o| state.partial.as_ref().is_none_or(|p| p.key != o.key))
            .filter(|o| seen.insert(o.key.clone()))
            .collect();
        todo.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        let mut queue: Vec<(ObjectRef, u64)> = Vec::with_capacity(todo.len() + 1);
        if let Some(p) = state.partial.take() {
            let object = ObjectRef {
                key: p.key,
                at: p.at,
                size: 0,
            };
            queue.push((object, p.line));
        }
        queue.extend(todo.into_iter().map(|o| (o, 0)));
        if queue.is_empty() {
            return Ok(None);
        }

        let limits = request.limits;
        let mut got = Gathered::default();
        let mut watermark = at.watermark;
        let mut taken = 0;
        for (object, from_line) in &queue {
            let chunk = self
                .inner
                .read_object(object, *from_line, got.room(&limits)?)
                .await?;
            taken += 1;
            got.see(object.at);
            for e in chunk.events {
                got.see(e.occurred_at);
                got.bytes += e.size();
                got.events.push(e);
            }
            for q in chunk.quarantined {
                if let Some(t) = q.occurred_at {
                    got.see(t);
                }
                got.bytes += q.raw.len();
                got.quarantined.push(q);
            }
            match chunk.next_line {
                Some(line) if line > *from_line => {
                    state.partial = Some(Partial {
                        key: object.key.clone(),
                        at: object.at,
                        line,
                    });
                    break;
                }
                Some(line) => {
                    return Err(Error::fatal(
                        "object source",
                        format!(
                            "the source broke its contract: reading {} from line {from_line} \
                             stopped at line {line}",
                            object.key
                        ),
                    ));
                }
                None => {
                    state.done.insert(object.key.clone(), Stamp(object.at));
                    watermark = watermark.max(object.at);
                }
            }
            if limits.exceeded_by(got.count(), got.bytes) || got.count() >= limits.max_events() {
                break;
            }
        }
        let keep_from = watermark - lookback;
        state.done.retain(|_, Stamp(t)| *t >= keep_from);
        let backlog = state.partial.is_some() || taken < queue.len();
        let (Some(first), Some(last)) = (got.first, got.last) else {
            unreachable!("every object read is seen");
        };
        let end = last + chrono::Duration::nanoseconds(1);
        Ok(Some(Read {
            window: Window::new(first, end)?,
            events: got.events,
            quarantined: got.quarantined,
            next: Position {
                watermark,
                cursor: Cursor::encode(KIND, VERSION, &state)?,
            },
            backlog,
        }))
    }
}
