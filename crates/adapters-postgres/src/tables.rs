//! The table of a dataset, derived from its [`DatasetSchema`]: DDL, indexes, the hypertable,
//! the staging table, the `COPY` column list and the `INSERT … SELECT`. Nothing here names a
//! dataset or a column of one: every table is
//!
//! ```text
//! event_id TEXT, "timestamp" TIMESTAMPTZ, <the schema's columns>, raw_event JSONB,
//! ingestion_time TIMESTAMPTZ, stream TEXT,
//! PRIMARY KEY ("timestamp", <key columns>, event_id, stream)
//! ```
//!
//! The primary key starts with the time (a TimescaleDB hypertable needs the partitioning column
//! in every unique index) and ends with the stream, so a write is idempotent per (stream, event
//! id) as the `AnalyticsSink` contract requires; key columns (the audit account) let several
//! sources share a table. Key columns are `NOT NULL DEFAULT ''`; text columns use the "C"
//! collation (byte order: comparisons in the key and the indexes are memcmp instead of the
//! locale's strcoll). One B-tree per indexed column, without the time: the values repeat, so
//! B-tree deduplication keeps each value's rows in one posting list.
//!
//! For `audit_logs` this is, column for column, the table migration 0001 created (a test in
//! `tests/postgres/sink.rs` compares them), so existing databases are used as they are.

use cflogs_core::Result;
use cflogs_core::schema::{ColumnType, DatasetSchema, index_name};

use crate::config::TimescaleConfig;

/// `name` as an SQL identifier. Schema and column names are `[a-z][a-z0-9_]*` (the core checks
/// them), so quoting only protects keywords.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn column_type(ty: ColumnType, key: bool) -> &'static str {
    match ty {
        ColumnType::Text if key => "TEXT COLLATE \"C\" NOT NULL DEFAULT ''",
        ColumnType::Text => "TEXT COLLATE \"C\"",
        ColumnType::Integer => "BIGINT",
        ColumnType::Float => "DOUBLE PRECISION",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Timestamp(_) => "TIMESTAMPTZ",
        ColumnType::Ip => "INET",
        ColumnType::Json => "JSONB",
        // A type added to the core later: kept as text until this adapter knows it.
        _ => "TEXT",
    }
}

/// The staging column type: what binary `COPY` sends. Text for what the server may refuse
/// (JSON) or parses from text (addresses), so the refusal happens in the `INSERT`, where the
/// fallbacks can catch it.
fn stage_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Integer => "int8",
        ColumnType::Float => "float8",
        ColumnType::Boolean => "bool",
        ColumnType::Timestamp(_) => "timestamptz",
        _ => "text",
    }
}

/// How values PostgreSQL may refuse are converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conversion {
    /// Plain casts: the fast path, for what the mapping already made acceptable.
    Fast,
    /// Per-row fallbacks (`cflogs_try_jsonb`, `cflogs_try_inet`): a JSON document PostgreSQL
    /// still refuses is kept as a JSON string, an address as NULL.
    Safe,
}

/// Everything the sink runs for one schema, built once per schema.
#[derive(Debug)]
pub(crate) struct Table {
    /// The table's name.
    pub name: String,
    /// `CREATE TABLE IF NOT EXISTS`.
    pub create: String,
    /// Each column of the schema with the `ALTER TABLE … ADD COLUMN IF NOT EXISTS` that adds
    /// it to a table made by an earlier schema.
    pub columns: Vec<(String, String)>,
    /// Each index of the schema with its `CREATE INDEX IF NOT EXISTS`.
    pub indexes: Vec<(String, String)>,
    /// The hypertable statements, for a server with TimescaleDB.
    pub hypertable: Vec<String>,
    /// The temporary staging table.
    pub stage_ddl: String,
    /// `COPY cflogs_stage (…) FROM STDIN (FORMAT binary)`.
    pub copy: String,
    insert_fast: String,
    insert_safe: String,
}

impl Table {
    /// The table of `schema`, with the TimescaleDB policies of `timescale`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a dataset name the sink keeps for itself.
    pub(crate) fn new(schema: &DatasetSchema, timescale: &TimescaleConfig) -> Result<Self> {
        let name = schema.table_name()?;
        let table = quote(name);
        let columns = schema.columns();
        let mut create = vec![
            "event_id TEXT COLLATE \"C\" NOT NULL".to_owned(),
            "\"timestamp\" TIMESTAMPTZ NOT NULL".to_owned(),
        ];
        let mut alters = Vec::new();
        for c in columns {
            let definition = format!("{} {}", quote(c.name()), column_type(c.ty(), c.is_key()));
            alters.push((
                c.name().to_owned(),
                format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {definition}"),
            ));
            create.push(definition);
        }
        create.push("raw_event JSONB NOT NULL".to_owned());
        create.push("ingestion_time TIMESTAMPTZ NOT NULL DEFAULT now()".to_owned());
        create.push("stream TEXT COLLATE \"C\" NOT NULL".to_owned());
        let mut key = vec!["\"timestamp\"".to_owned()];
        key.extend(schema.key_columns().map(|c| quote(c.name())));
        key.push("event_id".to_owned());
        key.push("stream".to_owned());
        create.push(format!("PRIMARY KEY ({})", key.join(", ")));
        let create = format!("CREATE TABLE IF NOT EXISTS {table} ({})", create.join(", "));
        let indexes = columns
            .iter()
            .filter(|c| c.is_indexed())
            .map(|c| {
                let index = index_name(name, c.name());
                let sql = format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {table} ({})",
                    quote(&index),
                    quote(c.name())
                );
                (index, sql)
            })
            .collect();

        let mut stage = vec![
            "event_id text NOT NULL".to_owned(),
            "ts timestamptz NOT NULL".to_owned(),
        ];
        stage.extend(
            columns
                .iter()
                .map(|c| format!("{} {}", quote(c.name()), stage_type(c.ty()))),
        );
        stage.push("raw_event text NOT NULL".to_owned());
        let stage_ddl = format!(
            "CREATE TEMP TABLE cflogs_stage ({}) ON COMMIT DROP",
            stage.join(", ")
        );
        let mut copy_columns = vec!["event_id".to_owned(), "ts".to_owned()];
        copy_columns.extend(columns.iter().map(|c| quote(c.name())));
        copy_columns.push("raw_event".to_owned());
        let copy = format!(
            "COPY cflogs_stage ({}) FROM STDIN (FORMAT binary)",
            copy_columns.join(", ")
        );

        let mut targets = vec!["event_id".to_owned(), "\"timestamp\"".to_owned()];
        targets.extend(columns.iter().map(|c| quote(c.name())));
        targets.extend(["raw_event".to_owned(), "stream".to_owned()]);
        let insert = |conversion: Conversion| {
            let mut select = vec!["event_id".to_owned(), "ts".to_owned()];
            for c in columns {
                let q = quote(c.name());
                select.push(match (c.ty(), conversion) {
                    (ColumnType::Text, _) if c.is_key() => format!("COALESCE({q}, '')"),
                    (ColumnType::Ip, Conversion::Fast) => format!("{q}::inet"),
                    (ColumnType::Ip, Conversion::Safe) => format!("cflogs_try_inet({q})"),
                    (ColumnType::Json, Conversion::Fast) => format!("{q}::jsonb"),
                    (ColumnType::Json, Conversion::Safe) => format!("cflogs_try_jsonb({q})"),
                    _ => q,
                });
            }
            select.push(match conversion {
                Conversion::Fast => "raw_event::jsonb".to_owned(),
                Conversion::Safe => "cflogs_try_jsonb(raw_event)".to_owned(),
            });
            select.push("$1".to_owned());
            format!(
                "INSERT INTO {table} ({}) SELECT {} FROM cflogs_stage ON CONFLICT DO NOTHING",
                targets.join(", "),
                select.join(", ")
            )
        };
        let segment_by = schema.key_columns().next().map(|c| c.name().to_owned());
        Ok(Self {
            name: name.to_owned(),
            create,
            columns: alters,
            indexes,
            hypertable: hypertable_statements(timescale, name, segment_by.as_deref()),
            stage_ddl,
            copy,
            insert_fast: insert(Conversion::Fast),
            insert_safe: insert(Conversion::Safe),
        })
    }

    /// The `INSERT … SELECT` from the staging table, `$1` being the stream.
    pub(crate) fn insert(&self, conversion: Conversion) -> &str {
        match conversion {
            Conversion::Fast => &self.insert_fast,
            Conversion::Safe => &self.insert_safe,
        }
    }
}

/// An SQL interval literal for `d`, in days when it is a whole number of days.
pub(crate) fn interval(d: std::time::Duration) -> String {
    let secs = d.as_secs().max(1);
    if secs.is_multiple_of(86_400) {
        format!("INTERVAL '{} days'", secs / 86_400)
    } else {
        format!("INTERVAL '{secs} seconds'")
    }
}

/// The statements that make `table` a hypertable and apply the configured policies,
/// compressing by `segment_by` (the first key column) when there is one. Idempotent: they run
/// whenever the table is prepared.
pub(crate) fn hypertable_statements(
    config: &TimescaleConfig,
    table: &str,
    segment_by: Option<&str>,
) -> Vec<String> {
    let literal = format!("'{table}'");
    let mut statements = vec![format!(
        "SELECT create_hypertable({literal}, 'timestamp', chunk_time_interval => {}, \
         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE)",
        interval(config.chunk_interval)
    )];
    if let Some(after) = config.compress_after {
        let segment = segment_by
            .map(|c| format!("timescaledb.compress_segmentby = '{c}', "))
            .unwrap_or_default();
        statements.push(format!(
            "DO $$ BEGIN \
             IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables \
                WHERE hypertable_name = {literal} AND hypertable_schema = current_schema() \
                AND compression_enabled) THEN \
             ALTER TABLE {} SET (timescaledb.compress, {segment}\
                timescaledb.compress_orderby = '\"timestamp\" DESC'); \
             END IF; END $$",
            quote(table)
        ));
        // Remove and add, so a changed setting takes effect; one transaction, so there is no
        // moment without a policy.
        statements.push(format!(
            "SELECT remove_compression_policy({literal}, if_exists => TRUE)"
        ));
        statements.push(format!(
            "SELECT add_compression_policy({literal}, compress_after => {})",
            interval(after)
        ));
    }
    if let Some(retention) = config.retention {
        statements.push(format!(
            "SELECT remove_retention_policy({literal}, if_exists => TRUE)"
        ));
        statements.push(format!(
            "SELECT add_retention_policy({literal}, drop_after => {})",
            interval(retention)
        ));
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use cflogs_core::Dataset;

    #[test]
    fn the_audit_table_is_the_one_migration_0001_created() {
        let table = Table::new(
            &DatasetSchema::builtin(&Dataset::audit_logs()),
            &TimescaleConfig::default(),
        )
        .unwrap();
        assert_eq!(
            table.create,
            "CREATE TABLE IF NOT EXISTS \"audit_logs\" (event_id TEXT COLLATE \"C\" NOT NULL, \
             \"timestamp\" TIMESTAMPTZ NOT NULL, \"account_id\" TEXT COLLATE \"C\" NOT NULL DEFAULT '', \
             \"actor_email\" TEXT COLLATE \"C\", \"actor_type\" TEXT COLLATE \"C\", \
             \"action_type\" TEXT COLLATE \"C\", \"action_result\" TEXT COLLATE \"C\", \
             \"resource_type\" TEXT COLLATE \"C\", \"resource_id\" TEXT COLLATE \"C\", \
             \"ip_address\" INET, \"metadata\" JSONB, raw_event JSONB NOT NULL, \
             ingestion_time TIMESTAMPTZ NOT NULL DEFAULT now(), stream TEXT COLLATE \"C\" NOT NULL, \
             PRIMARY KEY (\"timestamp\", \"account_id\", event_id, stream))"
        );
        let indexes: Vec<&String> = table.indexes.iter().map(|(_, sql)| sql).collect();
        assert_eq!(indexes.len(), 4, "{indexes:?}");
        assert_eq!(table.indexes[0].0, "audit_logs_actor_email_idx");
        assert!(
            indexes[0]
                .contains("\"audit_logs_actor_email_idx\" ON \"audit_logs\" (\"actor_email\")")
        );
        assert!(
            table
                .insert(Conversion::Fast)
                .contains("COALESCE(\"account_id\", '')")
        );
        assert!(
            table
                .insert(Conversion::Fast)
                .contains("\"ip_address\"::inet")
        );
        assert!(
            table
                .insert(Conversion::Safe)
                .contains("cflogs_try_jsonb(\"metadata\")")
        );
    }

    #[test]
    fn hypertable_sql_with_the_configured_policies() {
        let all = hypertable_statements(
            &TimescaleConfig::recommended(),
            "audit_logs",
            Some("account_id"),
        )
        .join("\n");
        assert!(
            all.contains("create_hypertable('audit_logs', 'timestamp', chunk_time_interval => INTERVAL '1 days'"),
            "{all}"
        );
        assert!(all.contains("create_default_indexes => FALSE"));
        assert!(
            all.contains("add_retention_policy('audit_logs', drop_after => INTERVAL '90 days')")
        );
        assert!(all.contains(
            "add_compression_policy('audit_logs', compress_after => INTERVAL '30 days')"
        ));
        assert!(all.contains("timescaledb.compress_segmentby = 'account_id'"));
        // No policies configured: only the hypertable; no key column: no segmentby.
        assert_eq!(
            hypertable_statements(&TimescaleConfig::default(), "http_requests", None).len(),
            1
        );
        let generic =
            hypertable_statements(&TimescaleConfig::recommended(), "dns_logs", None).join("\n");
        assert!(!generic.contains("segmentby"), "{generic}");
    }

    #[test]
    fn intervals_are_days_when_whole() {
        use std::time::Duration;
        assert_eq!(
            interval(Duration::from_secs(86_400 * 3)),
            "INTERVAL '3 days'"
        );
        assert_eq!(interval(Duration::from_secs(90)), "INTERVAL '90 seconds'");
    }
}
