//! A stream's position at its source: an opaque, versioned cursor that the source owns and the
//! pipeline commits atomically with each batch.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{RecentId, Timestamp};
use crate::error::{Error, Result};

/// Where a source stands, as the checkpoint keeps it: which kind of cursor, its format version,
/// and its state as JSON. The pipeline never looks inside; only the source (through the cursor
/// kinds of [`crate::cursors`]) reads and writes the state.
///
/// A stream that has read nothing yet holds [`Cursor::start`]; its source then begins at the
/// checkpoint's watermark (the configured start, `INITIAL_CHECKPOINT`).
///
/// The state MUST stay small and bounded whatever the traffic: it is rewritten with every
/// commit. Each kind documents its bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    kind: String,
    version: u32,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    state: serde_json::Value,
}

impl Cursor {
    /// The kind of [`Cursor::start`].
    pub const START: &'static str = "start";

    /// Nothing read yet.
    pub fn start() -> Self {
        Self {
            kind: Self::START.to_owned(),
            version: 0,
            state: serde_json::Value::Null,
        }
    }

    /// A cursor of `kind` at format `version` holding `state`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `kind` is empty or is the reserved `start`, or the state does not
    /// serialize to JSON.
    pub fn encode<T: Serialize>(kind: &str, version: u32, state: &T) -> Result<Self> {
        if kind.is_empty() || kind == Self::START {
            return Err(Error::invalid(
                "cursor",
                format!("{kind:?} is not a usable cursor kind"),
            ));
        }
        let state = serde_json::to_value(state)
            .map_err(|e| Error::invalid("cursor", format!("{kind} state: {e}")))?;
        Ok(Self {
            kind: kind.to_owned(),
            version,
            state,
        })
    }

    /// The state of a cursor of `kind`, or `None` for [`Cursor::start`]. `accepts` says which
    /// format versions the caller reads.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the cursor is of another kind (the stream was read by another
    /// kind of source: a stream id reused for another source, or a setting changed under it),
    /// of a version not accepted, or its state does not parse; the message says which.
    pub fn decode<T: DeserializeOwned>(&self, kind: &str, accepts: &[u32]) -> Result<Option<T>> {
        if self.is_start() {
            return Ok(None);
        }
        if self.kind != kind {
            return Err(Error::invalid(
                "cursor",
                format!(
                    "the checkpoint holds a {:?} cursor but this source reads {kind:?} cursors: \
                     the stream was written by another kind of source; give this one its own \
                     stream id",
                    self.kind
                ),
            ));
        }
        if !accepts.contains(&self.version) {
            return Err(Error::invalid(
                "cursor",
                format!(
                    "{kind} cursor version {} is not one this build reads ({accepts:?}): run \
                     the release that wrote it, or a newer one",
                    self.version
                ),
            ));
        }
        serde_json::from_value(self.state.clone())
            .map(Some)
            .map_err(|e| Error::invalid("cursor", format!("{kind} state: {e}")))
    }

    /// Whether nothing has been read yet.
    pub fn is_start(&self) -> bool {
        self.kind == Self::START
    }

    /// The kind, e.g. `overlap`, `settled`, `ledger`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The state's format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Size of the serialized state, for metrics and for checking a kind's bound.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(&self.state).map_or(0, |v| v.len())
    }
}

impl Default for Cursor {
    fn default() -> Self {
        Self::start()
    }
}

/// The kind and version of the `overlap` cursor ([`crate::cursors::OverlappingWindows`]). Its
/// encoding lives here, beside [`RecentId`], because checkpoints written before cursors existed
/// are read as one. Version 2 adds `complete_before`; version 1 (without it) is still read.
const OVERLAP: (&str, u32) = ("overlap", 2);
const OVERLAP_READS: &[u32] = &[1, 2];

#[derive(Serialize, Deserialize)]
struct OverlapState {
    recent: Vec<RecentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    complete_before: Option<Stamp>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
struct Stamp(#[serde(with = "super::rfc3339_nanos")] Timestamp);

/// What an `overlap` cursor holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OverlapCursor {
    /// The ids (with times) committed at or after the start of the overlap.
    pub(crate) recent: Vec<RecentId>,
    /// Every source event before this time is committed, though it may lie after
    /// `watermark - lookback` (a window read long enough after its end that nothing in it can
    /// still appear). `None`: no more is known than `watermark - lookback`.
    pub(crate) complete_before: Option<Timestamp>,
}

/// An `overlap` cursor holding `state`.
pub(crate) fn overlap_cursor(state: OverlapCursor) -> Cursor {
    let state = OverlapState {
        recent: state.recent,
        complete_before: state.complete_before.map(Stamp),
    };
    Cursor::encode(OVERLAP.0, OVERLAP.1, &state)
        .unwrap_or_else(|e| unreachable!("an overlap cursor always serializes: {e}"))
}

/// What an `overlap` cursor holds (nothing for the start cursor).
pub(crate) fn overlap_state(cursor: &Cursor) -> Result<OverlapCursor> {
    Ok(cursor
        .decode::<OverlapState>(OVERLAP.0, OVERLAP_READS)?
        .map(|s| OverlapCursor {
            recent: s.recent,
            complete_before: s.complete_before.map(|c| c.0),
        })
        .unwrap_or_default())
}

/// A source position: the cursor and the watermark that summarises it.
///
/// The watermark is the time the stream's committed data has reached, as the source's cursor
/// kind defines it (never decreasing); it drives lag metrics and `backfill --until`, and is kept
/// beside the cursor so that stores and dashboards can read it without knowing the cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// See the type's documentation.
    #[serde(with = "super::rfc3339_nanos")]
    pub watermark: Timestamp,
    /// The source's cursor.
    pub cursor: Cursor,
}

impl Position {
    /// Nothing read yet, starting at `watermark`.
    pub fn start(watermark: Timestamp) -> Self {
        Self {
            watermark,
            cursor: Cursor::start(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct State {
        n: u32,
    }

    #[test]
    fn a_cursor_round_trips_and_refuses_other_kinds_and_versions() {
        let c = Cursor::encode("demo", 2, &State { n: 7 }).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"kind":"demo","version":2,"state":{"n":7}}"#);
        let back: Cursor = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.decode::<State>("demo", &[1, 2]).unwrap(),
            Some(State { n: 7 })
        );
        let other = back
            .decode::<State>("ledger", &[2])
            .unwrap_err()
            .to_string();
        assert!(other.contains("another kind of source"), "{other}");
        assert!(back.decode::<State>("demo", &[1]).is_err());
        assert_eq!(Cursor::start().decode::<State>("demo", &[1]).unwrap(), None);
        assert_eq!(
            serde_json::to_string(&Cursor::start()).unwrap(),
            r#"{"kind":"start","version":0}"#
        );
        assert!(Cursor::encode("start", 1, &State { n: 1 }).is_err());
        assert!(Cursor::encode("", 1, &State { n: 1 }).is_err());
    }

    #[test]
    fn an_overlap_cursor_of_version_1_still_reads() {
        let v1: Cursor = serde_json::from_str(
            r#"{"kind":"overlap","version":1,"state":{"recent":[
                {"at":"2026-11-20T10:01:00.500000000Z","id":"ev-1"}]}}"#,
        )
        .unwrap();
        let state = overlap_state(&v1).unwrap();
        assert_eq!(state.recent.len(), 1);
        assert_eq!(state.complete_before, None);
        // Written again it is version 2, and `complete_before` round-trips.
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00.000000001Z")
            .unwrap()
            .to_utc();
        let v2 = overlap_cursor(OverlapCursor {
            complete_before: Some(at),
            ..state
        });
        assert_eq!(v2.version(), 2);
        let back: Cursor = serde_json::from_str(&serde_json::to_string(&v2).unwrap()).unwrap();
        assert_eq!(overlap_state(&back).unwrap().complete_before, Some(at));
    }
}
