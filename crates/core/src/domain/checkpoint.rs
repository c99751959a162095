//! A stream's progress, as the checkpoint store keeps it.

use serde::{Deserialize, Serialize};

use super::{
    Cursor, Digest, Epoch, EventId, Manifest, Position, StreamId, Timestamp, window::rfc3339_nanos,
};
use crate::error::{Error, Result};

/// An id committed recently, with its time: the state of an `overlap` cursor
/// ([`crate::cursors::OverlappingWindows`]), which drops it when a later window (which overlaps
/// by the lookback) returns it again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecentId {
    /// The time it is kept by: its `occurred_at`, or for a quarantined record without one, the
    /// end of the window it was read in (later than its true time).
    #[serde(with = "rfc3339_nanos")]
    pub at: Timestamp,
    /// The id.
    pub id: EventId,
}

/// The `(seq, epoch, lease)` a compare-and-set commit expects to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommitGuard {
    /// Committed batches so far.
    pub seq: u64,
    /// Epoch of the lease holder.
    pub epoch: Epoch,
    /// The lease holder's token ([`Checkpoint::lease`]).
    pub lease: u64,
}

/// A new lease token for [`Checkpoint::lease`]: random, in `1..=i64::MAX` (so SQL stores keep
/// it as a signed 64-bit integer), drawn by every [`CheckpointStore::acquire`](crate::CheckpointStore::acquire).
pub fn fresh_lease() -> u64 {
    use std::hash::BuildHasher;
    let bits = std::collections::hash_map::RandomState::new().hash_one((
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id(),
    ));
    (bits >> 1).max(1)
}

/// Progress of one stream: the source's position (cursor and watermark), committed atomically
/// with the batch that reached it, and the archive chain.
///
/// What the watermark promises depends on the cursor kind (see [`crate::cursors`]); for every
/// kind it never decreases.
///
/// Documents written before cursors existed (`recent` beside the watermark, no `cursor`) load
/// as an `overlap` cursor holding those ids, so existing deployments keep their progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredCheckpoint")]
pub struct Checkpoint {
    /// The stream.
    pub stream: StreamId,
    /// Number of committed batches (0 = none).
    pub seq: u64,
    /// Fencing token of the lease holder.
    pub epoch: Epoch,
    /// A random token the lease holder drew when it acquired ([`fresh_lease`]), checked with
    /// the epoch by every commit: epochs count from 1 again when a store loses a stream's row
    /// (a new database, a deleted row), and an instance that held epoch `n` before must not
    /// match the one that holds epoch `n` after. 0 in documents written before it existed.
    pub lease: u64,
    /// The time committed data has reached, as the cursor kind defines it. Kept to the
    /// nanosecond: a store that rounds it breaks deduplication at the window's edge.
    #[serde(with = "rfc3339_nanos")]
    pub watermark: Timestamp,
    /// The source's position, opaque to the pipeline.
    pub cursor: Cursor,
    /// Hash of the last committed manifest ([`Digest::GENESIS`] before the first).
    pub chain_head: Digest,
    /// The last committed manifest while it is not yet published.
    pub pending: Option<Manifest>,
}

/// What a stored checkpoint document may hold: today's form, or the form written before
/// cursors existed (`recent` ids and no `cursor`).
#[derive(Deserialize)]
struct StoredCheckpoint {
    stream: StreamId,
    seq: u64,
    epoch: Epoch,
    #[serde(default)]
    lease: u64,
    #[serde(with = "rfc3339_nanos")]
    watermark: Timestamp,
    #[serde(default)]
    cursor: Option<Cursor>,
    #[serde(default)]
    recent: Option<Vec<RecentId>>,
    chain_head: Digest,
    pending: Option<Manifest>,
}

impl From<StoredCheckpoint> for Checkpoint {
    fn from(s: StoredCheckpoint) -> Self {
        let cursor = match (s.cursor, s.recent) {
            (Some(cursor), _) => cursor,
            (None, recent) => super::overlap_cursor(super::OverlapCursor {
                recent: recent.unwrap_or_default(),
                complete_before: None,
            }),
        };
        Self {
            stream: s.stream,
            seq: s.seq,
            epoch: s.epoch,
            lease: s.lease,
            watermark: s.watermark,
            cursor,
            chain_head: s.chain_head,
            pending: s.pending,
        }
    }
}

impl Checkpoint {
    /// A stream's first checkpoint: nothing committed, no lease, starting at `watermark` with
    /// [`Cursor::start`].
    pub fn genesis(stream: StreamId, watermark: Timestamp) -> Self {
        Self {
            stream,
            seq: 0,
            epoch: Epoch::NONE,
            lease: 0,
            watermark,
            cursor: Cursor::start(),
            chain_head: Digest::GENESIS,
            pending: None,
        }
    }

    /// The source position this checkpoint holds.
    pub fn position(&self) -> Position {
        Position {
            watermark: self.watermark,
            cursor: self.cursor.clone(),
        }
    }

    /// The guard a commit replacing this checkpoint must carry.
    pub fn guard(&self) -> CommitGuard {
        CommitGuard {
            seq: self.seq,
            epoch: self.epoch,
            lease: self.lease,
        }
    }

    /// The checkpoint as one JSON document, for stores that keep it whole.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|e| unreachable!("checkpoint serialization: {e}"))
    }

    /// Parses [`Checkpoint::to_json`] output.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the document is not a checkpoint.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::invalid("checkpoint", e.to_string()))
    }

    /// [`Checkpoint::to_json`] as text, for stores that keep it in a text or JSON column.
    pub fn to_json_string(&self) -> String {
        String::from_utf8(self.to_json())
            .unwrap_or_else(|e| unreachable!("checkpoint JSON is UTF-8: {e}"))
    }

    /// Parses a stored document and checks it against the row it came from: the `stream` key
    /// and the `(seq, epoch)` columns a store keeps beside the document for its compare-and-set.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the document does not parse or disagrees with the row.
    pub fn from_stored(stream: &StreamId, seq: i64, epoch: i64, document: &[u8]) -> Result<Self> {
        let checkpoint = Self::from_json(document)?;
        if checkpoint.stream != *stream
            || i64::try_from(checkpoint.seq) != Ok(seq)
            || i64::try_from(checkpoint.epoch.0) != Ok(epoch)
        {
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "the row (stream {stream}, seq {seq}, epoch {epoch}) disagrees with its \
                     document (stream {}, seq {}, epoch {})",
                    checkpoint.stream, checkpoint.seq, checkpoint.epoch
                ),
            ));
        }
        Ok(checkpoint)
    }

    /// The checks of [`CheckpointStore::commit`](crate::CheckpointStore::commit) on what the
    /// store holds for `next.stream` (`stored`), made by every store in the same words.
    ///
    /// # Errors
    /// [`Error::Conflict`] when nothing is stored or its `(seq, epoch)` is not `guard`;
    /// [`Error::Invalid`] when `next` breaks [`Checkpoint::check_successor`].
    pub fn check_commit(
        stored: Option<&Checkpoint>,
        guard: CommitGuard,
        next: &Checkpoint,
    ) -> Result<()> {
        let Some(stored) = stored else {
            return Err(Error::conflict(
                &next.stream,
                "no checkpoint is stored: the stream was never acquired",
            ));
        };
        if (stored.seq, stored.epoch) == (guard.seq, guard.epoch) && stored.lease != guard.lease {
            return Err(Error::conflict(
                &next.stream,
                format!(
                    "epoch {} is held by another instance: the store lost the stream's \
                     checkpoint and counted epochs from 1 again since this one acquired it",
                    guard.epoch
                ),
            ));
        }
        if stored.guard() != guard {
            return Err(Error::conflict(
                &next.stream,
                format!(
                    "expected seq {} epoch {}, found seq {} epoch {}",
                    guard.seq, guard.epoch, stored.seq, stored.epoch
                ),
            ));
        }
        stored.check_successor(next)
    }

    /// This checkpoint moved to where `newest`, a published manifest of the stream with a
    /// higher seq, says the stream stood once it was committed: its seq, its hash as the chain
    /// head, the position it recorded, and the manifest itself pending again (so the next
    /// cycle publishes it once more, which checks its objects); the epoch stays this one's.
    /// How a checkpoint store that lost its state (or was restored from an older backup) is
    /// put back in step with the archive.
    ///
    /// # Errors
    /// [`Error::Fatal`] when the manifest is of another stream, not ahead of this checkpoint,
    /// or was written before manifests recorded positions (then only a checkpoint backup that
    /// matches the archive can restore the stream).
    pub fn restored_from(&self, newest: &Manifest) -> Result<Checkpoint> {
        if newest.stream != self.stream || newest.seq <= self.seq {
            return Err(Error::fatal(
                "checkpoint restore",
                format!(
                    "manifest {} of {} cannot restore the checkpoint of {} at seq {}",
                    newest.seq, newest.stream, self.stream, self.seq
                ),
            ));
        }
        let Some(resume) = &newest.resume else {
            return Err(Error::fatal(
                "checkpoint restore",
                format!(
                    "the archive holds {} batches of {} but its newest manifest was written \
                     before manifests recorded the stream's position, so the checkpoint cannot \
                     be rebuilt from it: restore the checkpoint store from a backup that matches \
                     the archive, or give the stream a new archive prefix",
                    newest.seq, self.stream
                ),
            ));
        };
        Ok(Checkpoint {
            stream: self.stream.clone(),
            seq: newest.seq,
            epoch: self.epoch,
            lease: self.lease,
            watermark: resume.watermark,
            cursor: resume.cursor.clone(),
            chain_head: newest.hash(),
            pending: Some(newest.clone()),
        })
    }

    /// Checks what a commit replacing `self` by `next` must satisfy, whatever the store:
    /// same stream, same epoch, `seq` unchanged (watermark-only commit) or plus one, `watermark`
    /// not decreasing, and a new batch carrying its manifest as `pending`; or a restore
    /// ([`Checkpoint::restored_from`]): several batches ahead, the pending manifest's hash as
    /// the chain head and its recorded position as the watermark and cursor.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the broken rule.
    pub fn check_successor(&self, next: &Checkpoint) -> Result<()> {
        let rule = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid("checkpoint commit", what.to_owned()))
            }
        };
        rule(next.stream == self.stream, "stream changed")?;
        rule(next.epoch == self.epoch, "epoch changed")?;
        rule(next.lease == self.lease, "lease changed")?;
        // A restore (see `restored_from`): the newest manifest of the archive, pending again,
        // with the position it recorded. Its link to this chain head cannot be checked when it
        // is more than one batch ahead; its hash and position can.
        let restore = next.seq > self.seq
            && next.pending.as_ref().is_some_and(|p| {
                p.seq == next.seq
                    && p.stream == next.stream
                    && next.chain_head == p.hash()
                    && p.resume
                        .as_ref()
                        .is_some_and(|r| r.watermark == next.watermark && r.cursor == next.cursor)
            });
        rule(
            next.seq == self.seq || next.seq == self.seq + 1 || restore,
            "seq must stay or grow by one",
        )?;
        // Nothing committed yet (the watermark is only the configured start) or several
        // batches restored: the archive's position stands, earlier or not.
        rule(
            next.watermark >= self.watermark
                || (restore && (self.seq == 0 || next.seq > self.seq + 1)),
            "watermark decreased",
        )?;
        if next.seq > self.seq + 1 {
            return Ok(());
        }
        if next.seq == self.seq + 1 {
            let Some(pending) = &next.pending else {
                return Err(Error::invalid(
                    "checkpoint commit",
                    "a new batch must carry its manifest as pending",
                ));
            };
            rule(pending.seq == next.seq, "pending manifest has another seq")?;
            rule(
                pending.prev == self.chain_head,
                "manifest does not link to the chain head",
            )?;
            rule(
                next.chain_head == pending.hash(),
                "chain head is not the manifest's hash",
            )?;
        } else {
            rule(
                next.chain_head == self.chain_head,
                "chain head changed without a batch",
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A manifest of `stream`'s batch `seq`, with a recorded position or none.
    fn archived(stream: &StreamId, seq: u64, resume: Option<Position>) -> Manifest {
        let t = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        Manifest {
            version: Manifest::VERSION,
            stream: stream.clone(),
            dataset: crate::Dataset::audit_logs(),
            seq,
            epoch: Epoch(7),
            window: crate::Window::new(t, t + chrono::Duration::minutes(5)).unwrap(),
            events: 3,
            quarantined: 0,
            objects: Vec::new(),
            prev: Digest::of(b"batch before"),
            created_at: t,
            resume,
        }
    }

    #[test]
    fn a_checkpoint_is_restored_only_from_a_newer_manifest_of_its_stream_with_a_position() {
        let stream = StreamId::new("s/a").unwrap();
        let start = chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap();
        let fresh = Checkpoint {
            epoch: Epoch(2),
            ..Checkpoint::genesis(stream.clone(), start)
        };
        let at = chrono::DateTime::from_timestamp(1_795_000_300, 5).unwrap();
        let m = archived(&stream, 9, Some(Position::start(at)));
        let restored = fresh.restored_from(&m).unwrap();
        assert_eq!(
            (
                restored.seq,
                restored.epoch,
                restored.watermark,
                restored.chain_head
            ),
            (9, Epoch(2), at, m.hash())
        );
        assert_eq!(
            restored.pending.as_ref(),
            Some(&m),
            "pending again: re-published"
        );
        // Several batches ahead and an earlier watermark than the configured start: a restore.
        fresh.check_successor(&restored).unwrap();
        // The same jump with another position, another head or nothing pending is not.
        let mut moved = restored.clone();
        moved.watermark = start;
        assert!(fresh.check_successor(&moved).is_err());
        let mut headless = restored.clone();
        headless.chain_head = Digest::GENESIS;
        assert!(fresh.check_successor(&headless).is_err());
        let mut bare = restored.clone();
        bare.pending = None;
        assert!(fresh.check_successor(&bare).is_err());
        // From a behind (not empty) checkpoint too, but never backwards or across streams.
        let behind = Checkpoint {
            seq: 4,
            ..fresh.clone()
        };
        assert!(behind.restored_from(&m).is_ok());
        let ahead = Checkpoint {
            seq: 9,
            ..fresh.clone()
        };
        assert!(ahead.restored_from(&m).is_err());
        let other = archived(&StreamId::new("s/b").unwrap(), 9, Some(Position::start(at)));
        assert!(fresh.restored_from(&other).is_err());
        // A manifest written before positions were recorded cannot restore anything.
        let legacy = archived(&stream, 9, None);
        match fresh.restored_from(&legacy) {
            Err(Error::Fatal { source, .. }) => {
                assert!(
                    source
                        .to_string()
                        .contains("restore the checkpoint store from a backup")
                );
            }
            other => panic!("expected Fatal, got {other:?}"),
        }
    }

    #[test]
    fn a_stored_document_must_agree_with_its_row() {
        let stream = StreamId::new("s/a").unwrap();
        let mut cp = Checkpoint::genesis(stream.clone(), chrono::Utc::now());
        cp.seq = 3;
        cp.epoch = Epoch(2);
        let doc = cp.to_json_string();
        assert_eq!(
            Checkpoint::from_stored(&stream, 3, 2, doc.as_bytes()).unwrap(),
            cp
        );
        assert!(Checkpoint::from_stored(&stream, 4, 2, doc.as_bytes()).is_err());
        assert!(Checkpoint::from_stored(&stream, 3, 1, doc.as_bytes()).is_err());
        let other = StreamId::new("s/b").unwrap();
        assert!(Checkpoint::from_stored(&other, 3, 2, doc.as_bytes()).is_err());
        assert!(Checkpoint::from_stored(&stream, 3, 2, b"{").is_err());
    }

    #[test]
    fn a_document_written_before_cursors_loads_as_an_overlap_cursor() {
        // As the previous release stored it: `recent` beside the watermark, no cursor.
        let old = r#"{"stream":"audit-v1/account/a","seq":4,"epoch":3,
            "watermark":"2026-11-20T10:05:00.000000000Z",
            "recent":[{"at":"2026-11-20T10:01:00.500000000Z","id":"ev-1"}],
            "chain_head":"0000000000000000000000000000000000000000000000000000000000000000",
            "pending":null}"#;
        let cp = Checkpoint::from_json(old.as_bytes()).unwrap();
        assert_eq!(cp.seq, 4);
        assert_eq!(cp.cursor.kind(), "overlap");
        let ids = crate::domain::overlap_state(&cp.cursor).unwrap().recent;
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].id.as_str(), "ev-1");
        // Written back, it is in today's form and loads the same.
        let again = Checkpoint::from_json(&cp.to_json()).unwrap();
        assert_eq!(again, cp);
        let doc: serde_json::Value = serde_json::from_slice(&cp.to_json()).unwrap();
        assert!(doc.get("recent").is_none(), "{doc}");
        assert_eq!(doc["cursor"]["kind"], "overlap");
    }
}
