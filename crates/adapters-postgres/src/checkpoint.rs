//! [`CheckpointStore`] on PostgreSQL: one row per stream in `cflogs_checkpoints`, holding the
//! whole checkpoint as its JSON document (timestamps to the nanosecond, the pending manifest)
//! and `seq`, `epoch` as columns for the compare-and-set.
//!
//! - `acquire` and `claim` are one `INSERT … ON CONFLICT DO UPDATE SET epoch = epoch + 1 …
//!   WHERE <the lease is free> RETURNING`: the row lock makes concurrent acquires take strictly
//!   increasing epochs, and a live lease of another holder (`holder`, `lease_expires_at` by
//!   the database's `now()`) returns no row. `renew` and `release` update those two columns
//!   where the document's lease token is the caller's.
//! - `commit` locks the row (`SELECT … FOR UPDATE`), compares `(seq, epoch)` with the guard,
//!   checks [`Checkpoint::check_successor`], and replaces the row with an `UPDATE` whose `WHERE`
//!   repeats the compare-and-set, all in one transaction.
//! - A `COMMIT` that fails (connection lost) has an unknown outcome: it is reported as
//!   [`Error::Transient`](cflogs_core::Error::Transient) and the pipeline resolves it with
//!   `load`.

use std::time::Duration;

use async_trait::async_trait;
use cflogs_core::{
    Checkpoint, CheckpointStore, Claim, CommitGuard, Epoch, Error, Result, StreamId, Timestamp,
    fresh_lease, lease_held, lease_renewed,
};
use sqlx::PgPool;

use crate::error::{PgError, sqlstate};

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

    /// The stream taken with a new epoch and lease token for `claim`'s holder (nobody when
    /// `None`: an acquire, which always takes), in one statement: the row lock makes concurrent
    /// takes draw strictly increasing epochs, and the `WHERE` of the upsert refuses a live
    /// lease of another holder unless the claim takes over (then nothing is returned).
    async fn take(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: Option<&Claim>,
    ) -> Result<Option<Checkpoint>> {
        let lease = fresh_lease();
        let genesis = Checkpoint {
            epoch: Epoch::NONE.next(),
            lease,
            ..Checkpoint::genesis(stream.clone(), initial)
        };
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| PgError::sql("checkpoint acquire", e))?;
        // A claim never queues behind a lock for long (see below); an acquire waits as before.
        if claim.is_some() {
            sqlx::query("SET LOCAL lock_timeout = '2s'")
                .execute(&mut *tx)
                .await
                .map_err(|e| PgError::sql("checkpoint acquire", e))?;
        }
        let row: Result<Option<(i64, i64, String)>, sqlx::Error> = sqlx::query_as(
            "INSERT INTO cflogs_checkpoints AS c \
                (stream, seq, epoch, watermark, checkpoint, holder, lease_expires_at) \
             VALUES ($1, 0, 1, $2, $3::jsonb, $5, now() + make_interval(secs => $6)) \
             ON CONFLICT (stream) DO UPDATE SET \
                epoch = c.epoch + 1, \
                checkpoint = jsonb_set(jsonb_set(c.checkpoint, '{epoch}', to_jsonb(c.epoch + 1)), \
                    '{lease}', to_jsonb($4::bigint)), \
                holder = $5, \
                lease_expires_at = now() + make_interval(secs => $6), \
                updated_at = now() \
             WHERE $7 OR c.holder IS NULL OR c.holder = $5 OR c.lease_expires_at IS NULL \
                OR c.lease_expires_at <= now() \
             RETURNING seq, epoch, checkpoint::text",
        )
        .bind(stream.as_str())
        .bind(initial)
        .bind(document(&genesis))
        .bind(bigint("lease", lease)?)
        .bind(claim.map(|c| c.holder.as_str()))
        .bind(claim.map(|c| c.ttl.as_secs_f64()))
        .bind(claim.is_none_or(|c| c.take_over))
        .fetch_optional(&mut *tx)
        .await;
        let row = match row {
            // The row is locked by a transaction still open: another instance in the middle of
            // a commit, or one frozen there (its session ends after its stall limit). A claim
            // waits in standby rather than blocking behind it.
            Err(e) if claim.is_some() && sqlstate(&e).as_deref() == Some("55P03") => {
                return Err(Error::conflict(
                    stream,
                    "another instance's transaction holds the stream's checkpoint row (a \
                     commit in flight, or a stalled process whose session the server ends \
                     after its idle-in-transaction limit)",
                ));
            }
            row => row.map_err(|e| PgError::sql("checkpoint acquire", e))?,
        };
        tx.commit()
            .await
            .map_err(|e| PgError::sql("checkpoint acquire", e))?;
        Ok(row
            .map(|(seq, epoch, doc)| parse(stream, seq, epoch, &doc))
            .transpose()?)
    }
}

#[async_trait]
impl CheckpointStore for PostgresCheckpointStore {
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
        let taken = self.take(stream, initial, None).await?;
        Ok(taken.expect("an unconditional take returns the row"))
    }

    async fn claim(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: &Claim,
    ) -> Result<Checkpoint> {
        if let Some(cp) = self.take(stream, initial, Some(claim)).await? {
            return Ok(cp);
        }
        let (holder, remaining): (Option<String>, Option<f64>) = sqlx::query_as(
            "SELECT holder, EXTRACT(EPOCH FROM lease_expires_at - now())::float8 \
             FROM cflogs_checkpoints WHERE stream = $1",
        )
        .bind(stream.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| PgError::sql("checkpoint claim", e))?;
        Err(lease_held(
            stream,
            holder.as_deref().unwrap_or("another instance"),
            Duration::from_secs_f64(remaining.unwrap_or(0.0).max(0.0)),
        ))
    }

    async fn renew(&self, stream: &StreamId, lease: u64, ttl: Duration) -> Result<()> {
        let renewed = sqlx::query(
            "UPDATE cflogs_checkpoints SET lease_expires_at = now() + make_interval(secs => $3) \
             WHERE stream = $1 AND (checkpoint->>'lease')::bigint = $2",
        )
        .bind(stream.as_str())
        .bind(bigint("lease", lease)?)
        .bind(ttl.as_secs_f64())
        .execute(&self.pool)
        .await
        .map_err(|e| PgError::sql("lease renewal", e))?
        .rows_affected();
        lease_renewed(stream, renewed)
    }

    async fn release(&self, stream: &StreamId, lease: u64) -> Result<()> {
        sqlx::query(
            "UPDATE cflogs_checkpoints SET holder = NULL, lease_expires_at = NULL \
             WHERE stream = $1 AND (checkpoint->>'lease')::bigint = $2",
        )
        .bind(stream.as_str())
        .bind(bigint("lease", lease)?)
        .execute(&self.pool)
        .await
        .map_err(|e| PgError::sql("lease release", e))?;
        Ok(())
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
