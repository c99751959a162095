//! [`CheckpointStore`] on PostgreSQL: one row per stream in `cflogs_checkpoints`, holding the
//! whole checkpoint as its JSON document (timestamps to the nanosecond, the pending manifest)
//! and `seq`, `epoch` as columns for the compare-and-set.
//!
//! - `acquire` is one `INSERT … ON CONFLICT DO UPDATE SET epoch = epoch + 1 … RETURNING`: the
//!   row lock makes concurrent acquires take strictly increasing epochs.
//! - `commit` locks the row (`SELECT … FOR UPDATE`), compares `(seq, epoch)` with the guard,
//!   checks [`Checkpoint::check_successor`], and replaces the row with an `UPDATE` whose `WHERE`
//!   repeats the compare-and-set, all in one transaction.
//! - A `COMMIT` that fails (connection lost) has an unknown outcome: it is reported as
//!   [`Error::Transient`](cflogs_core::Error::Transient) and the pipeline resolves it with
//!   `load`.

use async_trait::async_trait;
use cflogs_core::{
    Checkpoint, CheckpointStore, CommitGuard, Epoch, Error, Result, StreamId, Timestamp,
    fresh_lease,
};
use sqlx::PgPool;

use crate::error::PgError;

/// The checkpoint store on PostgreSQL. Cheap to clone; see the module documentation.
#[derive(Clone, Debug)]
pub struct PostgresCheckpointStore {
    pool: PgPool,
}

fn bigint(what: &'static str, value: u64) -> Result<i64, PgError> {
    i64::try_from(value).map_err(|_| PgError::OutOfRange { what, value })
}

fn document(checkpoint: &Checkpoint) -> String {
    checkpoint.to_json_string()
}

/// The checkpoint of a stored row, checked against the row's columns.
fn parse(stream: &StreamId, seq: i64, epoch: i64, doc: &str) -> Result<Checkpoint, PgError> {
    Checkpoint::from_stored(stream, seq, epoch, doc.as_bytes()).map_err(|e| {
        PgError::CorruptCheckpoint {
            stream: stream.clone(),
            reason: e.to_string(),
        }
    })
}

impl PostgresCheckpointStore {
    /// A store using `pool`, in a database prepared by
    /// [`PostgresClient::migrate`](crate::PostgresClient::migrate).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl CheckpointStore for PostgresCheckpointStore {
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
        let lease = fresh_lease();
        let genesis = Checkpoint {
            epoch: Epoch::NONE.next(),
            lease,
            ..Checkpoint::genesis(stream.clone(), initial)
        };
        let (seq, epoch, doc): (i64, i64, String) = sqlx::query_as(
            "INSERT INTO cflogs_checkpoints AS c (stream, seq, epoch, watermark, checkpoint) \
             VALUES ($1, 0, 1, $2, $3::jsonb) \
             ON CONFLICT (stream) DO UPDATE SET \
                epoch = c.epoch + 1, \
                checkpoint = jsonb_set(jsonb_set(c.checkpoint, '{epoch}', to_jsonb(c.epoch + 1)), \
                    '{lease}', to_jsonb($4::bigint)), \
                updated_at = now() \
             RETURNING seq, epoch, checkpoint::text",
        )
        .bind(stream.as_str())
        .bind(initial)
        .bind(document(&genesis))
        .bind(bigint("lease", lease)?)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| PgError::sql("checkpoint acquire", e))?;
        Ok(parse(stream, seq, epoch, &doc)?)
    }

    async fn load(&self, stream: &StreamId) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, epoch, checkpoint::text FROM cflogs_checkpoints WHERE stream = $1",
        )
        .bind(stream.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| PgError::sql("checkpoint load", e))?;
        match row {
            None => Ok(None),
            Some((seq, epoch, doc)) => Ok(Some(parse(stream, seq, epoch, &doc)?)),
        }
    }

    async fn commit(&self, guard: CommitGuard, next: &Checkpoint) -> Result<()> {
        let stream = &next.stream;
        let guard_seq = bigint("seq", guard.seq)?;
        let guard_epoch = bigint("epoch", guard.epoch.0)?;
        let next_seq = bigint("seq", next.seq)?;
        let next_epoch = bigint("epoch", next.epoch.0)?;
        let sql = |context| move |e| PgError::sql(context, e);

        let mut tx = self.pool.begin().await.map_err(sql("checkpoint commit"))?;
        let row: Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT seq, epoch, checkpoint::text FROM cflogs_checkpoints WHERE stream = $1 FOR UPDATE",
        )
        .bind(stream.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql("checkpoint commit"))?;
        let stored = row
            .map(|(seq, epoch, doc)| parse(stream, seq, epoch, &doc))
            .transpose()?;
        Checkpoint::check_commit(stored.as_ref(), guard, next)?;

        let updated = sqlx::query(
            "UPDATE cflogs_checkpoints SET seq = $4, epoch = $5, watermark = $6, \
                checkpoint = $7::jsonb, updated_at = now() \
             WHERE stream = $1 AND seq = $2 AND epoch = $3",
        )
        .bind(stream.as_str())
        .bind(guard_seq)
        .bind(guard_epoch)
        .bind(next_seq)
        .bind(next_epoch)
        .bind(next.watermark)
        .bind(document(next))
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
                PgError::sql("checkpoint commit", e),
            )
        })
    }
}
