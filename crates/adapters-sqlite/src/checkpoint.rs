//! [`CheckpointStore`] on SQLite: one row per stream in `cflogs_checkpoints`, the whole
//! checkpoint as its JSON document and `seq`, `epoch` as columns.
//!
//! `acquire` and `commit` run in `BEGIN IMMEDIATE` transactions, which take SQLite's write
//! lock before reading: the read, the compare-and-set and the write are atomic also against
//! other processes using the same file. The `UPDATE` repeats the compare-and-set in its
//! `WHERE`. A `COMMIT` that fails has an unknown outcome for the caller and is reported as
//! [`Error::Transient`](cflogs_core::Error::Transient); `load` tells what happened.

use async_trait::async_trait;
use cflogs_core::domain::rfc3339_nanos;
use cflogs_core::{
    Checkpoint, CheckpointStore, CommitGuard, Epoch, Error, Result, StreamId, Timestamp,
    fresh_lease,
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

impl SqliteCheckpointStore {
    /// A store writing through `writer` and reading through `readers`, in a database opened
    /// by [`SqliteClient::open`](crate::SqliteClient::open).
    pub fn new(writer: SqlitePool, readers: SqlitePool) -> Self {
        Self { writer, readers }
    }
}

#[async_trait]
impl CheckpointStore for SqliteCheckpointStore {
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
        let sql = |context| move |e| SqliteError::sql(context, e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("checkpoint acquire"))?;
        let acquired = match read(&mut tx, stream, "checkpoint acquire").await? {
            None => {
                let genesis = Checkpoint {
                    epoch: Epoch::NONE.next(),
                    lease: fresh_lease(),
                    ..Checkpoint::genesis(stream.clone(), initial)
                };
                sqlx::query(
                    "INSERT INTO cflogs_checkpoints (stream, seq, epoch, watermark, checkpoint) \
                     VALUES (?, 0, ?, ?, ?)",
                )
                .bind(stream.as_str())
                .bind(integer("epoch", genesis.epoch.0)?)
                .bind(rfc3339_nanos::format(&genesis.watermark))
                .bind(document(&genesis))
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
                    "UPDATE cflogs_checkpoints SET epoch = ?, checkpoint = ?, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE stream = ?",
                )
                .bind(integer("epoch", next.epoch.0)?)
                .bind(document(&next))
                .bind(stream.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sql("checkpoint acquire"))?;
                next
            }
        };
        tx.commit().await.map_err(sql("checkpoint acquire"))?;
        Ok(acquired)
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
