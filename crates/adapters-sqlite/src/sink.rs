//! [`AnalyticsSink`] on SQLite: one `BEGIN IMMEDIATE` transaction per batch, multi-row
//! `INSERT … ON CONFLICT DO NOTHING` statements of a few hundred rows (SQLite has no `COPY`;
//! few large statements keep the per-statement cost low).
//!
//! SQLite holds every value exactly, so nothing is rewritten: the raw event is stored as its
//! bytes (TEXT when UTF-8, a BLOB otherwise), metadata as the mapped JSON text, times to the
//! nanosecond. Only `ip_address` is normalized: the canonical address, or NULL when the source
//! sent something that is not one (the text stays in `raw_event`).

use std::borrow::Cow;
use std::sync::OnceLock;

use async_trait::async_trait;
use cflogs_core::domain::rfc3339_nanos;
use cflogs_core::{AnalyticsSink, Batch, Dataset, Event, Fields, Quarantined, Result, WriteReport};
use sqlx::SqlitePool;
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments};

use crate::error::SqliteError;

/// Rows per statement: 500 rows of 13 values stay far below SQLite's 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 500;

const AUDIT_COLUMNS: &str = "event_id, \"timestamp\", account_id, actor_email, actor_type, \
    action_type, action_result, resource_type, resource_id, ip_address, metadata, raw_event, stream";
const RAW_COLUMNS: &str = "dataset, stream, event_id, \"timestamp\", raw_event";
const QUARANTINE_COLUMNS: &str = "stream, quarantine_id, dataset, raw, reason, occurred_at";

/// `INSERT INTO table (columns) VALUES (?, …), … ON CONFLICT DO NOTHING` for `rows` rows.
pub(crate) fn insert_sql(table: &str, columns: &str, rows: usize) -> String {
    let width = columns.split(',').count();
    let row = format!("({})", vec!["?"; width].join(", "));
    format!(
        "INSERT INTO {table} ({columns}) VALUES {} ON CONFLICT DO NOTHING",
        vec![row; rows].join(", ")
    )
}

/// The statements for full chunks, built once: only a batch's last chunk needs its own.
static FULL_AUDIT: OnceLock<String> = OnceLock::new();
static FULL_RAW: OnceLock<String> = OnceLock::new();
static FULL_QUARANTINE: OnceLock<String> = OnceLock::new();

/// The insert statement for a chunk of `rows` rows: the cached one for a full chunk.
fn statement<'a>(
    full: &'a OnceLock<String>,
    table: &str,
    columns: &str,
    rows: usize,
) -> Cow<'a, str> {
    if rows == ROWS_PER_STATEMENT {
        Cow::Borrowed(full.get_or_init(|| insert_sql(table, columns, rows)))
    } else {
        Cow::Owned(insert_sql(table, columns, rows))
    }
}

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// Binds the raw bytes exactly: as TEXT when UTF-8, as a BLOB otherwise.
fn bind_raw<'q>(query: SqliteQuery<'q>, raw: &'q [u8]) -> SqliteQuery<'q> {
    match std::str::from_utf8(raw) {
        Ok(text) => query.bind(text),
        Err(_) => query.bind(raw),
    }
}

fn bind_audit<'q>(
    mut query: SqliteQuery<'q>,
    stream: &'q str,
    event: &'q Event,
) -> SqliteQuery<'q> {
    query = query
        .bind(event.id.as_str())
        .bind(rfc3339_nanos::format(&event.occurred_at));
    query = match &event.fields {
        Fields::Audit(f) => query
            .bind(f.account_id.as_deref().unwrap_or(""))
            .bind(f.actor_email.as_deref())
            .bind(f.actor_type.as_deref())
            .bind(f.action_type.as_deref())
            .bind(f.action_result.as_deref())
            .bind(f.resource_type.as_deref())
            .bind(f.resource_id.as_deref())
            .bind(f.parsed_ip().map(|a| a.to_string()))
            .bind(f.metadata.as_deref()),
        _ => {
            let none: Option<&str> = None;
            query
                .bind("")
                .bind(none)
                .bind(none)
                .bind(none)
                .bind(none)
                .bind(none)
                .bind(none)
                .bind(none)
                .bind(none)
        }
    };
    bind_raw(query, &event.raw).bind(stream)
}

/// The analytics sink on SQLite. Cheap to clone; see the module documentation.
#[derive(Clone, Debug)]
pub struct SqliteSink {
    writer: SqlitePool,
}

impl SqliteSink {
    /// A sink writing through `writer` (one connection) into a database opened by
    /// [`SqliteClient::open`](crate::SqliteClient::open).
    pub fn new(writer: SqlitePool) -> Self {
        Self { writer }
    }

    async fn write_batch(&self, batch: &Batch) -> Result<WriteReport, SqliteError> {
        let sql = |context| move |e| SqliteError::sql(context, e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("analytics write"))?;
        let audit = batch.dataset.as_str() == Dataset::AUDIT_LOGS;
        let stream = batch.stream.as_str();
        let mut inserted = 0;
        for chunk in batch.events.chunks(ROWS_PER_STATEMENT) {
            let text = if audit {
                statement(&FULL_AUDIT, "audit_logs", AUDIT_COLUMNS, chunk.len())
            } else {
                statement(&FULL_RAW, "raw_events", RAW_COLUMNS, chunk.len())
            };
            let mut query = sqlx::query(&text);
            for event in chunk {
                query = if audit {
                    bind_audit(query, stream, event)
                } else {
                    let q = query
                        .bind(batch.dataset.as_str())
                        .bind(stream)
                        .bind(event.id.as_str())
                        .bind(rfc3339_nanos::format(&event.occurred_at));
                    bind_raw(q, &event.raw)
                };
            }
            inserted += query
                .execute(&mut *tx)
                .await
                .map_err(sql("analytics write: insert"))?
                .rows_affected();
        }
        let mut quarantined = 0;
        for chunk in batch.quarantined.chunks(ROWS_PER_STATEMENT) {
            let text = statement(
                &FULL_QUARANTINE,
                "quarantine",
                QUARANTINE_COLUMNS,
                chunk.len(),
            );
            let mut query = sqlx::query(&text);
            for q in chunk {
                let Quarantined {
                    id,
                    raw,
                    reason,
                    occurred_at,
                } = q;
                query = query
                    .bind(stream)
                    .bind(id.as_str())
                    .bind(batch.dataset.as_str())
                    .bind(&raw[..])
                    .bind(reason.as_str())
                    .bind(occurred_at.as_ref().map(rfc3339_nanos::format));
            }
            quarantined += query
                .execute(&mut *tx)
                .await
                .map_err(sql("analytics write: quarantine"))?
                .rows_affected();
        }
        tx.commit().await.map_err(sql("analytics write: commit"))?;
        Ok(WriteReport {
            inserted,
            duplicates: (batch.events.len() as u64).saturating_sub(inserted),
            quarantined,
        })
    }
}

#[async_trait]
impl AnalyticsSink for SqliteSink {
    async fn write(&self, batch: &Batch) -> Result<WriteReport> {
        if batch.is_empty() {
            return Ok(WriteReport::default());
        }
        Ok(self.write_batch(batch).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_have_one_placeholder_per_value() {
        let sql = insert_sql("raw_events", RAW_COLUMNS, 2);
        assert_eq!(sql.matches('?').count(), 10);
        assert!(sql.ends_with("(?, ?, ?, ?, ?), (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"));
        assert_eq!(
            insert_sql("audit_logs", AUDIT_COLUMNS, ROWS_PER_STATEMENT)
                .matches('?')
                .count(),
            13 * ROWS_PER_STATEMENT
        );
    }
}
