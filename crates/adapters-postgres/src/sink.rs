//! [`AnalyticsSink`] on PostgreSQL: a transaction that `COPY`s the events into a temporary
//! table and moves them with `INSERT … SELECT … ON CONFLICT DO NOTHING`, never row by row.
//!
//! A large batch (2 × [`MIN_SLICE`] events or more) is cut into contiguous slices written
//! concurrently, each in such a transaction on its own connection, so one batch uses more than
//! one server core (see `docs/sinks/postgres.md` for the measurements). The contract allows it:
//! `Ok` only when every slice committed; a slice that committed before another failed holds
//! true events, which the retry rewrites as no-ops.
//!
//! Events go to their dataset's table, derived from the batch's schema and created (or given
//! the schema's new columns and indexes) on the first write of that schema (see `tables`);
//! quarantined records go to `quarantine`. The primary keys make a rewrite a no-op, which is the
//! idempotence the contract asks for.

use std::sync::Arc;

use async_trait::async_trait;
use cflogs_core::schema::{DatasetSchema, Derived};
use cflogs_core::{AnalyticsSink, Batch, Event, Quarantined, Result, Timestamp, WriteReport};
use futures_util::future::join_all;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};

use crate::config::TimescaleConfig;
use crate::error::{PgError, sqlstate};
use crate::mapping::{push_event, push_header, push_trailer};
use crate::tables::{Conversion, Table};

/// How much encoded data to send per `COPY` message: PostgreSQL parses one while the next is
/// encoded.
const CHUNK_BYTES: usize = 512 * 1024;

const INSERT_QUARANTINE: &str = "INSERT INTO quarantine (stream, quarantine_id, dataset, raw, reason, occurred_at) \
     SELECT $1, q.id, $2, q.raw, q.reason, q.at \
     FROM UNNEST($3::text[], $4::bytea[], $5::text[], $6::timestamptz[]) AS q(id, raw, reason, at) \
     ON CONFLICT DO NOTHING";

/// Whether PostgreSQL refused a value (SQLSTATE class 22, data exception).
fn is_data_exception(error: &PgError) -> bool {
    match error {
        PgError::Sql { source, .. } => sqlstate(source).is_some_and(|c| c.starts_with("22")),
        _ => false,
    }
}

/// Fewest events worth a slice of their own.
pub(crate) const MIN_SLICE: usize = 1_000;

/// The contiguous `[from, to)` ranges `n` events are written in: up to `parallelism`, at most
/// one per [`MIN_SLICE`] events, covering every event once.
fn slices(n: usize, parallelism: usize) -> Vec<(usize, usize)> {
    let count = parallelism.min(n / MIN_SLICE).max(1);
    (0..count)
        .map(|k| (k * n / count, (k + 1) * n / count))
        .collect()
}

/// The analytics sink on PostgreSQL. Cheap to clone; see the module documentation.
#[derive(Clone, Debug)]
pub struct PostgresSink {
    pool: PgPool,
    parallelism: usize,
    timescale: Option<Arc<TimescaleConfig>>,
    /// The tables prepared by this sink and its clones.
    prepared: Arc<Derived<Table>>,
}

impl PostgresSink {
    /// A sink writing through `pool` into a database prepared by
    /// [`PostgresClient::migrate`](crate::PostgresClient::migrate).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            parallelism: crate::PostgresConfig::DEFAULT_WRITE_PARALLELISM as usize,
            timescale: None,
            prepared: Arc::default(),
        }
    }

    /// The same sink making each table it creates a TimescaleDB hypertable with `config`'s
    /// policies (for a database where the extension is installed).
    #[must_use]
    pub fn with_timescale(mut self, config: Arc<TimescaleConfig>) -> Self {
        self.timescale = Some(config);
        self
    }

    /// Creates the table of `schema` if it does not exist, adds the columns and indexes the
    /// schema has and the table lacks, and makes it a hypertable when TimescaleDB is used.
    /// Idempotent; concurrent callers (other processes too) wait on an advisory lock. The
    /// sink calls it on the first write of each schema.
    ///
    /// # Errors
    /// [`Error::Invalid`](cflogs_core::Error::Invalid) for a dataset name the sink keeps for
    /// itself; [`Error::Fatal`](cflogs_core::Error::Fatal) when PostgreSQL refuses the DDL.
    pub async fn prepare(&self, schema: &Arc<DatasetSchema>) -> Result<()> {
        self.table(schema).await.map(drop)
    }

    async fn table(&self, schema: &Arc<DatasetSchema>) -> Result<Arc<Table>> {
        let name = schema.dataset().as_str();
        if let Some(table) = self.prepared.get(schema) {
            return Ok(table);
        }
        let default = TimescaleConfig::default();
        let timescale = self.timescale.as_deref();
        let table = Arc::new(Table::new(schema, timescale.unwrap_or(&default))?);
        let sql = |e| PgError::sql("preparing the dataset table", e);
        let mut tx = self.pool.begin().await.map_err(sql)?;
        // One DDL writer at a time in the whole database: CREATE … IF NOT EXISTS is not safe
        // against a concurrent creator. The key is "cflogs DDL".
        sqlx::query("SELECT pg_advisory_xact_lock(4063721117955110981)")
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        sqlx::query(&table.create)
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        // Only what is missing: ALTER TABLE and CREATE INDEX lock the table even when they
        // find nothing to do, and would queue every reader behind a long query on it.
        let have: Vec<(String,)> = sqlx::query_as(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             UNION ALL SELECT indexname::text FROM pg_indexes \
             WHERE schemaname = current_schema() AND tablename = $1",
        )
        .bind(&table.name)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql)?;
        let missing = table
            .columns
            .iter()
            .chain(&table.indexes)
            .filter(|(name, _)| !have.iter().any(|(h,)| h == name))
            .map(|(_, statement)| statement);
        let hypertable = timescale
            .is_some()
            .then_some(&table.hypertable)
            .into_iter()
            .flatten();
        for statement in missing.chain(hypertable) {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(sql)?;
        }
        tx.commit().await.map_err(sql)?;
        tracing::debug!(
            dataset = name,
            columns = schema.columns().len(),
            "dataset table ready"
        );
        self.prepared.insert(schema, table.clone());
        Ok(table)
    }

    /// The same sink writing a batch of at least `2 × 1,000` events in up to `slices`
    /// concurrent transactions, each on its own connection (1 = the whole batch in one
    /// transaction). More than one uses more than one server core; see
    /// `docs/sinks/postgres.md` for the measurements.
    #[must_use]
    pub fn with_parallelism(mut self, slices: usize) -> Self {
        self.parallelism = slices.max(1);
        self
    }

    /// Writes `events` (and `quarantined`) of `batch` in one transaction.
    async fn write_slice(
        &self,
        table: &Table,
        batch: &Batch,
        events: &[Event],
        quarantined: &[Quarantined],
        conversion: Conversion,
    ) -> Result<WriteReport, PgError> {
        let sql = |context| move |e| PgError::sql(context, e);
        let mut conn =
            ClosedUnlessReturned::new(self.pool.acquire().await.map_err(sql("analytics write"))?);
        let mut tx = conn.begin().await.map_err(sql("analytics write"))?;
        let mut report = WriteReport::default();
        if !events.is_empty() {
            sqlx::query(&table.stage_ddl)
                .execute(&mut *tx)
                .await
                .map_err(sql("analytics write: staging table"))?;
            let mut copy = tx
                .copy_in_raw(&table.copy)
                .await
                .map_err(sql("analytics write: copy"))?;
            let mut buf = Vec::with_capacity(CHUNK_BYTES + 8192);
            push_header(&mut buf);
            for event in events {
                push_event(&mut buf, &batch.schema, event);
                if buf.len() >= CHUNK_BYTES {
                    let full = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK_BYTES + 8192));
                    copy.send(full)
                        .await
                        .map_err(sql("analytics write: copy"))?;
                }
            }
            push_trailer(&mut buf);
            copy.send(buf).await.map_err(sql("analytics write: copy"))?;
            copy.finish().await.map_err(sql("analytics write: copy"))?;

            let inserted = sqlx::query(table.insert(conversion))
                .bind(batch.stream.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sql("analytics write: insert"))?
                .rows_affected();
            report.inserted = inserted;
            report.duplicates = (events.len() as u64).saturating_sub(inserted);
        }
        if !quarantined.is_empty() {
            let ids: Vec<&str> = quarantined.iter().map(|q| q.id.as_str()).collect();
            let raws: Vec<&[u8]> = quarantined.iter().map(|q| &q.raw[..]).collect();
            let reasons: Vec<String> = quarantined
                .iter()
                .map(|q| q.reason.replace('\0', "\u{fffd}"))
                .collect();
            let times: Vec<Option<Timestamp>> = quarantined.iter().map(|q| q.occurred_at).collect();
            report.quarantined = sqlx::query(INSERT_QUARANTINE)
                .bind(batch.stream.as_str())
                .bind(batch.dataset().as_str())
                .bind(ids)
                .bind(raws)
                .bind(reasons)
                .bind(times)
                .execute(&mut *tx)
                .await
                .map_err(sql("analytics write: quarantine"))?
                .rows_affected();
        }
        tx.commit().await.map_err(sql("analytics write: commit"))?;
        conn.returned();
        Ok(report)
    }

    /// One slice, retried once with the per-row fallbacks when PostgreSQL refuses a value.
    async fn write_slice_or_fallback(
        &self,
        table: &Table,
        batch: &Batch,
        events: &[Event],
        quarantined: &[Quarantined],
    ) -> Result<WriteReport, PgError> {
        match self
            .write_slice(table, batch, events, quarantined, Conversion::Fast)
            .await
        {
            Err(e) if is_data_exception(&e) => {
                tracing::warn!(
                    stream = %batch.stream,
                    error = %e,
                    "postgresql refused a value of the batch, writing it again with per-row fallbacks"
                );
                self.write_slice(table, batch, events, quarantined, Conversion::Safe)
                    .await
            }
            other => other,
        }
    }
}

/// A pooled connection that goes back to the pool only when the write on it ran to its end.
///
/// A write cut short (its future dropped by a timeout, a shutdown or a sibling's failure, or
/// an early return on an error) may leave a `COPY` half-sent: sqlx 0.8 then sends `CopyFail`
/// without counting the reply it will get, and the next query on the connection reads that
/// reply as its own (an `INSERT … RETURNING` that "returns no row"). Such a connection is
/// closed instead; PostgreSQL rolls its transaction back when it goes.
struct ClosedUnlessReturned {
    conn: PoolConnection<Postgres>,
    returned: bool,
}

impl ClosedUnlessReturned {
    fn new(conn: PoolConnection<Postgres>) -> Self {
        Self {
            conn,
            returned: false,
        }
    }

    /// The write on the connection ran to its end: the connection may serve another.
    fn returned(mut self) {
        self.returned = true;
    }
}

impl std::ops::Deref for ClosedUnlessReturned {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for ClosedUnlessReturned {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for ClosedUnlessReturned {
    fn drop(&mut self) {
        if !self.returned {
            self.conn.close_on_drop();
        }
    }
}

#[async_trait]
impl AnalyticsSink for PostgresSink {
    async fn write(&self, batch: &Batch) -> Result<WriteReport> {
        if batch.is_empty() {
            return Ok(WriteReport::default());
        }
        let table = self.table(&batch.schema).await?;
        let bounds = slices(batch.events.len(), self.parallelism);
        let results = join_all(bounds.iter().enumerate().map(|(k, &(from, to))| {
            // The quarantined records ride with the first slice.
            let quarantined: &[Quarantined] = if k == 0 { &batch.quarantined } else { &[] };
            self.write_slice_or_fallback(&table, batch, &batch.events[from..to], quarantined)
        }))
        .await;
        let mut report = WriteReport::default();
        for result in results {
            let part = result?;
            report.inserted += part.inserted;
            report.duplicates += part.duplicates;
            report.quarantined += part.quarantined;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::slices;

    #[test]
    fn a_batch_is_cut_into_contiguous_slices_of_at_least_a_thousand() {
        assert_eq!(slices(10_000, 2), [(0, 5_000), (5_000, 10_000)]);
        assert_eq!(
            slices(10_001, 3),
            [(0, 3_333), (3_333, 6_667), (6_667, 10_001)]
        );
        assert_eq!(
            slices(1_999, 2),
            [(0, 1_999)],
            "two slices need 2 x 1,000 events"
        );
        assert_eq!(slices(2_000, 8), [(0, 1_000), (1_000, 2_000)]);
        assert_eq!(slices(5, 4), [(0, 5)]);
        assert_eq!(slices(10_000, 1), [(0, 10_000)]);
        assert_eq!(slices(10_000, 0), [(0, 10_000)], "0 means one transaction");
    }
}
