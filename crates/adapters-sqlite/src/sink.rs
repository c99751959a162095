//! [`AnalyticsSink`] on SQLite: one `BEGIN IMMEDIATE` transaction per batch, multi-row
//! `INSERT … ON CONFLICT DO NOTHING` statements of a few hundred rows (SQLite has no `COPY`;
//! few large statements keep the per-statement cost low).
//!
//! Events go to their dataset's table, derived from the batch's schema and created (or given
//! the schema's new columns and indexes) on the first write of that schema: `event_id`,
//! `"timestamp"`, the schema's columns, `raw_event`, `ingestion_time`, `stream`, with the
//! primary key `("timestamp", <key columns>, event_id, stream)`, as in PostgreSQL.
//!
//! SQLite holds every value exactly, so nothing is rewritten: the raw event is stored as its
//! bytes (TEXT when UTF-8, a BLOB otherwise), JSON columns as the mapped JSON text, times as
//! RFC 3339 text to the nanosecond, booleans as 0/1, addresses in canonical form.

use std::sync::Arc;

use async_trait::async_trait;
use cflogs_core::domain::rfc3339_nanos;
use cflogs_core::schema::{ColumnType, DatasetSchema, Derived, Value, index_name};
use cflogs_core::{AnalyticsSink, Batch, Event, Quarantined, Result, WriteReport};
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments};
use sqlx::{Row, SqlitePool};

use crate::error::SqliteError;

/// Most rows per statement; fewer when the table is wide, so a statement stays below SQLite's
/// 32,766 parameters.
const ROWS_PER_STATEMENT: usize = 500;

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

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_type(ty: ColumnType, key: bool) -> &'static str {
    match ty {
        ColumnType::Text if key => "TEXT NOT NULL DEFAULT ''",
        ColumnType::Integer | ColumnType::Boolean => "INTEGER",
        ColumnType::Float => "REAL",
        _ => "TEXT",
    }
}

/// What the sink runs for one schema, built once per schema.
#[derive(Debug)]
struct Table {
    name: String,
    create: Vec<String>,
    /// `(column, definition)` for `ALTER TABLE … ADD COLUMN` when the table lacks it.
    columns: Vec<(String, String)>,
    insert_columns: String,
    rows_per_statement: usize,
    full: String,
}

impl Table {
    fn new(schema: &DatasetSchema) -> Result<Self> {
        let name = schema.table_name()?.to_owned();
        let table = quote(&name);
        let columns: Vec<(String, String)> = schema
            .columns()
            .iter()
            .map(|c| {
                let definition = format!("{} {}", quote(c.name()), column_type(c.ty(), c.is_key()));
                (c.name().to_owned(), definition)
            })
            .collect();
        let mut body = vec![
            "event_id TEXT NOT NULL".to_owned(),
            "\"timestamp\" TEXT NOT NULL".to_owned(),
        ];
        body.extend(columns.iter().map(|(_, d)| d.clone()));
        body.push("raw_event TEXT NOT NULL".to_owned());
        body.push(
            "ingestion_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                .to_owned(),
        );
        body.push("stream TEXT NOT NULL".to_owned());
        let mut key = vec!["\"timestamp\"".to_owned()];
        key.extend(schema.key_columns().map(|c| quote(c.name())));
        key.extend(["event_id".to_owned(), "stream".to_owned()]);
        body.push(format!("PRIMARY KEY ({})", key.join(", ")));
        let mut create = vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} ({})",
            body.join(", ")
        )];
        create.extend(schema.columns().iter().filter(|c| c.is_indexed()).map(|c| {
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {table} ({})",
                quote(&index_name(&name, c.name())),
                quote(c.name())
            )
        }));
        let mut targets = vec!["event_id".to_owned(), "\"timestamp\"".to_owned()];
        targets.extend(schema.columns().iter().map(|c| quote(c.name())));
        targets.extend(["raw_event".to_owned(), "stream".to_owned()]);
        let insert_columns = targets.join(", ");
        let rows_per_statement = (32_000 / targets.len()).clamp(1, ROWS_PER_STATEMENT);
        Ok(Self {
            full: insert_sql(&table, &insert_columns, rows_per_statement),
            name,
            create,
            columns,
            insert_columns,
            rows_per_statement,
        })
    }

    /// The insert statement for a chunk of `rows` rows: the prepared one for a full chunk.
    fn statement(&self, rows: usize) -> std::borrow::Cow<'_, str> {
        if rows == self.rows_per_statement {
            std::borrow::Cow::Borrowed(&self.full)
        } else {
            std::borrow::Cow::Owned(insert_sql(&quote(&self.name), &self.insert_columns, rows))
        }
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

/// Binds one value of a column of type `ty` (key columns: `''` for NULL); a value of another
/// type than the column's is NULL.
fn bind_value<'q>(
    query: SqliteQuery<'q>,
    ty: ColumnType,
    key: bool,
    value: Option<&'q Value>,
) -> SqliteQuery<'q> {
    match (ty, value) {
        (ColumnType::Text, Some(Value::Text(v))) => query.bind(v.as_str()),
        (ColumnType::Text, _) if key => query.bind(""),
        (ColumnType::Json, Some(Value::Json(v))) => query.bind(v.as_str()),
        (ColumnType::Integer, Some(Value::Integer(v))) => query.bind(*v),
        (ColumnType::Float, Some(Value::Float(v))) => query.bind(*v),
        (ColumnType::Boolean, Some(Value::Boolean(v))) => query.bind(i64::from(*v)),
        (ColumnType::Timestamp(_), Some(Value::Timestamp(t))) => {
            query.bind(rfc3339_nanos::format(t))
        }
        (ColumnType::Ip, Some(Value::Ip(ip))) => query.bind(ip.to_string()),
        _ => query.bind(None::<&str>),
    }
}

fn bind_event<'q>(
    mut query: SqliteQuery<'q>,
    schema: &DatasetSchema,
    stream: &'q str,
    event: &'q Event,
) -> SqliteQuery<'q> {
    query = query
        .bind(event.id.as_str())
        .bind(rfc3339_nanos::format(&event.occurred_at));
    for (i, column) in schema.columns().iter().enumerate() {
        query = bind_value(query, column.ty(), column.is_key(), event.value(i));
    }
    bind_raw(query, &event.raw).bind(stream)
}

/// The analytics sink on SQLite. Cheap to clone; see the module documentation.
#[derive(Clone, Debug)]
pub struct SqliteSink {
    writer: SqlitePool,
    /// The tables prepared by this sink and its clones.
    prepared: Arc<Derived<Table>>,
}

impl SqliteSink {
    /// A sink writing through `writer` (one connection) into a database opened by
    /// [`SqliteClient::open`](crate::SqliteClient::open).
    pub fn new(writer: SqlitePool) -> Self {
        Self {
            writer,
            prepared: Arc::default(),
        }
    }

    /// Creates the table of `schema` if it does not exist and adds the columns and indexes
    /// the schema has and the table lacks. Idempotent. The sink calls it on the first write of
    /// each schema.
    ///
    /// # Errors
    /// [`Error::Invalid`](cflogs_core::Error::Invalid) for a dataset name the sink keeps for
    /// itself; [`Error::Fatal`](cflogs_core::Error::Fatal) when SQLite refuses the DDL.
    pub async fn prepare(&self, schema: &Arc<DatasetSchema>) -> Result<()> {
        self.table(schema).await.map(drop)
    }

    async fn table(&self, schema: &Arc<DatasetSchema>) -> Result<Arc<Table>> {
        if let Some(table) = self.prepared.get(schema) {
            return Ok(table);
        }
        let table = Arc::new(Table::new(schema)?);
        let sql = |e| SqliteError::sql("preparing the dataset table", e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql)?;
        sqlx::query(&table.create[0])
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        let have: Vec<String> = sqlx::query(&format!("PRAGMA table_info({})", quote(&table.name)))
            .fetch_all(&mut *tx)
            .await
            .map_err(sql)?
            .iter()
            .map(|row| row.get::<String, _>("name"))
            .collect();
        for (column, definition) in &table.columns {
            if !have.contains(column) {
                sqlx::query(&format!(
                    "ALTER TABLE {} ADD COLUMN {definition}",
                    quote(&table.name)
                ))
                .execute(&mut *tx)
                .await
                .map_err(sql)?;
            }
        }
        for statement in &table.create[1..] {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(sql)?;
        }
        tx.commit().await.map_err(sql)?;
        self.prepared.insert(schema, table.clone());
        Ok(table)
    }

    async fn write_batch(&self, batch: &Batch) -> Result<WriteReport> {
        let table = if batch.events.is_empty() {
            None
        } else {
            Some(self.table(&batch.schema).await?)
        };
        Ok(self.write_rows(table.as_deref(), batch).await?)
    }

    async fn write_rows(
        &self,
        table: Option<&Table>,
        batch: &Batch,
    ) -> Result<WriteReport, SqliteError> {
        let sql = |context| move |e| SqliteError::sql(context, e);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(sql("analytics write"))?;
        let stream = batch.stream.as_str();
        let mut inserted = 0;
        if let Some(table) = table {
            for chunk in batch.events.chunks(table.rows_per_statement) {
                let text = table.statement(chunk.len());
                let mut query = sqlx::query(&text);
                for event in chunk {
                    query = bind_event(query, &batch.schema, stream, event);
                }
                inserted += query
                    .execute(&mut *tx)
                    .await
                    .map_err(sql("analytics write: insert"))?
                    .rows_affected();
            }
        }
        let mut quarantined = 0;
        for chunk in batch.quarantined.chunks(ROWS_PER_STATEMENT) {
            let text = insert_sql("quarantine", QUARANTINE_COLUMNS, chunk.len());
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
                    .bind(batch.dataset().as_str())
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
        self.write_batch(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cflogs_core::Dataset;

    #[test]
    fn statements_have_one_placeholder_per_value() {
        let sql = insert_sql("t", "a, b, c, d, e", 2);
        assert_eq!(sql.matches('?').count(), 10);
        assert!(sql.ends_with("(?, ?, ?, ?, ?), (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"));
        let audit = Table::new(&DatasetSchema::builtin(&Dataset::audit_logs())).unwrap();
        assert_eq!(audit.rows_per_statement, ROWS_PER_STATEMENT);
        assert_eq!(audit.full.matches('?').count(), 13 * ROWS_PER_STATEMENT);
    }

    #[test]
    fn the_audit_table_is_the_one_migration_0001_created() {
        let audit = Table::new(&DatasetSchema::builtin(&Dataset::audit_logs())).unwrap();
        assert_eq!(
            audit.create[0],
            "CREATE TABLE IF NOT EXISTS \"audit_logs\" (event_id TEXT NOT NULL, \"timestamp\" TEXT NOT NULL, \
             \"account_id\" TEXT NOT NULL DEFAULT '', \"actor_email\" TEXT, \"actor_type\" TEXT, \
             \"action_type\" TEXT, \"action_result\" TEXT, \"resource_type\" TEXT, \"resource_id\" TEXT, \
             \"ip_address\" TEXT, \"metadata\" TEXT, raw_event TEXT NOT NULL, \
             ingestion_time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
             stream TEXT NOT NULL, PRIMARY KEY (\"timestamp\", \"account_id\", event_id, stream))"
        );
        assert_eq!(audit.create.len(), 5, "the table and four indexes");
    }

    #[test]
    fn wide_tables_get_fewer_rows_per_statement() {
        let wide = DatasetSchema::builtin(&Dataset::new("http_requests").unwrap());
        let table = Table::new(&wide).unwrap();
        let width = wide.columns().len() + 5;
        assert!(table.rows_per_statement * width <= 32_766, "{width}");
    }
}
