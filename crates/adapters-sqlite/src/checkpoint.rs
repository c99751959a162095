//! [`CheckpointStore`] on SQLite: one row per stream in `cflogs_checkpoints`, the whole
//! checkpoint as its JSON document and `seq`, `epoch` as columns.
//!
//! Leases: `holder` and `lease_expires_ms` (SQLite's clock) decide who may claim a stream;
//! `renew` and `release` update them where the document's lease token is the caller's.
//!
//! `acquire`, `claim` and `commit` run in `BEGIN IMMEDIATE` transactions, which take SQLite's write
//! lock before reading: the read, the compare-and-set and the write are atomic also against
//! other processes using the same file. The `UPDATE` repeats the compare-and-set in its
//! `WHERE`. A `COMMIT` that fails has an unknown outcome for the caller and is reported as
//! [`Error::Transient`](cflogs_core::Error::Transient); `load` tells what happened.

use std::time::Duration;

use async_trait::async_trait;
use cflogs_core::domain::rfc3339_nanos;
use cflogs_core::{
    Checkpoint, CheckpointStore, Claim, CommitGuard, Epoch, Error, Result, StreamId, Timestamp,
    fresh_lease, lease_held, lease_renewed,
};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::SqliteError;

/// The checkpoint store on SQLite. Cheap to clone; see the module documentation.
#[derive(Clone, Debug)]
pub struct SqliteCheckpointStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

fn integer(what: &'static str, value: u64) -> Result<i64, SqliteError> {
    i64::try_from(value).map_err(|_| SqliteError::OutOfRange { what, value })
}

fn document(checkpoint: &Checkpoint) -> String {
    checkpoint.to_json_string()
}

/// The checkpoint of a stored row, checked against the row's columns.
fn parse(stream: &StreamId, seq: i64, epoch: i64, doc: &str) -> Result<Checkpoint, SqliteError> {
    Checkpoint::from_stored(stream, seq, epoch, doc.as_bytes()).map_err(|e| {
        SqliteError::CorruptCheckpoint {
            stream: stream.clone(),
            reason: e.to_string(),
        }
    })
}

async fn read(
    tx: &mut Transaction<'_, Sqlite>,
    stream: &StreamId,
    context: &'static str,
) -> Result<Option<Checkpoint>, SqliteError> {
    let row: Option<(i64, i64, String)> =
        sqlx::query_as("SELECT seq, epoch, checkpoint FROM cflogs_checkpoints WHERE stream = ?")
            .bind(stream.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(|e| SqliteError::sql(context, e))?;
    row.map(|(seq, epoch, doc)| parse(stream, seq, epoch, &doc))
        .transpose()
}

/// What [`SqliteCheckpointStore::take`] found.
enum Taken {
    /// The stream, taken.
    Checkpoint(Box<Checkpoint>),
    /// Another holder's lease, live for `remaining`.
    Held { holder: String, remaining: Duration },
}

/// SQLite's clock in milliseconds since 1970, as an SQL expression.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SqliteCheckpointStore {
    /// A store writing through `writer` and reading through `readers`, in a database opened
    /// by [`SqliteClient::open`](crate::SqliteClient::open).
    pub fn new(writer: SqlitePool, readers: SqlitePool) -> Self {
        Self { writer, readers }
    }

    /// The stream taken with a new epoch and lease token for `claim`'s holder (nobody when
    /// `None`: an acquire, which always takes), unless another holder's lease is live and the
    /// claim does not take over, in one
    /// `BEGIN IMMEDIATE` transaction; expiries are SQLite's clock in milliseconds.
    async fn take(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: Option<&Claim>,
    ) -> Result<Taken> {
        let sql = |context| move |e| SqliteError::sql(context, e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("checkpoint acquire"))?;
        let (holder, expires, now): (Option<String>, Option<i64>, i64) = sqlx::query_as(&format!(
            "SELECT holder, lease_expires_ms, {NOW_MS} FROM (SELECT 1) \
             LEFT JOIN cflogs_checkpoints ON stream = ?"
        ))
        .bind(stream.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(sql("checkpoint acquire"))?;
        let mine = claim.map(|c| c.holder.as_str());
        if let (Some(holder), Some(expires)) = (holder, expires)
            && expires > now
            && Some(holder.as_str()) != mine
            && claim.is_some_and(|c| !c.take_over)
        {
            let remaining = Duration::from_millis(u64::try_from(expires - now).unwrap_or(0));
            return Ok(Taken::Held { holder, remaining });
        }
        let expires = claim.map(|c| now.saturating_add(millis(c.ttl)));
        let acquired = match read(&mut tx, stream, "checkpoint acquire").await? {
            None => {
                let genesis = Checkpoint {
                    epoch: Epoch::NONE.next(),
                    lease: fresh_lease(),
                    ..Checkpoint::genesis(stream.clone(), initial)
                };
                sqlx::query(
                    "INSERT INTO cflogs_checkpoints \
                        (stream, seq, epoch, watermark, checkpoint, holder, lease_expires_ms) \
                     VALUES (?, 0, ?, ?, ?, ?, ?)",
                )
                .bind(stream.as_str())
                .bind(integer("epoch", genesis.epoch.0)?)
                .bind(rfc3339_nanos::format(&genesis.watermark))
                .bind(document(&genesis))
                .bind(mine)
                .bind(expires)
                .execute(&mut *tx)
                .await
                .map_err(sql("checkpoint acquire"))?;
                genesis
            }
            Some(stored) => {
                let next = Checkpoint {
                    epoch: stored.epoch.next(),
                    lease: fresh_lease(),
                    ..stored
                };
                sqlx::query(
                    "UPDATE cflogs_checkpoints SET epoch = ?, checkpoint = ?, holder = ?, \
                     lease_expires_ms = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                     WHERE stream = ?",
                )
                .bind(integer("epoch", next.epoch.0)?)
                .bind(document(&next))
                .bind(mine)
                .bind(expires)
                .bind(stream.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sql("checkpoint acquire"))?;
                next
            }
        };
        tx.commit().await.map_err(sql("checkpoint acquire"))?;
        Ok(Taken::Checkpoint(Box::new(acquired)))
    }
}

#[async_trait]
impl CheckpointStore for SqliteCheckpointStore {
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
        match self.take(stream, initial, None).await? {
            Taken::Checkpoint(cp) => Ok(*cp),
            Taken::Held { holder, .. } => Err(Error::fatal(
                "checkpoint acquire",
                format!("an unconditional acquire of {stream} was refused for {holder}"),
            )),
        }
    }

    async fn claim(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: &Claim,
    ) -> Result<Checkpoint> {
        match self.take(stream, initial, Some(claim)).await? {
            Taken::Checkpoint(cp) => Ok(*cp),
            Taken::Held { holder, remaining } => Err(lease_held(stream, &holder, remaining)),
        }
    }

    async fn renew(&self, stream: &StreamId, lease: u64, ttl: Duration) -> Result<()> {
        let renewed = sqlx::query(&format!(
            "UPDATE cflogs_checkpoints SET lease_expires_ms = {NOW_MS} + ? \
             WHERE stream = ? AND json_extract(checkpoint, '$.lease') = ?"
        ))
        .bind(millis(ttl))
        .bind(stream.as_str())
        .bind(integer("lease", lease)?)
        .execute(&self.writer)
        .await
        .map_err(|e| SqliteError::sql("lease renewal", e))?
        .rows_affected();
        lease_renewed(stream, renewed)
    }

    async fn release(&self, stream: &StreamId, lease: u64) -> Result<()> {
        sqlx::query(
            "UPDATE cflogs_checkpoints SET holder = NULL, lease_expires_ms = NULL \
             WHERE stream = ? AND json_extract(checkpoint, '$.lease') = ?",
        )
        .bind(stream.as_str())
        .bind(integer("lease", lease)?)
        .execute(&self.writer)
        .await
        .map_err(|e| SqliteError::sql("lease release", e))?;
        Ok(())
    }

    async fn load(&self, stream: &StreamId) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, epoch, checkpoint FROM cflogs_checkpoints WHERE stream = ?",
        )
        .bind(stream.as_str())
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| SqliteError::sql("checkpoint load", e))?;
        Ok(row
            .map(|(seq, epoch, doc)| parse(stream, seq, epoch, &doc))
            .transpose()?)
    }

    async fn commit(&self, guard: CommitGuard, next: &Checkpoint) -> Result<()> {
        let stream = &next.stream;
        let guard_seq = integer("seq", guard.seq)?;
        let guard_epoch = integer("epoch", guard.epoch.0)?;
        let next_seq = integer("seq", next.seq)?;
        let next_epoch = integer("epoch", next.epoch.0)?;
        let sql = |context| move |e| SqliteError::sql(context, e);

        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("checkpoint commit"))?;
        let stored = read(&mut tx, stream, "checkpoint commit").await?;
        Checkpoint::check_commit(stored.as_ref(), guard, next)?;
        let updated = sqlx::query(
            "UPDATE cflogs_checkpoints SET seq = ?, epoch = ?, watermark = ?, checkpoint = ?, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE stream = ? AND seq = ? AND epoch = ?",
        )
        .bind(next_seq)
        .bind(next_epoch)
        .bind(rfc3339_nanos::format(&next.watermark))
        .bind(document(next))
        .bind(stream.as_str())
        .bind(guard_seq)
        .bind(guard_epoch)
        .execute(&mut *tx)
        .await
        .map_err(sql("checkpoint commit"))?
        .rows_affected();
        if updated != 1 {
            return Err(Error::conflict(
                stream,
                format!(
                    "the checkpoint moved away from seq {} epoch {}",
                    guard.seq, guard.epoch
                ),
            ));
        }
        tx.commit().await.map_err(|e| {
            Error::transient(
                "checkpoint commit (outcome unknown: reload the checkpoint to see whether it applied)",
                SqliteError::sql("checkpoint commit", e),
            )
        })
    }
}
